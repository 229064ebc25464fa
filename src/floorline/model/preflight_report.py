"""`floorline preflight`: everything a checkpoint would hit before any tensor is read, in one list."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from floorline.errors import InputError

_BYTES = {"float64": 8, "float32": 4, "bf16": 2, "fp8": 1}


def preflight_report(checkpoint: Path, dtype: str, tp: int) -> dict[str, Any]:
    from floorline.model.checkpoint import preflight

    if dtype not in _BYTES:
        raise InputError(f"--dtype: must be one of {', '.join(_BYTES)}, got {dtype!r}")
    if tp < 1:
        raise InputError(f"--tp: must be >= 1, got {tp}")
    pf = preflight(checkpoint)
    cfg = pf.cfg
    problems, warnings = list(pf.problems), list(pf.warnings)
    if cfg.head_dim not in (64, 128, 256):
        problems.append(f"config head_dim {cfg.head_dim}: the fast path's paged KV cache takes 64, 128 or 256 "
                        "(the float64 reference runs any)")
    if tp > 1:
        for name, n in (("num_key_value_heads", cfg.num_key_value_heads), ("num_attention_heads", cfg.num_attention_heads),
                        ("moe_intermediate_size", cfg.moe_intermediate_size), ("intermediate_size", cfg.intermediate_size)):
            if n and n % tp:
                problems.append(f"config {name} {n}: not divisible by --tp {tp}")
        warnings.append("tensor-parallel decode is not built yet: the weights shard at load, the step runs on one GPU")
    n_params = sum(_numel(t.shape) for t in pf.tensors.values())
    weight_bytes = n_params * _BYTES[dtype]
    try:
        from floorline.gpu.probe import cuda_available

        if cuda_available():
            import torch

            total = torch.cuda.get_device_properties(0).total_memory * tp
            if weight_bytes > 0.95 * total:
                problems.append(f"weights: {weight_bytes / 1e9:.1f} GB as {dtype} do not fit {tp} GPU(s) of "
                                f"{total / tp / 1e9:.0f} GB (try --dtype fp8 or a larger --tp)")
    except ImportError:
        pass
    return {"checkpoint": str(checkpoint), "model": cfg.name, "layers": cfg.num_hidden_layers,
            "experts": cfg.num_experts, "tensors": len(pf.tensors), "weight_gb": weight_bytes / 1e9, "dtype": dtype,
            "tp": tp, "problems": problems, "warnings": warnings}


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n
