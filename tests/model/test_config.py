"""ModelConfig from Hugging Face config.json: every field honoured, built-ins, cut-downs, bad input."""

from __future__ import annotations

import json

import pytest

from floorline.errors import InputError
from floorline.model.config import builtin, from_hf, load_hf_config


def test_builtin_30b_is_the_published_shape():
    c = builtin("qwen3-30b-a3b")
    assert (c.hidden_size, c.num_hidden_layers, c.num_experts, c.num_experts_per_tok) == (2048, 48, 128, 8)
    assert (c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.moe_intermediate_size) == (32, 4, 128, 768)
    assert c.vocab_size == 151936 and c.norm_topk_prob and not c.tie_word_embeddings
    big = builtin("qwen3-235b-a22b")
    assert (big.hidden_size, big.num_hidden_layers, big.num_attention_heads, big.moe_intermediate_size) == (4096, 94, 64, 1536)


def test_from_hf_honours_every_field(tmp_path):
    d = builtin("small-moe").to_hf()
    d.update(mlp_only_layers=[0, 2], decoder_sparse_step=1, norm_topk_prob=True, rms_norm_eps=1e-5,
             rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024},
             rope_theta=5e5, tie_word_embeddings=False, max_position_embeddings=8192)
    (tmp_path / "config.json").write_text(json.dumps(d))
    c = load_hf_config(tmp_path)
    assert c.mlp_only_layers == (0, 2) and [c.is_moe_layer(i) for i in range(4)] == [False, True, False, True]
    assert c.rope_scaling.rope_type == "yarn" and c.rope_scaling.factor == 4.0 and c.rope_theta == 5e5
    assert c.rms_norm_eps == 1e-5 and c.max_position_embeddings == 8192 and not c.tie_word_embeddings
    assert from_hf(c.to_hf()) == c.__class__(**{**c.__dict__, "name": "checkpoint"})


def test_decoder_sparse_step():
    c = builtin("small-moe")  # decoder_sparse_step 2: layers 1 and 3 are MoE
    assert [c.is_moe_layer(i) for i in range(4)] == [False, True, False, True]


def test_cut_down_says_so():
    c = builtin("qwen3-30b-a3b").cut(layers=4, experts=16)
    assert c.num_hidden_layers == 4 and c.num_experts == 16
    assert c.cut_down == ("layers 4 of 48", "experts 16 of 128")
    with pytest.raises(InputError, match="--experts"):
        builtin("qwen3-30b-a3b").cut(experts=4)  # fewer than num_experts_per_tok


@pytest.mark.parametrize("change,field", [
    ({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}, "architectures"),
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"num_key_value_heads": 3}, "num_key_value_heads"),
    ({"rope_scaling": {"rope_type": "longrope"}}, "rope_scaling.rope_type"),
    ({"hidden_size": "big"}, "hidden_size"),
])
def test_bad_config_names_the_field(change, field):
    d = {**builtin("tiny-moe").to_hf(), **change}
    with pytest.raises(InputError, match=field.replace(".", r"\.")):
        from_hf(d)
