"""Description, version and user-defined metadata written into every .mlpackage."""
from __future__ import annotations

import json

from ... import __version__
from ...types import Preprocess

PREFIX = "com.edgepack."


def annotate(mlmodel, *, source, precision: str, route: str, preprocess: Preprocess | None, image_input: bool) -> None:
    mlmodel.short_description = f"{source.name} ({precision}), packaged by edgepack {__version__}"
    mlmodel.version = source.sha256[:12] or "unknown"
    mlmodel.author = "edgepack"
    meta = {
        "version": __version__,
        "source_sha256": source.sha256,
        "precision": precision,
        "route": route,
        "layout": "nchw" if any(len(t.shape) == 4 for t in source.inputs) else "",
        "image_input": "true" if image_input else "false",
    }
    if preprocess is not None:
        meta["preprocess"] = json.dumps(preprocess.to_json())
    for k, v in meta.items():
        mlmodel.user_defined_metadata[PREFIX + k] = str(v)
    for t in source.inputs:
        what = "image, pixels 0..255" if image_input and len(t.shape) == 4 else f"{t.dtype} tensor"
        mlmodel.input_description[t.name] = f"{what}, shape {list(t.static_shape())}"
