"""Paged decode attention, grouped-query: one new query token per sequence attends to its paged bf16 KV cache.

q [B, Hq, D]; k_cache, v_cache [pages, page_size, Hk, D]; block_table [B, max_pages] int32 (page ids);
seq_lens [B] int32. Output [B, Hq, D] bf16. Softmax scale 1/sqrt(D).
"""

import math

import torch
from torch import nn


class Model(nn.Module):
    def forward(self, q, k_cache, v_cache, block_table, seq_lens):
        B, Hq, D = q.shape
        page = k_cache.shape[1]
        Hk = k_cache.shape[2]
        out = torch.empty_like(q)
        for b in range(B):
            n = int(seq_lens[b])
            pages = block_table[b, : (n + page - 1) // page].long()
            k = k_cache[pages].reshape(-1, Hk, D)[:n].double()  # [n, Hk, D]
            v = v_cache[pages].reshape(-1, Hk, D)[:n].double()
            qd = q[b].double().view(Hk, Hq // Hk, D)  # query heads grouped by their KV head
            s = torch.einsum("hgd,nhd->hgn", qd, k) / math.sqrt(D)
            p = torch.softmax(s, dim=-1)
            out[b] = torch.einsum("hgn,nhd->hgd", p, v).reshape(Hq, D).to(q.dtype)
        return out


class Baseline(nn.Module):
    """Eager PyTorch: gather the pages into a padded [B, L, Hk, D] tensor, then SDPA with a length mask."""

    def forward(self, q, k_cache, v_cache, block_table, seq_lens):
        B, Hq, D = q.shape
        page, Hk = k_cache.shape[1], k_cache.shape[2]
        L = block_table.shape[1] * page
        k = k_cache[block_table.long()].reshape(B, L, Hk, D).transpose(1, 2)
        v = v_cache[block_table.long()].reshape(B, L, Hk, D).transpose(1, 2)
        mask = torch.arange(L, device=q.device)[None, :] < seq_lens[:, None]
        o = torch.nn.functional.scaled_dot_product_attention(
            q[:, :, None, :], k.repeat_interleave(Hq // Hk, 1), v.repeat_interleave(Hq // Hk, 1),
            attn_mask=mask[:, None, None, :])
        return o[:, :, 0, :]


def get_inputs(batch: int = 8, q_heads: int = 32, kv_heads: int = 4, head_dim: int = 128, page_size: int = 16,
               max_len: int = 2048):
    max_pages = (max_len + page_size - 1) // page_size
    n_pages = batch * max_pages + 3
    seq_lens = torch.randint(max(1, max_len // 2), max_len + 1, (batch,), dtype=torch.int32)
    # pages handed out in a random order, as a paged allocator does after churn
    block_table = torch.randperm(n_pages)[: batch * max_pages].view(batch, max_pages).to(torch.int32)
    return [
        torch.randn(batch, q_heads, head_dim, dtype=torch.bfloat16),
        torch.randn(n_pages, page_size, kv_heads, head_dim, dtype=torch.bfloat16),
        torch.randn(n_pages, page_size, kv_heads, head_dim, dtype=torch.bfloat16),
        block_table,
        seq_lens,
    ]


def get_init_inputs():
    return []


def floor_bytes(inputs, outputs):
    """Only the pages a sequence owns are read: K and V of seq_len tokens, plus q and the output."""
    q, k_cache, _, _, seq_lens = inputs
    per_token = 2 * k_cache.shape[2] * k_cache.shape[3] * k_cache.element_size()
    return float(int(seq_lens.sum()) * per_token + 2 * q.numel() * q.element_size())


METADATA = {
    "op": "paged_decode_attention",
    "tolerance": {"atol": 0.02, "rtol": 0.02},
    "heldout_shapes": [{"batch": 3, "q_heads": 16, "kv_heads": 2, "head_dim": 64, "page_size": 16, "max_len": 333},
                       {"batch": 1, "q_heads": 8, "kv_heads": 8, "head_dim": 128, "page_size": 32, "max_len": 100}],
    "cpu_shape": {"batch": 2, "q_heads": 4, "kv_heads": 2, "head_dim": 16, "page_size": 4, "max_len": 19},
    "cpu_heldout_shapes": [{"batch": 1, "q_heads": 2, "kv_heads": 1, "head_dim": 16, "page_size": 8, "max_len": 9}],
    "forbidden_ops": ["aten::_scaled_dot_product_flash_attention", "aten::_scaled_dot_product_efficient_attention",
                      "aten::scaled_dot_product_attention", "aten::_flash_attention_forward",
                      "aten::_scaled_dot_product_cudnn_attention"],
    "floor": "bytes",
}
