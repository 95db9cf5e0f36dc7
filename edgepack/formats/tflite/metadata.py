"""edgepack's metadata inside a .tflite: a JSON buffer in the flatbuffer's `metadata` table.

LiteRT keeps named metadata buffers (the same table that holds `min_runtime_version`); apps read
them with the flatbuffer schema (Java `MetadataExtractor`-style readers, or Python's
`schema_py_generated`). Two entries are written:

- `edgepack`: JSON with the edgepack version, precision, route, labels, normalisation
  (preprocess), and for every input and output its name, source name, layout, dtype and
  quantisation. The LiteRT runtime plug-in reads this back to feed samples in the right layout.
- `labels.txt`: the class names, one a line (only when the calibration set has labels).
"""
from __future__ import annotations

import json
from typing import Any

from ...errors import require

KEY = "edgepack"
LABELS_KEY = "labels.txt"


def embed(buf: bytes | bytearray, entries: dict[str, bytes]) -> bytes:
    """Return the model with `entries` added (or replaced) as named metadata buffers."""
    require("ai_edge_litert", "tflite", "Writing .tflite metadata")
    import numpy as np
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils as fu

    model = fu.read_model_from_bytearray(bytearray(buf))
    for b in model.buffers:  # offset buffers (ai-edge-quantizer's output) come back as bytearray slices, which
        if b.data is not None and not isinstance(b.data, np.ndarray):  # Pack writes byte by byte: 5 s for 7 MB;
            b.data = np.frombuffer(bytes(b.data), dtype=np.uint8)  # as arrays it copies them, the same bytes
    model.metadata = [m for m in (model.metadata or []) if (m.name.decode() if isinstance(m.name, bytes) else m.name) not in entries]
    for name, data in entries.items():
        b = fb.BufferT()
        b.data = np.frombuffer(data, dtype=np.uint8)
        model.buffers.append(b)
        m = fb.MetadataT()
        m.name = name
        m.buffer = len(model.buffers) - 1
        model.metadata.append(m)
    return bytes(fu.convert_object_to_bytearray(model))


def read(buf: bytes | bytearray) -> dict[str, Any] | None:
    """edgepack's JSON metadata, or None for a .tflite that edgepack did not write."""
    from .flatbuf import read_graph

    raw = read_graph(buf).metadata.get(KEY)
    if raw is None:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def entries(meta: dict[str, Any], labels: list[str] | None) -> dict[str, bytes]:
    out = {KEY: json.dumps(meta, sort_keys=True).encode("utf-8")}
    if labels:
        out[LABELS_KEY] = ("\n".join(labels) + "\n").encode("utf-8")
    return out
