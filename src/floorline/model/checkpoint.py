"""Safetensors checkpoints in Hugging Face naming: write, preflight, load (single file or sharded).

This module is the one place where HF tensor names meet floorline's layout (model/weights.py).
Every failure a user can cause (missing tensor, wrong shape, wrong dtype, corrupt file, unknown
architecture) raises InputError naming the tensor or file, so the CLI prints one line and exits 2.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from floorline.errors import InputError
from floorline.model.config import ModelConfig, load_hf_config
from floorline.model.weights import LayerWeights, Linear, ModelWeights, quantize_fp8, torch_dtype

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"
_FLOAT_DTYPES = ("F64", "F32", "F16", "BF16")


def expected_tensors(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor name a Qwen3MoeForCausalLM checkpoint of this shape holds, with its shape."""
    H, d = cfg.hidden_size, cfg.head_dim
    out: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (cfg.vocab_size, H), "model.norm.weight": (H,)}
    if not cfg.tie_word_embeddings:
        out["lm_head.weight"] = (cfg.vocab_size, H)
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        out[p + "input_layernorm.weight"] = (H,)
        out[p + "post_attention_layernorm.weight"] = (H,)
        out[p + "self_attn.q_proj.weight"] = (cfg.q_size, H)
        out[p + "self_attn.k_proj.weight"] = (cfg.kv_size, H)
        out[p + "self_attn.v_proj.weight"] = (cfg.kv_size, H)
        out[p + "self_attn.o_proj.weight"] = (H, cfg.q_size)
        out[p + "self_attn.q_norm.weight"] = (d,)
        out[p + "self_attn.k_norm.weight"] = (d,)
        if cfg.is_moe_layer(i):
            inter = cfg.moe_intermediate_size
            out[p + "mlp.gate.weight"] = (cfg.num_experts, H)
            for e in range(cfg.num_experts):
                q = f"{p}mlp.experts.{e}."
                out[q + "gate_proj.weight"] = (inter, H)
                out[q + "up_proj.weight"] = (inter, H)
                out[q + "down_proj.weight"] = (H, inter)
        else:
            inter = cfg.intermediate_size
            out[p + "mlp.gate_proj.weight"] = (inter, H)
            out[p + "mlp.up_proj.weight"] = (inter, H)
            out[p + "mlp.down_proj.weight"] = (H, inter)
    return out


def _hf_tensors(w: ModelWeights) -> dict[str, Any]:
    import torch

    def real(lin: Linear) -> Any:
        return lin.w if lin.scale is None else lin.real(torch.bfloat16)

    cfg = w.cfg
    out = {"model.embed_tokens.weight": w.embed, "model.norm.weight": w.norm}
    if not cfg.tie_word_embeddings:
        out["lm_head.weight"] = w.lm_head
    for i, L in enumerate(w.layers):
        p = f"model.layers.{i}."
        qkv = real(L.qkv)
        out[p + "input_layernorm.weight"] = L.attn_norm
        out[p + "post_attention_layernorm.weight"] = L.mlp_norm
        out[p + "self_attn.q_proj.weight"] = qkv[: cfg.q_size]
        out[p + "self_attn.k_proj.weight"] = qkv[cfg.q_size : cfg.q_size + cfg.kv_size]
        out[p + "self_attn.v_proj.weight"] = qkv[cfg.q_size + cfg.kv_size :]
        out[p + "self_attn.o_proj.weight"] = real(L.o)
        out[p + "self_attn.q_norm.weight"] = L.q_norm
        out[p + "self_attn.k_norm.weight"] = L.k_norm
        gu, dn = real(L.gate_up), real(L.down)
        inter = gu.shape[1] // 2
        if L.is_moe:
            out[p + "mlp.gate.weight"] = L.router
            for e in range(gu.shape[0]):
                q = f"{p}mlp.experts.{e}."
                out[q + "gate_proj.weight"], out[q + "up_proj.weight"] = gu[e, :inter], gu[e, inter:]
                out[q + "down_proj.weight"] = dn[e]
        else:
            out[p + "mlp.gate_proj.weight"], out[p + "mlp.up_proj.weight"] = gu[0, :inter], gu[0, inter:]
            out[p + "mlp.down_proj.weight"] = dn[0]
    return out


