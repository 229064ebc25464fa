"""Float64 references for the attention kernels: dequantization of each KV format and plain softmax
attention, written for clarity (gather, einsum, softmax), never for speed."""

from __future__ import annotations

import torch

E2M1 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0], dtype=torch.float64)


def dequant_pages(cache) -> tuple[torch.Tensor, torch.Tensor]:
    """Whole cache as float64 [num_pages, kv_heads, page_size, head_dim], in the stored (rotated) basis."""
    out = []
    for x, sc in ((cache.k, cache.k_scale), (cache.v, cache.v_scale)):
        if cache.kv_dtype == "fp8" and x is cache.v:
            x = x.transpose(2, 3)  # fp8 V pages are stored [.., head_dim, page_size]
        if cache.kv_dtype == "bf16":
            out.append(x.double())
        elif cache.kv_dtype == "fp8":
            out.append(x.double() * sc.double()[..., None])
        else:
            lo, hi = (x & 15).long(), (x >> 4).long()
            vals = torch.stack([_e2m1(lo), _e2m1(hi)], dim=-1).flatten(-2)  # element 2i, 2i+1
            scale = torch.where(sc > 0, torch.exp2(sc.double() - 127), torch.zeros((), dtype=torch.float64))
            out.append(vals * scale.repeat_interleave(32, dim=-1))
    return out[0], out[1]


def _e2m1(code: torch.Tensor) -> torch.Tensor:
    mag = E2M1.to(code.device)[code & 7]
    return torch.where(code >= 8, -mag, mag)


def gather_sequence(pages: torch.Tensor, page_table: torch.Tensor, seq: int, length: int) -> torch.Tensor:
    """[kv_heads, length, head_dim] of one sequence, read through its page table."""
    ps = pages.shape[2]
    n_pages = -(-length // ps)
    rows = pages[page_table[seq, :n_pages].long()]  # [n_pages, Hkv, ps, D]
    return rows.permute(1, 0, 2, 3).reshape(pages.shape[1], n_pages * ps, pages.shape[3])[:, :length]


def attention_f64(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, seq_len: int, scale: float,
                  window: int = 0) -> torch.Tensor:
    """q [T, Hq, D]; k, v [Hkv, L, D]; query t at position L - T + t. Returns float64 [T, Hq, D];
    rows with no visible key are zero."""
    q, k, v = q.double(), k.double(), v.double()
    t_n, hq, d = q.shape
    g = hq // k.shape[0]
    k = k.repeat_interleave(g, dim=0)  # [Hq, L, D]
    v = v.repeat_interleave(g, dim=0)
    s = torch.einsum("thd,hld->thl", q, k) * scale
    pos = torch.arange(seq_len)
    qpos = seq_len - t_n + torch.arange(t_n)
    visible = pos[None, :] <= qpos[:, None]
    if window > 0:
        visible &= pos[None, :] > qpos[:, None] - window
    s = s.masked_fill(~visible[:, None, :], float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)  # all-masked rows: zero output
    return torch.einsum("thl,hld->thd", p, v)


def decode_reference(q, cache, page_table, seq_lens, scale, window=0) -> torch.Tensor:
    """Float64 output [B, T, Hq, D] of decode attention over what the cache holds."""
    kd, vd = (x.cpu() for x in dequant_pages(cache))
    rot = cache.rotation.double().cpu() if cache.rotation is not None else None
    out = torch.zeros(q.shape, dtype=torch.float64)
    qc, pt = q.cpu(), page_table.cpu()
    for b, length in enumerate(seq_lens.tolist()):
        if length == 0:
            continue
        k = gather_sequence(kd, pt, b, length)
        v = gather_sequence(vd, pt, b, length)
        qb = qc[b].double() @ rot if rot is not None else qc[b].double()
        o = attention_f64(qb, k, v, length, scale, window)
        out[b] = o @ rot.T if rot is not None else o
    return out
