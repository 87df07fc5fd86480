"""The bundled checks that the plugin collects (``test_audit.py``)."""

__all__: list[str] = []
