"""Byte-identical .mlpackage folders: the same model saved twice gives the same bytes.

coremltools leaves two sources of drift in a saved package (measured with coremltools 9.0):
- Manifest.json names each item by a random UUID (uuid4), and `rootModelIdentifier` refers to one.
  The identifiers mean nothing outside the manifest, so they are replaced by name-based UUIDs
  (uuid5 of the item's path), which loaders accept as they accept any UUID.
- model.mlmodel is a protobuf whose map fields (the user-defined metadata, where edgepack writes
  its own keys) serialise in hash order. It is rewritten with protobuf's deterministic
  serialisation, which sorts map keys; the message is otherwise unchanged.
The weights (Data/com.apple.CoreML/weights/*.bin) were identical run to run already.
"""
from __future__ import annotations

import json
import uuid
from pathlib import Path

_NAMESPACE = uuid.UUID("6f1c2b1e-7a0e-5d6b-9a54-2c1e0d9b4e11")  # edgepack's own namespace for item ids


def canonicalize(package: Path) -> None:
    manifest_path = package / "Manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    entries = manifest.get("itemInfoEntries", {})
    renamed = {old: str(uuid.uuid5(_NAMESPACE, info.get("path", old))) for old, info in entries.items()}
    manifest["itemInfoEntries"] = {renamed[k]: v for k, v in sorted(entries.items(), key=lambda kv: renamed[kv[0]])}
    root = manifest.get("rootModelIdentifier")
    if root in renamed:
        manifest["rootModelIdentifier"] = renamed[root]
    manifest_path.write_text(json.dumps(manifest, indent=4, sort_keys=True) + "\n", encoding="utf-8")
    for info in entries.values():
        if info.get("path", "").endswith(".mlmodel"):
            _deterministic_spec(package / "Data" / info["path"])


def _deterministic_spec(spec_path: Path) -> None:
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.ParseFromString(spec_path.read_bytes())
    spec_path.write_bytes(spec.SerializeToString(deterministic=True))
