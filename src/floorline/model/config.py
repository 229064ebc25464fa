"""The Qwen3-MoE model shape: one frozen dataclass, read once from a Hugging Face config.json.

Everything inside floorline speaks `ModelConfig`; Hugging Face field names are translated here and
nowhere else (`from_hf`). Built-in shapes carry the published config values with their source.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from floorline.errors import InputError

ARCHITECTURE = "Qwen3MoeForCausalLM"
_ROPE_TYPES = ("default", "linear", "yarn")


@dataclass(frozen=True)
class RopeScaling:
    """rope_scaling / rope_parameters of the HF config; rope_type 'default' means none."""

    rope_type: str = "default"
    factor: float = 1.0
    original_max_position_embeddings: int | None = None
    beta_fast: float = 32.0
    beta_slow: float = 1.0
    attention_factor: float | None = None
    truncate: bool = True


@dataclass(frozen=True)
class ModelConfig:
    name: str
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    num_experts: int
    num_experts_per_tok: int
    moe_intermediate_size: int
    intermediate_size: int
    norm_topk_prob: bool
    decoder_sparse_step: int
    mlp_only_layers: tuple[int, ...]
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: RopeScaling
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int
    # What a --layers/--experts cut-down changed, so every output can say so.
    cut_down: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        checks = {
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "vocab_size": self.vocab_size,
            "decoder_sparse_step": self.decoder_sparse_step,
            "max_position_embeddings": self.max_position_embeddings,
        }
        for name, v in checks.items():
            if not isinstance(v, int) or v <= 0:
                raise InputError(f"config field {name}: must be a positive integer, got {v!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise InputError(
                f"config field num_key_value_heads: must divide num_attention_heads "
                f"({self.num_attention_heads}), got {self.num_key_value_heads}"
            )
        if self.head_dim % 2:
            raise InputError(f"config field head_dim: must be even for rotary embeddings, got {self.head_dim}")
        if self.num_experts < 0 or (self.num_experts and not 0 < self.num_experts_per_tok <= self.num_experts):
            raise InputError(
                f"config field num_experts_per_tok: must be in 1..num_experts ({self.num_experts}), "
                f"got {self.num_experts_per_tok}"
            )
        if self.rope_scaling.rope_type not in _ROPE_TYPES:
            raise InputError(
                f"config field rope_scaling.rope_type: must be one of {', '.join(_ROPE_TYPES)}, "
                f"got {self.rope_scaling.rope_type!r}"
            )

    def is_moe_layer(self, i: int) -> bool:
        """Hugging Face's rule: sparse unless listed in mlp_only_layers or off the sparse step."""
        return i not in self.mlp_only_layers and self.num_experts > 0 and (i + 1) % self.decoder_sparse_step == 0

    @property
    def q_size(self) -> int:
        return self.num_attention_heads * self.head_dim

    @property
    def kv_size(self) -> int:
        return self.num_key_value_heads * self.head_dim

    def cut(self, layers: int | None = None, experts: int | None = None) -> ModelConfig:
        """A smaller run of the same shape; the returned config records what was cut."""
        notes = list(self.cut_down)
        changes: dict[str, Any] = {}
        if layers is not None:
            if layers <= 0 or layers > self.num_hidden_layers:
                raise InputError(f"--layers: must be in 1..{self.num_hidden_layers}, got {layers}")
            if layers < self.num_hidden_layers:
                notes.append(f"layers {layers} of {self.num_hidden_layers}")
                changes["num_hidden_layers"] = layers
                changes["mlp_only_layers"] = tuple(i for i in self.mlp_only_layers if i < layers)
        if experts is not None:
            if self.num_experts == 0:
                raise InputError("--experts: this model has no experts")
            if experts < self.num_experts_per_tok or experts > self.num_experts:
                raise InputError(
                    f"--experts: must be in {self.num_experts_per_tok}..{self.num_experts} "
                    f"(at least num_experts_per_tok), got {experts}"
                )
            if experts < self.num_experts:
                notes.append(f"experts {experts} of {self.num_experts}")
                changes["num_experts"] = experts
        return replace(self, cut_down=tuple(notes), **changes) if changes else self

    def to_hf(self) -> dict[str, Any]:
        """A config.json that transformers' Qwen3MoeForCausalLM reads back as this shape."""
        rs = self.rope_scaling
        rope = None
        if rs.rope_type != "default":
            rope = {"rope_type": rs.rope_type, "factor": rs.factor}
            if rs.rope_type == "yarn":
                rope.update(
                    original_max_position_embeddings=rs.original_max_position_embeddings,
                    beta_fast=rs.beta_fast,
                    beta_slow=rs.beta_slow,
                    truncate=rs.truncate,
                )
                if rs.attention_factor is not None:
                    rope["attention_factor"] = rs.attention_factor
        return {
            "architectures": [ARCHITECTURE],
            "model_type": "qwen3_moe",
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "head_dim": self.head_dim,
            "num_experts": self.num_experts,
            "num_experts_per_tok": self.num_experts_per_tok,
            "moe_intermediate_size": self.moe_intermediate_size,
            "intermediate_size": self.intermediate_size,
            "norm_topk_prob": self.norm_topk_prob,
            "decoder_sparse_step": self.decoder_sparse_step,
            "mlp_only_layers": list(self.mlp_only_layers),
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": rope,
            "vocab_size": self.vocab_size,
            "tie_word_embeddings": self.tie_word_embeddings,
            "max_position_embeddings": self.max_position_embeddings,
            "hidden_act": "silu",
            "attention_bias": False,
            "use_sliding_window": False,
            "torch_dtype": "bfloat16",
        }

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d["mlp_only_layers"] = list(self.mlp_only_layers)
        d["cut_down"] = list(self.cut_down)
        return d


