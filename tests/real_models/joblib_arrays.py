"""Read the numpy arrays of a joblib file (mtcnn's `*.lz4` weights) without unpickling it.

A joblib file is a pickle stream (optionally lz4/zlib-compressed) in which every array is a
`joblib.numpy_pickle.NumpyArrayWrapper` object whose raw bytes follow it in the stream. Loading it
with pickle or joblib would let the file name any Python callable; this reader instead walks the
stream's opcodes with `pickletools.genops` and interprets only the handful that a list of plain
numeric arrays uses. A global it does not know (anything but the wrapper, ndarray and dtype), an
object array, or an opcode outside that set raises UnsafeFile, and nothing from the file is
ever called.
"""
from __future__ import annotations

import io
import pickletools

import numpy as np

_ALLOWED_GLOBALS = {("joblib.numpy_pickle", "NumpyArrayWrapper"), ("numpy", "ndarray"), ("numpy", "dtype")}
_MARK = object()


class UnsafeFile(ValueError):
    pass


class _Global(tuple):
    pass


class _Wrapper(dict):
    pass


def _decompress(raw: bytes) -> bytes:
    if raw[:4] == b"\x04\x22\x4d\x18":  # lz4 frame magic
        import lz4.frame

        return lz4.frame.decompress(raw)
    if raw[:1] == b"\x78":  # zlib
        import zlib

        return zlib.decompress(raw)
    return raw


def _read_array(w: dict, stream: io.BytesIO) -> np.ndarray:
    dtype = w["dtype"]
    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.kind not in "biuf":
        raise UnsafeFile(f"array of dtype {dtype!r} is not plain numbers")
    if w.get("numpy_array_alignment_bytes") is not None:  # one byte: the padding length, then padding
        stream.read(stream.read(1)[0])
    shape = tuple(int(d) for d in w["shape"])
    count = int(np.prod(shape, dtype=np.int64))
    data = stream.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise UnsafeFile("array data is truncated")
    arr = np.frombuffer(data, dtype=dtype, count=count).copy()
    return arr.reshape(shape[::-1]).T if w.get("order") == "F" else arr.reshape(shape)


def load_arrays(path) -> list[np.ndarray]:
    """The list of numpy arrays that joblib.dump wrote to `path`."""
    stream = io.BytesIO(_decompress(open(path, "rb").read()))
    stack: list = []
    memo: dict = {}

    def pop_mark() -> list:
        i = max(j for j, v in enumerate(stack) if v is _MARK)
        items = stack[i + 1 :]
        del stack[i:]
        return items

    for op, arg, _pos in pickletools.genops(stream):
        name = op.name
        if name in ("PROTO", "FRAME"):
            continue
        if name == "STOP":
            break
        if name == "MARK":
            stack.append(_MARK)
        elif name in ("EMPTY_LIST", "EMPTY_DICT", "EMPTY_TUPLE"):
            stack.append({"EMPTY_LIST": [], "EMPTY_DICT": {}, "EMPTY_TUPLE": ()}[name])
        elif name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT", "SHORT_BINBYTES", "BINBYTES"):
            stack.append(arg)
        elif name in ("NONE", "NEWTRUE", "NEWFALSE"):
            stack.append({"NONE": None, "NEWTRUE": True, "NEWFALSE": False}[name])
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in ("BINPUT", "LONG_BINPUT"):
            memo[arg] = stack[-1]
        elif name in ("BINGET", "LONG_BINGET"):
            stack.append(memo[arg])
        elif name == "STACK_GLOBAL":
            qual = (stack[-2], stack[-1])
            del stack[-2:]
            if qual not in _ALLOWED_GLOBALS:
                raise UnsafeFile(f"{path}: refers to {qual[0]}.{qual[1]}, which a weights file has no need of")
            stack.append(_Global(qual))
        elif name in ("TUPLE", "TUPLE1", "TUPLE2", "TUPLE3"):
            n = {"TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3}.get(name)
            items = pop_mark() if n is None else stack[-n:]
            if n is not None:
                del stack[-n:]
            stack.append(tuple(items))
        elif name == "NEWOBJ":
            cls, _args = stack[-2], stack[-1]
            del stack[-2:]
            if cls != ("joblib.numpy_pickle", "NumpyArrayWrapper"):
                raise UnsafeFile(f"{path}: builds a {cls}, not an array wrapper")
            stack.append(_Wrapper())
        elif name == "REDUCE":
            fn, args = stack[-2], stack[-1]
            del stack[-2:]
            if fn != ("numpy", "dtype") or not isinstance(args[0], str):
                raise UnsafeFile(f"{path}: calls {fn}, which is not numpy.dtype")
            stack.append(np.dtype(args[0]))
        elif name == "BUILD":
            state = stack.pop()
            obj = stack[-1]
            if isinstance(obj, np.dtype):  # (version, byte order, ...): only the byte order matters here
                if state[1] in ("<", ">"):
                    stack[-1] = obj.newbyteorder(state[1])
            elif isinstance(obj, _Wrapper):
                obj.update(state)
                stack[-1] = _read_array(obj, stream)  # the raw bytes follow the wrapper in the stream
            else:
                raise UnsafeFile(f"{path}: sets the state of {type(obj).__name__}")
        elif name in ("SETITEM", "SETITEMS"):
            items = [stack.pop(), stack.pop()][::-1] if name == "SETITEM" else pop_mark()
            target = stack[-1]
            for k, v in zip(items[::2], items[1::2]):
                target[k] = v
        elif name in ("APPEND", "APPENDS"):
            items = [stack.pop()] if name == "APPEND" else pop_mark()
            stack[-1].extend(items)
        else:
            raise UnsafeFile(f"{path}: pickle opcode {name} is outside what a list of arrays needs")
    result = stack[-1] if stack else None
    if not isinstance(result, list) or not all(isinstance(a, np.ndarray) for a in result):
        raise UnsafeFile(f"{path}: holds {type(result).__name__}, not a list of arrays")
    return result
