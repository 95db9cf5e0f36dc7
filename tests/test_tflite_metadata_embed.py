"""metadata.embed on a .tflite whose weights sit in offset buffers (after the flatbuffer), as
ai-edge-quantizer writes them: the weights come back intact, the metadata entry is added, and the
bytes equal those of the byte-by-byte packing that embed used to do (it took 5 s for 7 MB)."""
from __future__ import annotations

import numpy as np
import pytest

fb = pytest.importorskip("ai_edge_litert.schema_py_generated")
fu = pytest.importorskip("ai_edge_litert.tools.flatbuffer_utils")

from edgepack.formats.tflite import metadata  # noqa: E402


def _offset_model(weights: bytes) -> bytes:
    def model(offset: int) -> bytes:
        m = fb.ModelT()
        m.version = 3
        sub = fb.SubGraphT()
        sub.operators, sub.tensors = [], []
        m.subgraphs = [sub]
        b0, b1 = fb.BufferT(), fb.BufferT()
        b1.offset, b1.size = offset, len(weights)
        m.buffers = [b0, b1]
        return bytes(fu.convert_object_to_bytearray(m))

    start = -(-len(model(1)) // 16) * 16  # the same fields at any offset: the same length
    head = model(start)
    return head + b"\0" * (start - len(head)) + weights


def test_embed_keeps_offset_buffers_and_bytes():
    weights = np.random.default_rng(0).integers(0, 256, 4099, dtype=np.uint8).tobytes()
    buf = _offset_model(weights)
    raw = fu.read_model_from_bytearray(bytearray(buf))
    assert isinstance(raw.buffers[1].data, (bytes, bytearray))  # the slow kind, before the fix

    out = metadata.embed(buf, {"edgepack": b'{"a": 1}'})

    got = fu.read_model_from_bytearray(bytearray(out))
    assert bytes(got.buffers[1].data) == weights
    names = [m.name.decode() if isinstance(m.name, bytes) else m.name for m in got.metadata]
    assert names == ["edgepack"]
    assert bytes(got.buffers[got.metadata[0].buffer].data) == b'{"a": 1}'

    old = fu.read_model_from_bytearray(bytearray(buf))  # the former path: the bytearray packed byte by byte
    entry = fb.BufferT()
    entry.data = np.frombuffer(b'{"a": 1}', dtype=np.uint8)
    old.buffers.append(entry)
    meta = fb.MetadataT()
    meta.name, meta.buffer = "edgepack", len(old.buffers) - 1
    old.metadata = [meta]
    assert out == bytes(fu.convert_object_to_bytearray(old))
