"""paged_decode_attention through floorline.kernels.decode_attention.decode_attention (split-KV, GQA).
floorline's cache is head-major ([pages, kv_heads, page_size, D]); the task's is token-major
([pages, page_size, kv_heads, D]): a permuted view, whose strides the kernel takes as given."""

from torch import nn

from floorline.kernels.decode_attention import decode_attention
from floorline.kernels.kv_cache import KVCache


class ModelNew(nn.Module):
    def forward(self, q, k_cache, v_cache, block_table, seq_lens):
        page, D = k_cache.shape[1], k_cache.shape[3]
        cache = KVCache(k=k_cache.permute(0, 2, 1, 3), v=v_cache.permute(0, 2, 1, 3), kv_dtype="bf16",
                        page_size=page, head_dim=D)
        out = decode_attention(q.unsqueeze(1), cache, block_table, seq_lens, max_len=block_table.shape[1] * page)
        return out.squeeze(1)
