"""One module per layer family; each registers its mappings with ``runner.onnx_export.table.maps``
at import (``table.load_all`` imports them all)."""
