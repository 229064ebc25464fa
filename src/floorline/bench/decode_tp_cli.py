"""Rendering for `floorline bench decode --tp N` (bench/decode_tp.py computes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_tp_cli(model: str, layers: int | None, experts: int | None, tp: int, batches: tuple[int, ...],
               contexts: tuple[int, ...], weight_dtype: str, kv_dtype: str, iters: int, out_dir: Path | None,
               tune: bool, time_budget: float | None, as_json: bool, mode: str = "thread") -> None:
    from floorline.bench import decode_tp
    from floorline.errors import InputError
    from floorline.render import console, err_console, print_json, table

    def progress(m: str) -> None:
        err_console.print(f"[dim]{m}[/dim]")

    if mode == "thread":
        res = decode_tp.run_tp(model, layers, experts, tp, batches, contexts, weight_dtype, kv_dtype, iters, out_dir,
                               tune, deadline_s=time_budget, progress=progress)
    elif mode == "process":
        from floorline.bench.decode_tp_process import run_tp_process

        if weight_dtype not in ("bf16", "fp8") or kv_dtype != "bf16":
            raise InputError("--weight-dtype/--kv-dtype: bf16 or fp8 weights, bf16 cache")
        res = run_tp_process(model, layers, experts, tp, batches, contexts, weight_dtype, kv_dtype, iters, out_dir,
                             progress=progress)
    else:
        raise InputError(f"--tp-mode: must be thread or process, got {mode!r}")
    cfg = res["config"]
    if as_json:
        print_json({
            "model": cfg.name, "layers": cfg.num_hidden_layers, "experts": cfg.num_experts, "tp": tp, "mode": mode,
            "cut_down": list(cfg.cut_down), "hbm_read_ceiling_tbps": res["ceiling_tbps"],
            "launch": res["launch"].as_dict(), "tune": res["tune"],
            "points": [_point(p, res["ceiling_tbps"]) for p in res["points"]],
        })
        return
    cut = f" (cut down: {', '.join(cfg.cut_down)})" if cfg.cut_down else ""
    table(f"bench decode --tp {tp}: {cfg.name}{cut}, {weight_dtype} weights, HBM ceiling {res['ceiling_tbps']:.2f} TB/s",
          decode_tp.HEADERS, decode_tp.summary_rows(res))
    console.print("transformers: not run in tensor-parallel mode (see each packet's baseline reason)")


def _point(p: Any, ceiling: float) -> dict[str, Any]:
    ok = p.ms is not None
    return {"batch": p.batch, "context": p.context, "ms_per_token": p.ms,
            "tokens_per_s": p.batch * 1e3 / p.ms if ok else None, "floor_ms": p.floor_ms,
            "fraction_of_floor": p.floor_ms / p.ms if ok else None, "floor_bytes": p.floor_bytes,
            "ideal_split_fraction": p.ideal_bytes / (ceiling * 1e12) * 1e3 / p.ms if ok else None,
            "wall_ms_per_token": p.wall_ms, "experts_hit": p.experts_hit[:8], "skipped": p.skipped,
            "profile": p.profile[:16],
            "packet": str(p.packet) if p.packet else None}
