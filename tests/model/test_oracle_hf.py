"""The float64 reference against transformers' Qwen3MoeForCausalLM on the same weights (the oracle).

transformers runs three pieces in float32 even for a float64 model: RMSNorm (`.to(torch.float32)`),
the router softmax (`dtype=torch.float`) and the RoPE angles (`inv_freq.float() @ positions.float()`).
Those casts alone put ~1e-7 between any two correct implementations, so the 1e-10 comparison lifts
exactly those three casts to float64 (same formulas otherwise) and a second test compares against
unmodified transformers at a float32-sized tolerance. The attention runs through transformers' own
SDPA path, the MoE through its own expert loop, the checkpoint through its own loader.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from floorline.model.checkpoint import save_checkpoint
from floorline.model.config import RopeScaling, builtin
from floorline.model.reference import ReferenceModel, rope_inv_freq
from floorline.model.weights import random_weights

transformers = pytest.importorskip("transformers")
from transformers.models.qwen3_moe import modeling_qwen3_moe as hf  # noqa: E402


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _f64_rmsnorm(self, x):
    return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon))


def _f64_router(self, x):
    x = x.reshape(-1, self.hidden_dim)
    logits = torch.nn.functional.linear(x, self.weight)
    probs = torch.softmax(logits, dim=-1)  # float64 here; transformers asks for float32
    top, idx = torch.topk(probs, self.top_k, dim=-1)
    if self.norm_topk_prob:
        top = top / top.sum(dim=-1, keepdim=True)
    return logits, top, idx


def _f64_rotary(cfg):
    inv_freq, scale = rope_inv_freq(cfg)

    def forward(self, x, position_ids):
        angles = position_ids[..., None].to(torch.float64) * inv_freq  # [B, T, d/2]
        emb = torch.cat([angles, angles], dim=-1)
        return (emb.cos() * self.attention_scaling).to(x.dtype), (emb.sin() * self.attention_scaling).to(x.dtype)

    return forward


def _hf_model(cfg, tmp_path, seed=0, shards=1):
    w = random_weights(cfg, dtype="float64", seed=seed)
    save_checkpoint(w, tmp_path, shards=shards)
    model = hf.Qwen3MoeForCausalLM.from_pretrained(
        str(tmp_path), dtype=torch.float64, attn_implementation="sdpa", experts_implementation="eager"
    )
    return w, model.eval()


CASES = {
    "moe+dense-by-mlp_only_layers": builtin("tiny-moe"),
    "sparse_step2+no-renorm+tied": builtin("small-moe").cut(layers=3),
    "yarn": dataclasses.replace(
        builtin("tiny-moe"),
        rope_scaling=RopeScaling("yarn", factor=4.0, original_max_position_embeddings=64),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_reference_matches_transformers_f64(case, tmp_path, monkeypatch):
    cfg = CASES[case]
    monkeypatch.setattr(hf.Qwen3MoeRMSNorm, "forward", _f64_rmsnorm)
    monkeypatch.setattr(hf.Qwen3MoeTopKRouter, "forward", _f64_router)
    monkeypatch.setattr(hf.Qwen3MoeRotaryEmbedding, "forward", _f64_rotary(cfg))
    w, model = _hf_model(cfg, tmp_path, seed=len(case), shards=2 if "tied" in case else 1)
    tokens = torch.randint(0, cfg.vocab_size, (13,), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ours = ReferenceModel(w).forward(tokens, ReferenceModel(w).new_cache())
        theirs = model(tokens[None]).logits[0]
    assert theirs.dtype == torch.float64
    assert rel_l2(ours, theirs) <= 1e-10


def test_rope_inv_freq_matches_transformers():
    for cfg in CASES.values():
        ours, scale = rope_inv_freq(cfg)
        theirs = hf.Qwen3MoeRotaryEmbedding(hf.Qwen3MoeConfig(**cfg.to_hf()))
        assert rel_l2(ours, theirs.inv_freq.double()) < 1e-6  # transformers builds it in float32
        assert scale == pytest.approx(theirs.attention_scaling, rel=1e-12)


def test_reference_matches_unmodified_transformers(tmp_path):
    cfg = CASES["moe+dense-by-mlp_only_layers"]
    w, model = _hf_model(cfg, tmp_path, seed=3)
    tokens = torch.randint(0, cfg.vocab_size, (9,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = ReferenceModel(w).forward(tokens, ReferenceModel(w).new_cache())
        theirs = model(tokens[None]).logits[0]
    assert rel_l2(ours, theirs) <= 1e-5  # the float32 casts above, nothing more


def test_incremental_decode_matches_full_forward():
    cfg = builtin("tiny-moe")
    ref = ReferenceModel(random_weights(cfg, dtype="float64", seed=5))
    tokens = torch.randint(0, cfg.vocab_size, (10,), generator=torch.Generator().manual_seed(2))
    full = ref.forward(tokens, ref.new_cache())
    cache = ref.new_cache()
    steps = [ref.forward(tokens[:6], cache)] + [ref.forward(tokens[i : i + 1], cache) for i in range(6, 10)]
    assert rel_l2(torch.cat(steps), full) <= 1e-12


def test_transformers_built_on_our_tensors_matches_reference():
    """bench decode's baseline: transformers' modules whose parameters are views of our tensors."""
    from floorline.bench.decode import hf_model

    w = random_weights(builtin("tiny-moe"), dtype="float64", seed=9)
    model = hf_model(w, "eager")
    assert model.model.layers[0].mlp.experts.gate_up_proj.data_ptr() == w.layers[0].gate_up.w.data_ptr()
    tokens = torch.randint(0, w.cfg.vocab_size, (7,), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        theirs = model(tokens[None]).logits[0]
    ours = ReferenceModel(w).forward(tokens, ReferenceModel(w).new_cache())
    assert rel_l2(ours, theirs) <= 1e-5  # unmodified transformers: its float32 casts only
