"""KV quantize to symmetric 4-bit integers, two codes per byte (even element in the low nibble), one float32
scale per row (absmax / 7). Codes round half up: q = clamp(floor(x / scale + 0.5), -8, 7)."""

import torch
from torch import nn


class Model(nn.Module):
    def forward(self, x: torch.Tensor):
        xd = x.double()
        scale = xd.abs().amax(-1, keepdim=True).clamp_min(1e-12) / 7.0
        q = torch.floor(xd / scale + 0.5).clamp(-8, 7).to(torch.int16)
        nib = (q & 0xF).to(torch.uint8)
        packed = nib[..., 0::2] | (nib[..., 1::2] << 4)
        return packed, scale.squeeze(-1).float()


class Baseline(nn.Module):
    """Eager PyTorch in float32: absmax, scale, round, pack."""

    def forward(self, x):
        xf = x.float()
        scale = xf.abs().amax(-1, keepdim=True).clamp_min(1e-12) / 7.0
        q = torch.floor(xf / scale + 0.5).clamp(-8, 7).to(torch.int16)
        nib = (q & 0xF).to(torch.uint8)
        return nib[..., 0::2] | (nib[..., 1::2] << 4), scale.squeeze(-1)


def get_inputs(rows: int = 256, head_dim: int = 128):
    return [torch.randn(rows, head_dim, dtype=torch.bfloat16)]


def get_init_inputs():
    return []


def _codes(packed: torch.Tensor) -> torch.Tensor:
    lo = (packed & 0xF).to(torch.int16)
    hi = (packed >> 4).to(torch.int16)
    q = torch.stack([lo, hi], dim=-1).flatten(-2)
    return torch.where(q >= 8, q - 16, q)


def compare(outputs, reference):
    """Normalised error per output (pass when <= 1): codes may differ by one step where x/scale sits on a
    rounding tie that float32 and float64 scales resolve differently; the scale must match to float32."""
    codes = (_codes(outputs[0]) - _codes(reference[0])).abs().max().item() if outputs[0].numel() else 0
    s_ref = reference[1].double()
    s_err = ((outputs[1].double() - s_ref).abs() / (1e-6 * s_ref.abs() + 1e-12)).max().item()
    return [float(codes), s_err]


METADATA = {
    "op": "kv_quantize_int4",
    "tolerance": {"atol": 1e-6, "rtol": 1e-6},
    "heldout_shapes": [{"rows": 1, "head_dim": 64}, {"rows": 37, "head_dim": 128}],
    "cpu_shape": {"rows": 5, "head_dim": 32},
    "cpu_heldout_shapes": [{"rows": 3, "head_dim": 16}],
    "forbidden_ops": [],
    "floor": "bytes",
}
