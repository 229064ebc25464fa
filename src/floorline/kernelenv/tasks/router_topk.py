"""MoE router: softmax over experts, top-k, renormalised weights (Qwen3-MoE style). float32 logits."""

import torch
from torch import nn


class Model(nn.Module):
    def __init__(self, top_k: int = 8):
        super().__init__()
        self.top_k = top_k

    def forward(self, logits: torch.Tensor):
        p = torch.softmax(logits.double(), dim=-1)
        w, ids = torch.topk(p, self.top_k, dim=-1)  # sorted, largest first
        w = w / w.sum(-1, keepdim=True)
        return w.float(), ids.to(torch.int32)


class Baseline(nn.Module):
    """Eager PyTorch in float32: softmax, topk, renormalise."""

    def __init__(self, top_k: int = 8):
        super().__init__()
        self.top_k = top_k

    def forward(self, logits):
        w, ids = torch.topk(torch.softmax(logits, dim=-1), self.top_k, dim=-1)
        return w / w.sum(-1, keepdim=True), ids.to(torch.int32)


def get_inputs(tokens: int = 8, experts: int = 128):
    return [2 * torch.randn(tokens, experts, dtype=torch.float32)]


def get_init_inputs():
    return [8]


METADATA = {
    "op": "router_topk",
    "tolerance": {"atol": 1e-5, "rtol": 1e-5},  # ids compare exactly; fresh normal logits have no ties
    "heldout_shapes": [{"tokens": 1, "experts": 128}, {"tokens": 7, "experts": 100}],
    "cpu_shape": {"tokens": 3, "experts": 64},
    "cpu_heldout_shapes": [{"tokens": 2, "experts": 40}],
    "forbidden_ops": ["aten::topk", "aten::sort", "aten::_softmax", "aten::softmax", "aten::argsort"],
    "floor": "bytes",
}
