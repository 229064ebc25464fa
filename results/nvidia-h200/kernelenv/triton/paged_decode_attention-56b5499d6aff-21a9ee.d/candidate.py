"""Paged GQA decode attention: one program per (sequence, query head), online softmax over token blocks that
are gathered page by page through the block table."""

import torch
import triton
import triton.language as tl
from torch import nn


@triton.jit
def _paged_decode_kernel(q_ptr, k_ptr, v_ptr, bt_ptr, len_ptr, o_ptr, q_heads, kv_heads, max_pages, scale,
                         PAGE: tl.constexpr, D: tl.constexpr, BLOCK_N: tl.constexpr):
    pid = tl.program_id(0)
    b = pid // q_heads
    h = pid % q_heads
    hk = h // (q_heads // kv_heads)
    d = tl.arange(0, D)
    q = tl.load(q_ptr + pid * D + d).to(tl.float32)
    n_tok = tl.load(len_ptr + b)
    m = -float("inf")
    den = 0.0
    acc = tl.zeros([D], dtype=tl.float32)
    for start in range(0, n_tok, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        valid = n < n_tok
        page = tl.load(bt_ptr + b * max_pages + n // PAGE, mask=valid, other=0)
        row = ((page.to(tl.int64) * PAGE + n % PAGE) * kv_heads + hk) * D
        k = tl.load(k_ptr + row[:, None] + d[None, :], mask=valid[:, None], other=0.0).to(tl.float32)
        s = tl.sum(k * q[None, :], axis=1) * scale
        s = tl.where(valid, s, -float("inf"))
        m_new = tl.maximum(m, tl.max(s, axis=0))
        p = tl.exp(s - m_new)
        alpha = tl.exp(m - m_new)
        v = tl.load(v_ptr + row[:, None] + d[None, :], mask=valid[:, None], other=0.0).to(tl.float32)
        acc = acc * alpha + tl.sum(p[:, None] * v, axis=0)
        den = den * alpha + tl.sum(p, axis=0)
        m = m_new
    tl.store(o_ptr + pid * D + d, (acc / den).to(o_ptr.dtype.element_ty))


class ModelNew(nn.Module):
    def forward(self, q, k_cache, v_cache, block_table, seq_lens):
        assert q.is_contiguous() and k_cache.is_contiguous() and v_cache.is_contiguous() and block_table.is_contiguous()
        B, Hq, D = q.shape
        page, Hk = k_cache.shape[1], k_cache.shape[2]
        assert D == triton.next_power_of_2(D) and Hq % Hk == 0
        out = torch.empty_like(q)
        _paged_decode_kernel[(B * Hq,)](q, k_cache, v_cache, block_table, seq_lens, out, Hq, Hk, block_table.shape[1],
                                        D ** -0.5, PAGE=page, D=D, BLOCK_N=64 if q.is_cuda else 8)
        return out