def _get(d: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
    if key not in d or d[key] is None:
        if default is ...:
            raise InputError(f"config.json field {key}: missing (required for {ARCHITECTURE})")
        return default
    v = d[key]
    if kind is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if kind is int and isinstance(v, bool) or not isinstance(v, kind):
        raise InputError(f"config.json field {key}: expected {getattr(kind, '__name__', kind)}, got {v!r}")
    return v


def _rope_from_hf(d: dict[str, Any]) -> tuple[float, RopeScaling]:
    # transformers 5 folds rope_theta into rope_parameters; older configs use rope_scaling + rope_theta.
    rp = d.get("rope_parameters") or d.get("rope_scaling") or {}
    if not isinstance(rp, dict):
        raise InputError(f"config.json field rope_scaling: expected an object or null, got {rp!r}")
    theta = d.get("rope_theta", rp.get("rope_theta", 10000.0))
    if not isinstance(theta, int | float) or theta <= 0:
        raise InputError(f"config.json field rope_theta: must be a positive number, got {theta!r}")
    rtype = rp.get("rope_type", rp.get("type", "default")) or "default"
    if rtype not in _ROPE_TYPES:
        raise InputError(
            f"config.json field rope_scaling.rope_type: must be one of {', '.join(_ROPE_TYPES)}, got {rtype!r}"
        )
    factor = float(rp.get("factor", 1.0) or 1.0)
    orig = rp.get("original_max_position_embeddings")
    if rtype == "yarn" and orig is None:
        raise InputError("config.json field rope_scaling.original_max_position_embeddings: required for yarn")
    rs = RopeScaling(
        rope_type=rtype,
        factor=factor,
        original_max_position_embeddings=orig,
        beta_fast=float(rp.get("beta_fast") or 32.0),
        beta_slow=float(rp.get("beta_slow") or 1.0),
        attention_factor=rp.get("attention_factor"),
        truncate=bool(rp.get("truncate", True)),
    )
    return float(theta), rs


def from_hf(d: dict[str, Any], name: str = "checkpoint") -> ModelConfig:
    """Translate a Hugging Face Qwen3-MoE config.json dict into our ModelConfig."""
    archs = d.get("architectures") or []
    if ARCHITECTURE not in archs and d.get("model_type") != "qwen3_moe":
        raise InputError(
            f"config.json field architectures: must include {ARCHITECTURE} (model_type qwen3_moe), got {archs or d.get('model_type')!r}"
        )
    act = d.get("hidden_act", "silu")
    if act != "silu":
        raise InputError(f"config.json field hidden_act: only 'silu' is supported, got {act!r}")
    if d.get("attention_bias"):
        raise InputError("config.json field attention_bias: true is not supported (Qwen3-MoE has no biases)")
    if d.get("use_sliding_window"):
        raise InputError("config.json field use_sliding_window: true is not supported")
    hidden = _get(d, "hidden_size", int)
    heads = _get(d, "num_attention_heads", int)
    theta, rope = _rope_from_hf(d)
    mlp_only = _get(d, "mlp_only_layers", list, [])
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in mlp_only):
        raise InputError(f"config.json field mlp_only_layers: expected a list of layer indices, got {mlp_only!r}")
    return ModelConfig(
        name=name,
        hidden_size=hidden,
        num_hidden_layers=_get(d, "num_hidden_layers", int),
        num_attention_heads=heads,
        num_key_value_heads=_get(d, "num_key_value_heads", int, heads),
        head_dim=_get(d, "head_dim", int, hidden // heads),
        num_experts=_get(d, "num_experts", int, 0),
        num_experts_per_tok=_get(d, "num_experts_per_tok", int, 0),
        moe_intermediate_size=_get(d, "moe_intermediate_size", int, 0),
        intermediate_size=_get(d, "intermediate_size", int),
        norm_topk_prob=_get(d, "norm_topk_prob", bool, False),
        decoder_sparse_step=_get(d, "decoder_sparse_step", int, 1),
        mlp_only_layers=tuple(sorted(mlp_only)),
        rms_norm_eps=_get(d, "rms_norm_eps", float, 1e-6),
        rope_theta=theta,
        rope_scaling=rope,
        vocab_size=_get(d, "vocab_size", int),
        tie_word_embeddings=_get(d, "tie_word_embeddings", bool, False),
        max_position_embeddings=_get(d, "max_position_embeddings", int, 40960),
    )


def load_hf_config(path: Path) -> ModelConfig:
    path = Path(path)
    file = path / "config.json" if path.is_dir() else path
    if not file.exists():
        raise InputError(f"--checkpoint: {file} not found (a checkpoint directory holds config.json)")
    try:
        data = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{file}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{file}: expected a JSON object")
    return from_hf(data, name=path.name if path.is_dir() else path.parent.name)


# Published config.json values. Source: huggingface.co/Qwen/Qwen3-30B-A3B/blob/main/config.json and
# huggingface.co/Qwen/Qwen3-235B-A22B/blob/main/config.json (Qwen team, 2025-04).
_PUBLISHED: dict[str, dict[str, Any]] = {
    "qwen3-30b-a3b": {
        "architectures": [ARCHITECTURE], "model_type": "qwen3_moe",
        "hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4,
        "head_dim": 128, "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 768,
        "intermediate_size": 6144, "norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": [],
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_scaling": None, "vocab_size": 151936,
        "tie_word_embeddings": False, "max_position_embeddings": 40960,
    },
    "qwen3-235b-a22b": {
        "architectures": [ARCHITECTURE], "model_type": "qwen3_moe",
        "hidden_size": 4096, "num_hidden_layers": 94, "num_attention_heads": 64, "num_key_value_heads": 4,
        "head_dim": 128, "num_experts": 128, "num_experts_per_tok": 8, "moe_intermediate_size": 1536,
        "intermediate_size": 12288, "norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": [],
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "rope_scaling": None, "vocab_size": 151936,
        "tie_word_embeddings": False, "max_position_embeddings": 40960,
    },
}

# Small shapes for tests and CPU runs: same structure, odd sizes where the kernels allow.
_SMALL: dict[str, dict[str, Any]] = {
    "tiny-moe": {
        "hidden_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 64, "num_experts": 6, "num_experts_per_tok": 2, "moe_intermediate_size": 40,
        "intermediate_size": 80, "norm_topk_prob": True, "decoder_sparse_step": 1, "mlp_only_layers": [1],
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "vocab_size": 211, "tie_word_embeddings": False,
        "max_position_embeddings": 512,
    },
    "small-moe": {
        "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
        "head_dim": 64, "num_experts": 16, "num_experts_per_tok": 4, "moe_intermediate_size": 96,
        "intermediate_size": 384, "norm_topk_prob": False, "decoder_sparse_step": 2, "mlp_only_layers": [],
        "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "vocab_size": 1000, "tie_word_embeddings": True,
        "max_position_embeddings": 4096,
    },
}


def builtin_names() -> list[str]:
    return [*_PUBLISHED, *_SMALL]


def builtin(name: str) -> ModelConfig:
    key = name.lower()
    if key in _PUBLISHED:
        return from_hf(_PUBLISHED[key], name=key)
    if key in _SMALL:
        return from_hf({"architectures": [ARCHITECTURE], **_SMALL[key]}, name=key)
    raise InputError(f"--model: must be one of {', '.join(builtin_names())}, got {name!r}")
