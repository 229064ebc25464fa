"""Tasks in KernelBench's format, loaded in the trusted process only.

A task file defines `class Model(nn.Module)`, `get_inputs(**shape)` and `get_init_inputs()`, and may add
`METADATA` (tolerance, held-out shapes, forbidden ops, floor), `floor_bytes(inputs, outputs)`,
`floor_flops(inputs, outputs)` and `compare(outputs, reference) -> [normalised error per output]`.
Task files are trusted code (they hold the reference); candidates never see them through the harness.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from floorline.errors import InputError

TASKS_DIR = Path(__file__).parent / "tasks"
_DEFAULT_TOL = {"atol": 1e-2, "rtol": 1e-2}


@dataclass(frozen=True)
class Task:
    name: str
    path: Path
    module: Any = field(repr=False, compare=False)
    source_sha256: str = ""

    @property
    def meta(self) -> dict[str, Any]:
        return dict(getattr(self.module, "METADATA", {}) or {})

    @property
    def op(self) -> str:
        return str(self.meta.get("op", self.name))

    @property
    def doc(self) -> str:
        return (self.module.__doc__ or "").strip().splitlines()[0] if self.module.__doc__ else ""

    def tolerance(self) -> dict[str, float]:
        return {**_DEFAULT_TOL, **(self.meta.get("tolerance") or {})}

    def forbidden_ops(self) -> list[str]:
        return [str(o) for o in self.meta.get("forbidden_ops", [])]

    def allow_torch(self) -> bool:
        """May a candidate compute with plain PyTorch ops? Off by default: the point is the candidate's kernel."""
        return bool(self.meta.get("allow_torch", False))

    def allowed_ops(self) -> set[str]:
        """Ops beyond pure glue a task permits a launcher (e.g. sorting slots for a grouped MoE launch)."""
        return {str(o).split("::")[-1] for o in self.meta.get("allowed_ops", [])}

    def deterministic(self) -> bool:
        return bool(self.meta.get("deterministic", True))

    def shapes(self, device: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """(timed shape, held-out shapes) for this device kind: small ones on CPU, where Triton is interpreted."""
        m = self.meta
        if device == "cpu":
            return dict(m.get("cpu_shape", {})), [dict(s) for s in m.get("cpu_heldout_shapes", m.get("heldout_shapes", []))]
        return dict(m.get("shape", {})), [dict(s) for s in m.get("heldout_shapes", [])]

    def make_model(self) -> Any:
        return self.module.Model(*self.module.get_init_inputs())

    def inputs(self, shape: dict[str, Any], seed: int) -> list[Any]:
        """Fresh inputs from `seed` without disturbing anyone else's RNG stream."""
        import torch

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return list(self.module.get_inputs(**shape))

    def compare(self, outputs: list[Any], reference: list[Any]) -> list[float]:
        """Normalised error per output; an output passes when its error is <= 1."""
        custom = getattr(self.module, "compare", None)
        if custom is not None:
            return [float(e) for e in custom(outputs, reference)]
        tol = self.tolerance()
        errs = []
        for o, r in zip(outputs, reference, strict=True):
            errs.append(normalised_error(o, r, tol["atol"], tol["rtol"]))
        return errs

    def floor_bytes(self, inputs: list[Any], outputs: list[Any]) -> float:
        fn = getattr(self.module, "floor_bytes", None)
        if fn is not None:
            return float(fn(inputs, outputs))
        return float(sum(t.numel() * t.element_size() for t in [*inputs, *outputs]))

    def floor_flops(self, inputs: list[Any], outputs: list[Any]) -> float:
        fn = getattr(self.module, "floor_flops", None)
        return float(fn(inputs, outputs)) if fn is not None else 0.0


def normalised_error(out: Any, ref: Any, atol: float, rtol: float) -> float:
    """max |out - ref| / (atol + rtol |ref|) in float64; integers compare exactly (any difference is > 1)."""
    import torch

    if out.shape != ref.shape:
        return float("inf")
    if out.numel() == 0:
        return 0.0
    if not (ref.dtype.is_floating_point or out.dtype.is_floating_point):
        return 0.0 if torch.equal(out.to(torch.int64), ref.to(torch.int64)) else float("inf")
    o = out.double()
    r = ref.double()
    if not torch.isfinite(o).all():
        return float("inf")
    return float(((o - r).abs() / (atol + rtol * r.abs())).max())


def load_task(path: str | Path) -> Task:
    path = Path(path)
    if not path.exists():
        raise InputError(f"task {path}: no such file")
    if path.suffix != ".py":
        raise InputError(f"task {path}: must be a .py file in KernelBench format")
    source = path.read_bytes()
    name = f"_floorline_task_{path.stem}_{hashlib.sha256(source).hexdigest()[:10]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InputError(f"task {path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    try:
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(name, None)
        raise InputError(f"task {path}: import failed: {type(e).__name__}: {e}") from None
    for attr in ("Model", "get_inputs", "get_init_inputs"):
        if not hasattr(module, attr):
            raise InputError(f"task {path}: missing `{attr}` (KernelBench format needs Model, get_inputs, get_init_inputs)")
    return Task(name=path.stem, path=path.resolve(), module=module, source_sha256=hashlib.sha256(source).hexdigest())


def load_tasks(directory: str | Path = TASKS_DIR) -> list[Task]:
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"tasks directory {directory}: no such directory")
    return [load_task(p) for p in sorted(directory.glob("*.py")) if not p.name.startswith("_")]


def resolve_task(name_or_path: str) -> Task:
    """A shipped task by name (`rmsnorm`) or any task file by path."""
    p = Path(name_or_path)
    if p.suffix == ".py" or p.exists():
        return load_task(p)
    shipped = TASKS_DIR / f"{name_or_path}.py"
    if shipped.exists():
        return load_task(shipped)
    names = ", ".join(sorted(q.stem for q in TASKS_DIR.glob("*.py")))
    raise InputError(f"task {name_or_path!r}: not a file and not a shipped task (one of: {names})")
