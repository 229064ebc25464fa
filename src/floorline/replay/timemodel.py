"""Roofline time model for one serving instance: prefill and decode step time from the catalog.

time = max(FLOPs / (peak FLOP/s x compute_efficiency), bytes / (HBM bytes/s x bandwidth_efficiency))
  prefill of n new tokens after c cached ones:
      FLOPs = 2 P n + 4 L H d n (c + (n+1)/2)        (weights, then causal attention over c + new)
      bytes = weights + (c + n) x KV bytes per token (read the cached prefix, write the new KV)
  one decode step of B sequences holding S context tokens in total:
      FLOPs = 2 P B + 4 L H d S;  bytes = weights + S x KV bytes per token
An instance of g GPUs (tensor parallel) is modelled as g x the FLOP/s and bandwidth, with no
communication cost: the result is a floor. Efficiencies default to 1.0 (the floor itself); a
`bench decode` packet calibrates decode to its measured fraction of floor.
"""

from __future__ import annotations

from dataclasses import dataclass

from floorline.economics.catalog import DTYPE_BYTES, Device
from floorline.errors import InputError
from floorline.replay.model import ModelShape


@dataclass(frozen=True)
class TimeModel:
    params: float
    layers: int
    attn_width: int  # heads x head_dim
    weight_bytes: float
    kv_bytes_per_token: float
    flops: float  # FLOP/s of the instance, efficiency applied
    bw: float  # bytes/s of the instance, efficiency applied

    @classmethod
    def build(cls, model: ModelShape, dev: Device, gpus: int, weight_dtype: str, kv_dtype: str,
              compute_efficiency: float = 1.0, bandwidth_efficiency: float = 1.0) -> TimeModel:
        for name, dt in (("--weight-dtype", weight_dtype), ("--kv-dtype", kv_dtype)):
            if dt not in DTYPE_BYTES:
                raise InputError(f"{name}: must be one of {', '.join(DTYPE_BYTES)}, got {dt!r}")
        for name, v in (("--compute-efficiency", compute_efficiency), ("--bandwidth-efficiency", bandwidth_efficiency)):
            if not 0 < v <= 1:
                raise InputError(f"{name}: must be > 0 and <= 1, got {v}")
        # Tensor cores run at the weight precision; fp32/int8/int4 weights fall back to the bf16 peak.
        compute_dtype = weight_dtype if weight_dtype in ("fp8", "fp4") else "bf16"
        return cls(
            params=model.params, layers=model.layers, attn_width=model.heads * model.head_dim,
            weight_bytes=model.params * DTYPE_BYTES[weight_dtype],
            kv_bytes_per_token=model.kv_bytes_per_token(DTYPE_BYTES[kv_dtype]),
            flops=dev.peak_flops(compute_dtype) * gpus * compute_efficiency,
            bw=dev.si("hbm_bw") * gpus * bandwidth_efficiency,
        )

    def prefill_s(self, new: int, cached: int) -> float:
        n = max(new, 1)  # a fully cached prompt still runs one token to produce the first output
        flops = 2 * self.params * n + 4 * self.layers * self.attn_width * n * (cached + (n + 1) / 2)
        byts = self.weight_bytes + (cached + n) * self.kv_bytes_per_token
        return max(flops / self.flops, byts / self.bw)

    def decode_coeffs(self, batch: int) -> tuple[float, float, float, float]:
        """Step time is max(am + bm S, ac + bc S) for S total context tokens in the batch."""
        am = self.weight_bytes / self.bw
        bm = self.kv_bytes_per_token / self.bw
        ac = 2 * self.params * batch / self.flops
        bc = 4 * self.layers * self.attn_width / self.flops
        return am, bm, ac, bc

    def decode_step_s(self, batch: int, context_total: float) -> float:
        am, bm, ac, bc = self.decode_coeffs(batch)
        return max(am + bm * context_total, ac + bc * context_total)


def _linear_sum(a: float, b: float, j0: int, j1: int) -> float:
    """sum_{j=j0}^{j1-1} (a + b j)."""
    n = j1 - j0
    if n <= 0:
        return 0.0
    return a * n + b * (j0 + j1 - 1) * n / 2


def steps_time(tm: TimeModel, batch: int, s0: float, k: int) -> float:
    """Time of k decode steps starting at total context s0, each step adding `batch` tokens.

    Step j costs max(m_j, c_j) with m_j, c_j linear in j; they cross at most once, so the sum
    is two arithmetic series split at the crossing (exact, no per-step loop)."""
    if k <= 0:
        return 0.0
    am, bm, ac, bc = tm.decode_coeffs(batch)
    # m_j = (am + bm s0) + (bm batch) j ; c_j = (ac + bc s0) + (bc batch) j
    ma, mb = am + bm * s0, bm * batch
    ca, cb = ac + bc * s0, bc * batch
    da, db = ma - ca, mb - cb  # memory minus compute, linear in j
    if db == 0:
        cross = k if da >= 0 else 0
        first_mem = da >= 0
    else:
        root = -da / db  # j where they are equal
        first_mem = da >= 0
        cross = min(k, max(0, int(root) + 1)) if (db < 0) == first_mem else 0
        if (db < 0) != first_mem:  # the same side wins throughout
            cross = k
    if first_mem:
        return _linear_sum(ma, mb, 0, cross) + _linear_sum(ca, cb, cross, k)
    return _linear_sum(ca, cb, 0, cross) + _linear_sum(ma, mb, cross, k)
