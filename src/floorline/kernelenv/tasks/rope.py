"""Rotary position embedding (rotate-half / NeoX layout) applied to q and k of a decode step (bf16)."""

import torch
from torch import nn


class Model(nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        # q [T, Hq, D], k [T, Hk, D], cos/sin [T, D/2] float32
        def rot(x):
            xd = x.double()
            half = xd.shape[-1] // 2
            x1, x2 = xd[..., :half], xd[..., half:]
            c = cos.double()[:, None, :]
            s = sin.double()[:, None, :]
            return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1).to(x.dtype)

        return rot(q), rot(k)


class Baseline(nn.Module):
    """Eager PyTorch at the task's dtype (float32 math, as most serving stacks do it)."""

    def forward(self, q, k, cos, sin):
        def rot(x):
            half = x.shape[-1] // 2
            xf = x.float()
            x1, x2 = xf[..., :half], xf[..., half:]
            c, s = cos[:, None, :], sin[:, None, :]
            return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1).to(x.dtype)

        return rot(q), rot(k)


def get_inputs(tokens: int = 8, q_heads: int = 32, kv_heads: int = 4, head_dim: int = 128):
    pos = torch.randint(0, 32768, (tokens,)).double()
    inv = 1e6 ** (-torch.arange(0, head_dim // 2, dtype=torch.float64) / (head_dim // 2))
    ang = pos[:, None] * inv[None, :]
    return [
        torch.randn(tokens, q_heads, head_dim, dtype=torch.bfloat16),
        torch.randn(tokens, kv_heads, head_dim, dtype=torch.bfloat16),
        torch.cos(ang).float(),
        torch.sin(ang).float(),
    ]


def get_init_inputs():
    return []


METADATA = {
    "op": "rope",
    "tolerance": {"atol": 0.02, "rtol": 0.02},
    "heldout_shapes": [{"tokens": 1, "q_heads": 64, "kv_heads": 8, "head_dim": 64}, {"tokens": 3, "q_heads": 5, "kv_heads": 1, "head_dim": 128}],
    "cpu_shape": {"tokens": 2, "q_heads": 4, "kv_heads": 2, "head_dim": 32},
    "cpu_heldout_shapes": [{"tokens": 3, "q_heads": 3, "kv_heads": 1, "head_dim": 16}],
    "forbidden_ops": [],
    "floor": "bytes",
}
