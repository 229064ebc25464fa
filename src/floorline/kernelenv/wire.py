"""The framing between the trusted harness and the untrusted worker: a JSON header plus raw tensor bytes.

No pickle crosses from the worker to the harness: a candidate controls everything the worker sends,
and unpickling its bytes in the trusted process would hand it code execution there. Tensors travel as
(dtype, shape, bytes) and are rebuilt with torch.frombuffer, which runs no code of the sender's.
"""

from __future__ import annotations

import json
import struct
from typing import Any

_DTYPES = (
    "float64", "float32", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2",
    "int64", "int32", "int16", "int8", "uint8", "bool",
)
MAX_MESSAGE_BYTES = 1 << 30


class WireError(ValueError):
    """A message that does not follow the framing: treated as a forged result channel."""


def tensor_to_wire(t: Any) -> tuple[dict[str, Any], bytes]:
    import torch

    if type(t) is not torch.Tensor:  # a subclass could hide lazy work behind its own reduce/copy
        raise WireError(f"not a plain tensor: {type(t).__name__}")
    name = str(t.dtype).removeprefix("torch.")
    if name not in _DTYPES:
        raise WireError(f"dtype {name} is not carried")
    c = t.detach().to("cpu", copy=True).contiguous()
    raw = c.view(torch.uint8).numpy().tobytes() if c.numel() else b""
    return {"dtype": name, "shape": list(c.shape)}, raw


def tensor_from_wire(meta: dict[str, Any], raw: bytes) -> Any:
    import torch

    name = meta.get("dtype")
    shape = meta.get("shape")
    if name not in _DTYPES or not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise WireError(f"bad tensor header {meta!r}")
    dtype = getattr(torch, name)
    numel = 1
    for s in shape:
        numel *= s
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(raw) != numel * itemsize:
        raise WireError(f"tensor bytes {len(raw)} != {numel} x {itemsize}")
    if numel == 0:
        return torch.empty(shape, dtype=dtype)
    flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8)
    return flat.view(dtype).reshape(shape).clone()


def pack(header: dict[str, Any], tensors: dict[str, list[Any]] | None = None) -> bytes:
    """header JSON + for each named tensor list, the tensors' bytes in order."""
    metas: dict[str, list[dict[str, Any]]] = {}
    blobs: list[bytes] = []
    for key, ts in (tensors or {}).items():
        metas[key] = []
        for t in ts:
            m, raw = tensor_to_wire(t)
            m["nbytes"] = len(raw)
            metas[key].append(m)
            blobs.append(raw)
    head = json.dumps({**header, "_tensors": metas}, allow_nan=True).encode()
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def unpack(data: bytes) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    if len(data) < 8 or len(data) > MAX_MESSAGE_BYTES:
        raise WireError(f"message of {len(data)} bytes")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise WireError("header length past the end of the message")
    try:
        header = json.loads(data[8 : 8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WireError(f"header is not JSON: {e}") from None
    if not isinstance(header, dict) or not isinstance(header.get("_tensors", {}), dict):
        raise WireError("header is not an object")
    pos = 8 + n
    out: dict[str, list[Any]] = {}
    for key, metas in header.pop("_tensors", {}).items():
        if not isinstance(metas, list):
            raise WireError("tensor list is not a list")
        out[key] = []
        for m in metas:
            if not isinstance(m, dict) or not isinstance(m.get("nbytes"), int) or m["nbytes"] < 0:
                raise WireError("tensor header without nbytes")
            raw = data[pos : pos + m["nbytes"]]
            pos += m["nbytes"]
            out[key].append(tensor_from_wire(m, raw))
    if pos != len(data):
        raise WireError(f"{len(data) - pos} trailing bytes after the tensors")
    return header, out
