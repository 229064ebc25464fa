"""`floorline bench allreduce`: our push all-reduce vs NCCL vs torch symmetric memory vs the floor."""

from __future__ import annotations

import typer


def register(bench_app: typer.Typer) -> None:
    @bench_app.command("allreduce")
    def allreduce(
        world: int = typer.Option(2, "--world", help="GPUs taking part (2..8)"),
        mode: str = typer.Option("both", "--mode", help="process | thread | both"),
        quick: bool = typer.Option(False, "--quick", help="4 sizes (1 KB, 8 KB, 64 KB, 1 MB), fewer repeats"),
        json_out: bool = typer.Option(False, "--json", help="print JSON"),
        out: str = typer.Option("", "--out", help="packet directory (default results/<device>/)"),
        sizes: str = typer.Option("", "--sizes", help="comma list of message sizes, e.g. 1K,16K,1M,32M "
                                  "(1 KB .. 64 MB; default every power of two)"),
        variants: str = typer.Option("", "--variants", help="opt-in kernel variants measured next to the "
                                     "defaults: ticket, replicated, replicated_t128, fused_block, fused_light, "
                                     "fused_cluster (sm_90+), or all"),
        tune_crossover: bool = typer.Option(False, "--tune-crossover", help="derive a candidate crossover table "
                                            "from this run and write crossover-candidate.toml next to the packets"),
    ) -> None:
        """Sizes 1 KB -> 64 MB (bf16): per-op latency in a CUDA graph and eager, bus bandwidth, NCCL at its
        fastest configuration found and torch symmetric memory in the same run, the fabric floor (one-way
        ping-pong latency) measured in the same run; one bench.allreduce packet per (mode, size), a plot."""
        from floorline.errors import InputError

        modes = {"process": ("process",), "thread": ("thread",), "both": ("process", "thread")}
        if mode not in modes:
            raise InputError(f"--mode: must be one of process, thread, both; got {mode!r}")
        if not 2 <= world <= 8:
            raise InputError(f"--world: must be between 2 and 8, got {world}")
        from floorline.bench.allreduce import VARIANTS, parse_sizes

        size_list = parse_sizes(sizes) if sizes else None
        var = tuple(VARIANTS) if variants == "all" else tuple(v for v in variants.split(",") if v)
        bad = [v for v in var if v not in VARIANTS]
        if bad:
            raise InputError(f"--variants: must be a comma list of {', '.join(VARIANTS)} (or all), got {bad[0]!r}")
        from floorline.gpu.probe import cuda_available

        have = 0
        if cuda_available():
            import torch

            have = torch.cuda.device_count()
        if have < world:
            raise InputError(f"--world: {world} GPUs asked for, this machine has {have} CUDA GPU(s)")
        from dataclasses import asdict
        from pathlib import Path

        from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

        from floorline.bench.allreduce import HEADERS, QUICK_SIZES, BenchConfig, run, table_rows
        from floorline.comm.errors import CommError
        from floorline.gpu.probe import device_slug
        from floorline.render import console, print_json, progress, table

        def _median(v: list[float]) -> float:
            import statistics

            return statistics.median(v)

        from dataclasses import replace

        cfg = BenchConfig(world=world, modes=modes[mode])
        if quick:
            cfg = BenchConfig(world=world, modes=modes[mode], sizes=QUICK_SIZES, iters=10, eager_iters=50,
                              pingpong_rounds=5000, nccl_variants=())
        cfg = replace(cfg, sizes=size_list or cfg.sizes, variants=var, tune_crossover=tune_crossover)
        out_dir = Path(out) if out else Path("results") / device_slug()
        try:
            with progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                          disable=json_out) as prog:
                task = prog.add_task("bench allreduce")
                result = run(cfg, out_dir, progress=lambda m: prog.update(task, description=m))
        except CommError as e:
            console.print(f"[red]error:[/red] {e}")
            raise typer.Exit(1) from None
        rows = result["rows"]
        if json_out:
            print_json({"rows": [{k: v for k, v in asdict(r).items() if k != "extra"} for r in rows],
                        "link": result["link"], "floor": result["floor"], "fused": result["fused"],
                        "graph_us_by_algorithm": {f"{r.mode}:{r.size_bytes}": {
                            k: _median(v["graph"]) for k, v in r.extra["size"]["ours"].items()} for r in rows},
                        "crossover_candidate": result["crossover_candidate"]})
            return
        table(f"all-reduce, world {world}, bf16 (CUDA graph per-op latency; eager = launch + sync)", HEADERS,
              table_rows(rows, cfg.dtype))
        for m, fl in result["floor"].items():
            console.print(f"{m}: one-way latency {fl['one_way_us']:.2f} us, graph kernel slot {fl['kernel_slot_us']:.2f} "
                          f"us, peer copy {result['link']['gbps']:.0f} GB/s; fused AR+residual+RMSNorm (hidden 4096, "
                          f"1 token) {result['fused'][m]['fused']:.2f} us vs plain {result['fused'][m]['plain']:.2f} us")
        if result["crossover_candidate"]:
            console.print(f"candidate crossover (not adopted): {result['crossover_candidate']['path']}")
        console.print(f"packets: {out_dir}")
