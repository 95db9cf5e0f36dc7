"""ONNX -> PyTorch: the ONNX source's own torch.export capability (and Keras's, through tf2onnx).

- bridge.py: the graph interpreter module (constant folding, weights as buffers);
- ops.py, shape_ops.py, resize.py, recurrent.py, misc_ops.py: one handler per ONNX op;
- export.py: static input shapes from the source's TensorSpecs (or the caller's) and the
  torch.export ExportedProgram with the source's input names.
"""
from .bridge import to_torch, unsupported_ops
from .export import export_program, static_shapes

__all__ = ["export_program", "static_shapes", "to_torch", "unsupported_ops"]
