"""`python -m edgepack.formats.ort_mobile.save_ort ONNX ORT TARGET_PLATFORM OPTIMIZATION`: save one
.ort in a fresh process (convert.to_ort says why). Errors end in one line on stderr, exit 4."""
from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from edgepack.formats.ort_mobile.convert import save_ort

    onnx_path, ort_path, platform, optimization = argv
    try:
        save_ort(Path(onnx_path), Path(ort_path), target_platform=platform, optimization=optimization)
    except Exception as exc:  # noqa: BLE001 - one line back to the converter
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"edgepack-save-ort: {text}", file=sys.stderr)
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
