"""Reading a claims file's YAML as a stranger's data: its size bounded before parsing,
UTF-8, yaml's SafeLoader refusing aliases and duplicate keys (both hide what a file says).
:mod:`credit_audit.claims.schema` validates what it reads. No pytest here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from credit_audit._errors import CreditAuditError

__all__ = ["MAX_BYTES", "read_yaml"]

# a 694-byte alias bomb expands to gigabytes; no claims file needs an alias, nor a megabyte
MAX_BYTES = 1 << 20


def _strict_loader() -> type:
    """yaml's SafeLoader, refusing aliases and duplicate keys (both hide what a file says)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):  # noqa: ANN001, ANN202
            if self.check_event(yaml.events.AliasEvent):
                mark = self.peek_event().start_mark
                raise yaml.composer.ComposerError(
                    None, None, "aliases (*name) are not allowed in a claims file", mark
                )
            return super().compose_node(parent, index)

        def construct_mapping(self, node, deep=False):  # noqa: ANN001, ANN202
            seen = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"a key must be a plain value, got {key!r}", key_node.start_mark
                    ) from None
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark
                    )
            return super().construct_mapping(node, deep)

    return StrictLoader


def read_yaml(path: Path) -> Any:
    """The parsed YAML of the claims file at ``path``; every problem names the file."""
    import yaml

    name = path.name
    if not path.is_file():
        raise CreditAuditError(f"{path}: no such claims file")
    data = path.read_bytes()
    if len(data) > MAX_BYTES:
        raise CreditAuditError(
            f"{name}: {len(data)} bytes; a claims file is at most {MAX_BYTES} bytes"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CreditAuditError(f"{name}: not UTF-8 text (byte {exc.start})") from None
    try:
        return yaml.load(text, Loader=_strict_loader())  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise CreditAuditError(f"{name}: not valid YAML: {exc}") from None
