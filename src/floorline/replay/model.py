"""Model shapes for the replay: presets in models.toml or a Hugging Face config.json (dense models)."""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from floorline.errors import InputError

HERE = Path(__file__).parent


@dataclass(frozen=True)
class ModelShape:
    name: str
    params: float
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    source: str

    def kv_bytes_per_token(self, kv_dtype_bytes: float) -> float:
        return 2 * self.layers * self.kv_heads * self.head_dim * kv_dtype_bytes  # K and V


def presets() -> dict[str, ModelShape]:
    data = tomllib.loads((HERE / "models.toml").read_text())["models"]
    return {k: ModelShape(k, float(v["params"]), int(v["layers"]), int(v["hidden"]), int(v["heads"]),
                          int(v["kv_heads"]), int(v["head_dim"]), v["source"]) for k, v in data.items()}


def _from_hf(path: Path) -> ModelShape:
    try:
        cfg = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"--model {path}: malformed JSON at line {e.lineno}: {e.msg}") from None
    try:
        layers = int(cfg["num_hidden_layers"])
        hidden = int(cfg["hidden_size"])
        heads = int(cfg["num_attention_heads"])
        kv = int(cfg.get("num_key_value_heads", heads))
        hd = int(cfg.get("head_dim") or hidden // heads)
        inter = int(cfg["intermediate_size"])
        vocab = int(cfg["vocab_size"])
    except KeyError as e:
        raise InputError(f"--model {path}: field {e.args[0]}: missing from the config") from None
    if "num_experts" in cfg or "n_routed_experts" in cfg:
        raise InputError(f"--model {path}: MoE configs are not modelled by the replay roofline yet; "
                         "give a dense config or a preset")
    tied = bool(cfg.get("tie_word_embeddings", False))
    # q, k, v, o projections and a gated MLP (3 matrices) per layer, plus embeddings (and the head).
    per_layer = hidden * heads * hd * 2 + hidden * kv * hd * 2 + 3 * hidden * inter
    params = layers * per_layer + vocab * hidden * (1 if tied else 2)
    return ModelShape(path.stem, float(params), layers, hidden, heads, kv, hd, f"{path} (parameters counted from shapes)")


def model_shape(name: str) -> ModelShape:
    p = Path(name)
    if p.suffix == ".json":
        if not p.exists():
            raise InputError(f"--model {name}: no such file")
        return _from_hf(p)
    ps = presets()
    if name not in ps:
        raise InputError(f"--model: unknown model {name!r}; allowed: {', '.join(ps)} or a config.json path")
    return ps[name]