def save_checkpoint(w: ModelWeights, directory: Path, shards: int = 1) -> Path:
    """Write config.json and the weights in HF naming; shards > 1 writes model-0000i-of-0000n files
    and model.safetensors.index.json, as transformers' save_pretrained does."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in _hf_tensors(w).items()}
    (directory / "config.json").write_text(json.dumps(w.cfg.to_hf(), indent=2) + "\n")
    if shards <= 1:
        save_file(tensors, str(directory / SINGLE), metadata={"format": "pt"})
        return directory
    names = list(tensors)
    per = -(-len(names) // shards)
    weight_map, total = {}, 0
    for s in range(shards):
        part = names[s * per : (s + 1) * per]
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        save_file({k: tensors[k] for k in part}, str(directory / fname), metadata={"format": "pt"})
        for k in part:
            weight_map[k] = fname
            total += tensors[k].numel() * tensors[k].element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return directory


@dataclass
class TensorInfo:
    file: Path
    dtype: str
    shape: tuple[int, ...]


@dataclass
class Preflight:
    cfg: ModelConfig
    tensors: dict[str, TensorInfo]
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    weight_bytes: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_header(file: Path) -> dict[str, Any]:
    """The safetensors header (8-byte little-endian length, then JSON), checked against the file size."""
    try:
        size = file.stat().st_size
        with open(file, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise InputError(f"{file.name}: corrupt safetensors file (shorter than its 8-byte header length)")
            (n,) = struct.unpack("<Q", raw)
            if n > size - 8 or n > 100_000_000:
                raise InputError(f"{file.name}: corrupt safetensors file (header length {n} exceeds file size {size})")
            header = json.loads(f.read(n))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InputError(f"{file.name}: corrupt safetensors file (header is not valid JSON)") from None
    except OSError as e:
        raise InputError(f"{file.name}: cannot read ({e.strerror})") from None
    if not isinstance(header, dict):
        raise InputError(f"{file.name}: corrupt safetensors file (header is not an object)")
    data_len = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            start, end = info["data_offsets"]
            dtype, shape = info["dtype"], tuple(info["shape"])
        except (KeyError, TypeError, ValueError):
            raise InputError(f"{file.name}: corrupt safetensors file (entry for tensor {name} is malformed)") from None
        if end > data_len or start > end:
            raise InputError(f"tensor {name}: corrupt data in {file.name} (bytes {start}..{end} beyond the file's {data_len})")
        info["shape"], info["dtype"] = shape, dtype
    return header


def _files(directory: Path) -> list[Path]:
    index = directory / INDEX
    if index.exists():
        try:
            wm = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(f"{INDEX}: corrupt (expected a JSON object with weight_map)") from None
        files = sorted({directory / f for f in wm.values()})
        for f in files:
            if not f.exists():
                raise InputError(f"{INDEX}: names shard {f.name}, which is missing")
        return files
    if (directory / SINGLE).exists():
        return [directory / SINGLE]
    found = sorted(directory.glob("*.safetensors"))
    if not found:
        raise InputError(f"--checkpoint: {directory} holds no .safetensors files")
    return found


def preflight(directory: Path, cfg: ModelConfig | None = None) -> Preflight:
    """Read config.json and every safetensors header (no tensor data) and name what cannot run."""
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"--checkpoint: {directory} is not a directory")
    cfg = cfg or load_hf_config(directory)
    tensors: dict[str, TensorInfo] = {}
    for f in _files(directory):
        for name, info in _read_header(f).items():
            if name != "__metadata__":
                tensors[name] = TensorInfo(f, info["dtype"], info["shape"])
    pf = Preflight(cfg, tensors)
    expected = expected_tensors(cfg)
    for name, shape in expected.items():
        t = tensors.get(name)
        if t is None:
            pf.problems.append(f"tensor {name}: missing (expected shape {list(shape)})")
        elif t.shape != shape:
            pf.problems.append(f"tensor {name}: shape {list(t.shape)}, expected {list(shape)}")
        elif t.dtype not in _FLOAT_DTYPES:
            pf.problems.append(
                f"tensor {name}: dtype {t.dtype} cannot run (floorline reads {', '.join(_FLOAT_DTYPES)} "
                "and quantises to FP8 itself with --dtype fp8)"
            )
        else:
            pf.weight_bytes += _nbytes(t)
    extra = sorted(set(tensors) - set(expected))
    scales = [n for n in extra if n.endswith(("weight_scale_inv", "weight_scale", "input_scale"))]
    if scales:
        pf.problems.append(
            f"tensor {scales[0]}: pre-quantised checkpoints (block-wise FP8 scales) cannot run; "
            "load the bf16 checkpoint with --dtype fp8 instead"
        )
    other = [n for n in extra if n not in scales]
    if other:
        pf.warnings.append(f"{len(other)} tensor(s) not used by {cfg.name}, e.g. {other[0]}")
    return pf


def _nbytes(t: TensorInfo) -> int:
    size = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}[t.dtype]
    n = 1
    for s in t.shape:
        n *= s
    return n * size


def load_checkpoint(directory: Path, dtype: str = "bf16", device: str = "cpu") -> ModelWeights:
    """Load a checkpoint into floorline's layout after a preflight; the first problem is the error."""
    import torch
    from safetensors import SafetensorError, safe_open

    pf = preflight(directory)
    if not pf.ok:
        raise InputError(pf.problems[0])
    cfg, store = pf.cfg, torch_dtype(dtype)
    handles: dict[Path, Any] = {}

    def get(name: str) -> Any:
        info = pf.tensors[name]
        try:
            if info.file not in handles:
                handles[info.file] = safe_open(str(info.file), framework="pt", device="cpu")
            t = handles[info.file].get_tensor(name)
        except (SafetensorError, OSError, RuntimeError) as e:
            raise InputError(f"tensor {name}: cannot read from {info.file.name} ({str(e).splitlines()[0]})") from None
        if not torch.isfinite(t).all():
            raise InputError(f"tensor {name}: holds NaN or Inf values")
        return t.to(device=device, dtype=store)

    def lin(t: Any) -> Linear:
        return quantize_fp8(t) if dtype == "fp8" else Linear(t)

    layers = []
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        qkv = torch.cat([get(p + f"self_attn.{n}_proj.weight") for n in "qkv"])
        if cfg.is_moe_layer(i):
            E = cfg.num_experts
            q = f"{p}mlp.experts."
            gate_up = torch.stack(
                [torch.cat([get(f"{q}{e}.gate_proj.weight"), get(f"{q}{e}.up_proj.weight")]) for e in range(E)]
            )
            down = torch.stack([get(f"{q}{e}.down_proj.weight") for e in range(E)])
            router = get(p + "mlp.gate.weight")
        else:
            gate_up = torch.cat([get(p + "mlp.gate_proj.weight"), get(p + "mlp.up_proj.weight")]).unsqueeze(0)
            down = get(p + "mlp.down_proj.weight").unsqueeze(0)
            router = None
        layers.append(
            LayerWeights(
                attn_norm=get(p + "input_layernorm.weight"),
                qkv=lin(qkv),
                q_norm=get(p + "self_attn.q_norm.weight"),
                k_norm=get(p + "self_attn.k_norm.weight"),
                o=lin(get(p + "self_attn.o_proj.weight")),
                mlp_norm=get(p + "post_attention_layernorm.weight"),
                gate_up=lin(gate_up),
                down=lin(down),
                router=router,
            )
        )
    embed = get("model.embed_tokens.weight")
    lm_head = embed if cfg.tie_word_embeddings else get("lm_head.weight")
    return ModelWeights(cfg, dtype, embed, layers, get("model.norm.weight"), lm_head)
