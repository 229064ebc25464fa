"""Safetensors checkpoints written here (single file and sharded) load back exactly; bad ones
(missing tensor, wrong shape, unknown architecture, corrupt file) give one line naming the tensor
and exit 2 through the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from floorline.errors import InputError
from floorline.model.checkpoint import load_checkpoint, preflight, save_checkpoint
from floorline.model.config import builtin
from floorline.model.weights import random_weights


@pytest.mark.parametrize("shards", [1, 3])
def test_round_trip(tmp_path, shards):
    w = random_weights(builtin("tiny-moe"), dtype="bf16", seed=4)
    save_checkpoint(w, tmp_path, shards=shards)
    assert (tmp_path / "model.safetensors.index.json").exists() == (shards > 1)
    back = load_checkpoint(tmp_path, dtype="bf16")
    assert torch.equal(back.embed, w.embed) and torch.equal(back.lm_head, w.lm_head)
    for a, b in zip(back.layers, w.layers, strict=True):
        assert torch.equal(a.qkv.w, b.qkv.w) and torch.equal(a.gate_up.w, b.gate_up.w) and torch.equal(a.down.w, b.down.w)
        assert (a.router is None) == (b.router is None)


def test_fp8_load_quantises_per_channel(tmp_path):
    w = random_weights(builtin("tiny-moe"), dtype="bf16", seed=4)
    save_checkpoint(w, tmp_path)
    q = load_checkpoint(tmp_path, dtype="fp8")
    L = q.layers[0]
    assert L.qkv.w.dtype == torch.float8_e4m3fn and L.qkv.scale.shape == (L.qkv.w.shape[0],)
    err = (L.qkv.real(torch.float64) - w.layers[0].qkv.w.double()).norm() / w.layers[0].qkv.w.double().norm()
    assert err < 0.05  # e4m3 keeps 3 mantissa bits


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "floorline", *args], capture_output=True, text=True, timeout=120)


def _bad(tmp_path, how):
    w = random_weights(builtin("tiny-moe"), dtype="bf16", seed=1)
    save_checkpoint(w, tmp_path)
    f = tmp_path / "model.safetensors"
    if how == "missing":
        t = load_file(f)
        del t["model.layers.2.mlp.experts.3.up_proj.weight"]
        save_file(t, f)
        return "model.layers.2.mlp.experts.3.up_proj.weight"
    if how == "shape":
        t = load_file(f)
        t["model.layers.0.self_attn.k_proj.weight"] = t["model.layers.0.self_attn.k_proj.weight"][:-1].contiguous()
        save_file(t, f)
        return "model.layers.0.self_attn.k_proj.weight"
    if how == "arch":
        cfg = json.loads((tmp_path / "config.json").read_text())
        cfg.update(architectures=["MixtralForCausalLM"], model_type="mixtral")
        (tmp_path / "config.json").write_text(json.dumps(cfg))
        return "architectures"
    if how == "corrupt":
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2])  # truncated: tensors run past the end of the file
        return "model.safetensors|tensor "
    raise AssertionError(how)


@pytest.mark.parametrize("how", ["missing", "shape", "arch", "corrupt"])
def test_bad_checkpoint_is_one_line_exit_2(tmp_path, how):
    needle = _bad(tmp_path, how)
    r = _cli("generate", "--checkpoint", str(tmp_path), "--prompt-ids", "1,2", "--max-new-tokens", "1",
             "--device", "cpu", "--dtype", "float64")
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert any(n in lines[0] for n in needle.split("|")), lines[0]


def test_preflight_names_prequantised_tensors(tmp_path):
    w = random_weights(builtin("tiny-moe"), dtype="bf16", seed=1)
    save_checkpoint(w, tmp_path)
    t = load_file(tmp_path / "model.safetensors")
    t["model.layers.0.self_attn.q_proj.weight_scale_inv"] = torch.ones(2, 2)
    save_file(t, tmp_path / "model.safetensors")
    pf = preflight(tmp_path)
    assert not pf.ok and "weight_scale_inv" in pf.problems[0]
    with pytest.raises(InputError, match="pre-quantised"):
        load_checkpoint(tmp_path)


def test_preflight_command_lists_every_problem(tmp_path):
    _bad(tmp_path, "shape")
    t = load_file(tmp_path / "model.safetensors")
    del t["model.norm.weight"]
    save_file(t, tmp_path / "model.safetensors")
    r = _cli("preflight", "--checkpoint", str(tmp_path), "--tp", "4", "--json")
    assert r.returncode == 2
    out = json.loads(r.stdout)
    text = " ".join(out["problems"])
    assert "model.layers.0.self_attn.k_proj.weight" in text and "model.norm.weight" in text
    assert "num_key_value_heads 2: not divisible by --tp 4" in text


def test_preflight_command_ok(tmp_path):
    save_checkpoint(random_weights(builtin("tiny-moe"), dtype="bf16", seed=1), tmp_path)
    r = _cli("preflight", "--checkpoint", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["problems"] == []
