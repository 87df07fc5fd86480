"""``python -m credit_audit.checklist`` rewrites CHECKLIST.md from CHECKLIST.yaml."""

from pathlib import Path

from credit_audit.checklist import render_markdown

Path(__file__).with_name("CHECKLIST.md").write_text(render_markdown(), encoding="utf-8")
