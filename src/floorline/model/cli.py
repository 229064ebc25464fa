"""`floorline generate` and `floorline decode --check`. Parses and renders; model/run.py computes."""

from __future__ import annotations

from pathlib import Path

import typer

from floorline.errors import InputError


def _common_checks(tp: int) -> None:
    if tp < 1:
        raise InputError(f"--tp: must be >= 1, got {tp}")
    if tp > 1:
        raise InputError("--tp: generate runs on one GPU; tensor parallel runs in `floorline decode --check --tp N` "
                         "and `floorline bench decode --tp N` (model/tp.py)")


def _cut_note(cfg) -> str:
    return f" (cut down: {', '.join(cfg.cut_down)})" if cfg.cut_down else ""


def register(app: typer.Typer) -> None:
    @app.command("generate")
    def generate_cmd(
        prompt_ids: str = typer.Option(..., "--prompt-ids", help="comma-separated token ids; ';' separates a batch"),
        max_new_tokens: int = typer.Option(16, "--max-new-tokens"),
        checkpoint: Path = typer.Option(None, "--checkpoint", help="safetensors checkpoint directory (HF naming)"),
        model: str = typer.Option(None, "--model", help="built-in shape with seeded random weights"),
        layers: int = typer.Option(None, "--layers", help="run only the first N layers"),
        experts: int = typer.Option(None, "--experts", help="keep only the first N experts"),
        greedy: bool = typer.Option(False, "--greedy", help="argmax (the default unless --temperature is given)"),
        temperature: float = typer.Option(None, "--temperature"),
        top_p: float = typer.Option(1.0, "--top-p"),
        device: str = typer.Option("cuda", "--device", help="cpu or cuda"),
        dtype: str = typer.Option("bf16", "--dtype", help="float64|float32 (reference) or bf16|fp8 (fast path)"),
        tp: int = typer.Option(1, "--tp"),
        seed: int = typer.Option(0, "--seed", help="weights seed (random weights) and sampling seed"),
        logits_out: Path = typer.Option(None, "--logits-out", help="write every step's logits \\[steps, B, V] as .npy"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Generate tokens: the float64 reference (--device cpu --dtype float64) or the fast path."""
        from floorline.model.run import build_weights, generate, parse_prompts, pick_device

        _common_checks(tp)
        if greedy and temperature is not None:
            raise InputError("--greedy / --temperature: give one, not both")
        if logits_out is not None and logits_out.suffix != ".npy":
            raise InputError(f"--logits-out: must end in .npy, got {logits_out}")
        prompts = parse_prompts(prompt_ids)
        dev = pick_device(device, dtype)
        w = build_weights(checkpoint, model, layers, experts, dtype, dev, seed)
        g = generate(w, prompts, max_new_tokens, temperature is None, temperature or 1.0, top_p, seed,
                     keep_logits=logits_out is not None)
        if logits_out is not None:
            import numpy as np
            import torch

            arr = torch.stack(g.logits).double().numpy()
            tmp = logits_out.with_suffix(".tmp.npy")
            np.save(tmp, arr)
            tmp.replace(logits_out)
        out = {
            "tokens": g.tokens if len(prompts) > 1 else g.tokens[0],
            "ms_per_token": g.ms_per_token,
            "tokens_per_s": 1e3 * len(prompts) / g.ms_per_token if g.ms_per_token > 0 else None,
            "prefill_ms": g.prefill_ms,
            "path": g.path,
            "model": w.cfg.name,
            "layers": w.cfg.num_hidden_layers,
            "experts": w.cfg.num_experts,
            "dtype": dtype,
            "device": dev,
            "batch": len(prompts),
            "cut_down": list(w.cfg.cut_down),
            "sampling": "greedy" if temperature is None else {"temperature": temperature, "top_p": top_p},
        }
        if logits_out is not None:
            out["logits_out"] = str(logits_out)
        if as_json:
            from floorline.render import print_json

            print_json(out)
            return
        from floorline.render import console

        console.print(f"{w.cfg.name}{_cut_note(w.cfg)}: {g.path}, {dtype}")
        for b, toks in enumerate(g.tokens):
            console.print(f"  [{b}] {','.join(map(str, toks))}")
        console.print(f"  {g.ms_per_token:.3f} ms/token (batch {len(prompts)}), prefill {g.prefill_ms:.1f} ms")

    @app.command("preflight")
    def preflight_cmd(
        checkpoint: Path = typer.Option(..., "--checkpoint", help="safetensors checkpoint directory (HF naming)"),
        dtype: str = typer.Option("bf16", "--dtype", help="what it would load as: float64|float32|bf16|fp8"),
        tp: int = typer.Option(1, "--tp", help="tensor-parallel size to check the shapes against"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Read config.json and every tensor header (no data): name what cannot run, and why."""
        from floorline.model.preflight_report import preflight_report

        rep = preflight_report(checkpoint, dtype, tp)
        if as_json:
            from floorline.render import print_json

            print_json(rep)
        else:
            from floorline.render import console

            console.print(f"{rep['model']}: {rep['layers']} layers, {rep['experts']} experts, "
                          f"{rep['tensors']} tensors, {rep['weight_gb']:.2f} GB as {dtype}")
            for w in rep["warnings"]:
                console.print(f"  warning: {w}")
            for p in rep["problems"]:
                console.print(f"  cannot run: {p}")
            console.print("  OK: loads and runs" if not rep["problems"] else f"  {len(rep['problems'])} problem(s)")
        if rep["problems"]:
            raise typer.Exit(2)

    @app.command("decode")
    def decode_cmd(
        check_: bool = typer.Option(False, "--check", help="fast path vs float64 reference, every step"),
        checkpoint: Path = typer.Option(None, "--checkpoint"),
        model: str = typer.Option(None, "--model"),
        layers: int = typer.Option(None, "--layers"),
        experts: int = typer.Option(None, "--experts"),
        prompt_ids: str = typer.Option(None, "--prompt-ids", help="default: --batch random prompts"),
        batch: int = typer.Option(1, "--batch"),
        prompt_len: int = typer.Option(16, "--prompt-len"),
        steps: int = typer.Option(64, "--steps"),
        dtype: str = typer.Option("bf16", "--dtype", help="bf16 or fp8 weights on the fast path"),
        kv_dtype: str = typer.Option(None, "--kv-dtype", help="the fast path's KV cache: fp16 or bf16, the same bytes "
                                                                "(default: fp16, what bench decode runs; bf16 with --tp)"),
        device: str = typer.Option("cuda", "--device"),
        tp: int = typer.Option(1, "--tp"),
        seed: int = typer.Option(0, "--seed"),
        tolerance: float = typer.Option(1e-3, "--tolerance", help="pass bound on the max per-step logits rel-L2"),
        results: Path = typer.Option(None, "--results", help="packet directory (default results/<device>/)"),
        no_evidence: bool = typer.Option(False, "--no-evidence"),
        as_json: bool = typer.Option(False, "--json"),
    ) -> None:
        """Decode with the fast path; --check compares every step with the float64 reference."""
        from floorline.model.check_cli import run_check

        if not check_:
            raise InputError("decode: only --check is available (use `floorline generate` to generate)")
        if tp > 1:
            from floorline.model.tp_check import run_tp_check

            if kv_dtype not in (None, "bf16"):
                raise InputError(f"--kv-dtype: the tensor-parallel ranks keep a bf16 cache, got {kv_dtype!r}")

            run_tp_check(model, checkpoint, layers, experts, prompt_ids, batch, prompt_len, steps, dtype, device, tp,
                         seed, tolerance, results, no_evidence, as_json)
            return
        _common_checks(tp)
        from floorline.model.fast import DEFAULT_KV_DTYPE

        run_check(checkpoint, model, layers, experts, prompt_ids, batch, prompt_len, steps, dtype, device, seed,
                  tolerance, results, no_evidence, as_json, kv_dtype or DEFAULT_KV_DTYPE)
