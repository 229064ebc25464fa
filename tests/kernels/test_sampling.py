"""greedy (argmax, ties to the lowest index) and top-p sampling (the draw follows the truncated,
renormalised distribution; tokens outside the top-p set never come out)."""

from __future__ import annotations

import pytest
import torch

from floorline.errors import InputError
from floorline.kernels.sampling import greedy, sample


@pytest.mark.parametrize("B,V", [(1, 151), (3, 5000), (2, 9000)])
def test_greedy(device, B, V):
    g = torch.Generator().manual_seed(V)
    logits = torch.randn(B, V, generator=g)
    logits[0, V // 3] = logits[0, V - 1] = 10.0  # a tie: the lower index wins
    out = torch.full((B,), -1, dtype=torch.int64, device=device)
    greedy(logits.to(device), out)
    assert out.cpu().tolist() == torch.argmax(logits, dim=-1).tolist()
    assert out[0].item() == V // 3


def test_top_p_sampling_distribution(device):
    # the CPU interpreter runs ~25 ms per row, so fewer draws there and a tolerance to match
    V, T, top_p = 23, 0.7, 0.8
    rows = 20000 if device == "cuda" else 500
    g = torch.Generator().manual_seed(11)
    base = torch.randn(V, generator=g) * 2
    p = torch.softmax(base.double() / T, dim=0)
    srt, idx = torch.sort(p, descending=True)
    keep_n = int((torch.cumsum(srt, 0) < top_p).sum()) + 1  # smallest set with mass >= top_p
    keep = idx[:keep_n]
    want = torch.zeros(V, dtype=torch.float64)
    want[keep] = p[keep] / p[keep].sum()
    out = torch.full((rows,), -1, dtype=torch.int64, device=device)
    seed = torch.tensor([1234], dtype=torch.int64, device=device)
    sample(base.expand(rows, V).contiguous().to(device), out, seed, T, top_p)
    counts = torch.bincount(out.cpu(), minlength=V).double() / rows
    assert set(out.cpu().tolist()) <= set(keep.tolist())
    assert float((counts - want).abs().max()) < 4.5 * (0.25 / rows) ** 0.5  # 4.5 sigma


def test_sampling_rejects_bad_temperature():
    with pytest.raises(InputError, match="temperature"):
        sample(torch.zeros(1, 4), torch.zeros(1, dtype=torch.int64), torch.zeros(1, dtype=torch.int64), 0.0, 0.9)
