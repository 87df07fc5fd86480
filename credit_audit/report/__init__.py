"""Rendering only: the terminal table, the JSON file, the HTML extras and figures."""

from credit_audit.report.cells import cell_text
from credit_audit.report.json_writer import build_document, write_json
from credit_audit.report.terminal import summary_lines

__all__ = ["build_document", "cell_text", "summary_lines", "write_json"]
