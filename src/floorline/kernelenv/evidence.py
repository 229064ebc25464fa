"""One `kernelenv.attempt` evidence packet per attempt, pass or fail, with the candidate source, the worker's
compile log and the PTX/SASS receipts beside it as hashed artifacts, and the command that replays it."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path
from typing import Any

from floorline.evidence.schema import Baseline, CompilerInfo, Correctness, Floor, Timing
from floorline.evidence.store import artifact, new_packet, write_packet
from floorline.kernelenv.harness import Attempt, Harness
from floorline.kernelenv.task import Task

KIND = "kernelenv.attempt"
MAX_ARTIFACT_BYTES = 4 << 20


def _timing(d: dict[str, Any] | None) -> Timing | None:
    if not d:
        return None
    return Timing(method=d["method"], warmup=d["warmup"], iterations=d["iterations"], median=d["median"], min=d["min"],
                  p10=d["p10"], p90=d["p90"], max=d["max"], unit=d["unit"])


def _compiler(att: Attempt) -> CompilerInfo | None:
    import triton

    if not att.kernels:
        return CompilerInfo(tool="triton", version=triton.__version__,
                            flags=["TRITON_INTERPRET=1"] if att.timing and att.timing["method"] == "wall_clock_cpu" else [],
                            target_arch="cpu interpreter (no device code)" if att.timing and
                            att.timing["method"] == "wall_clock_cpu" else None)
    regs = [k["registers"] for k in att.kernels if k.get("registers") is not None]
    spills = [k["spills"] for k in att.kernels if k.get("spills") is not None]
    shared = [k["shared"] for k in att.kernels if k.get("shared") is not None]
    return CompilerInfo(tool="triton", version=triton.__version__,
                        flags=sorted({f"num_warps={k.get('num_warps')} num_stages={k.get('num_stages')}" for k in att.kernels}),
                        target_arch=att.kernels[0].get("target"), registers=max(regs) if regs else None,
                        spills=max(spills) if spills else None, shared_memory_bytes=max(shared) if shared else None)


def _rel(p: Path) -> str:
    """Repo-relative where possible, so a packet made on the device replays from any checkout."""
    try:
        return str(Path(p).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def replay_command(task: Task, candidate_path: Path, seed: int | None, device: str | None = None) -> list[str]:
    """The argv that re-runs the attempt: on the device kind it ran on (a CPU attempt replayed on a GPU
    machine would otherwise run on cuda and compare interpreter timings with device ones)."""
    cmd = ["floorline", "kernelenv", "eval", _rel(task.path), _rel(candidate_path), "--json"]
    cmd += ["--device", device] if device else []
    return cmd + (["--seed", str(seed)] if seed is not None else [])


def write_attempt(att: Attempt, task: Task, source: str, out_dir: Path, device: str) -> Path:
    """The packet, with the candidate source, worker log and receipts copied into <packet>.d/ and hashed."""
    out_dir = Path(out_dir)
    stem = f"{task.name}-{att.candidate_sha256[:12]}-{hashlib.sha256(repr(att.seed).encode()).hexdigest()[:6]}"
    side = out_dir / f"{stem}.d"
    side.mkdir(parents=True, exist_ok=True)
    cand = side / "candidate.py"
    cand.write_text(source)
    files = [cand]
    if att.compile_log:
        log = side / "worker.log"
        log.write_text(att.compile_log)
        files.append(log)
    kernels = []
    for k in att.kernels:
        k = dict(k)
        for key in ("ptx_file", "sass_file"):
            src = k.pop(key, None)
            if src and att.tmpdir and Path(src).is_file() and Path(src).stat().st_size <= MAX_ARTIFACT_BYTES \
                    and Path(src).resolve().is_relative_to(Path(att.tmpdir).resolve()):
                dst = side / Path(src).name
                shutil.copyfile(src, dst)
                files.append(dst)
                k[key.removesuffix("_file")] = str(dst.relative_to(out_dir))
        kernels.append(k)
    max_err = max((c["max_error"] for c in att.checks if c.get("max_error") is not None), default=None)
    correctness = Correctness(
        reference=f"task {task.name}: Model (float64 math) on private clones, in the harness process",
        metric="max |out - ref| / (atol + rtol |ref|) over all checks (pass <= 1)",
        value=max_err if max_err is None or max_err < 1e300 else None, tolerance=1.0, passed=att.correct,
        trials=len(att.checks), seeds=[att.seed] if att.seed is not None else [])
    baselines = []
    if att.baseline:
        b = att.baseline
        bt = _timing(b) if b.get("status") == "passed" else None
        baselines.append(Baseline(name=b["name"], timing=bt, ratio=att.speedup, status=b.get("status", "passed"),
                                  reason=b.get("reason"), config={"task": task.name}))
    floor = None
    if att.floor:
        f = att.floor
        floor = Floor(model=f["model"], bytes=f.get("bytes"), flops=f.get("flops"), ceiling=f.get("ceiling"),
                      ceiling_unit=f.get("ceiling_unit"), value=f.get("value"), fraction=f.get("fraction"))
    notes = [att.message] if att.message else []
    if device == "cpu":
        notes.append("CPU run: Triton through the interpreter; timing is host wall-clock, not device time")
    for k in kernels:
        fam = {**k.get("ptx_families", {}), **k.get("sass_families", {})}
        seen = ", ".join(f"{n} x{c}" for n, c in fam.items() if c)
        notes.append(f"kernel {k.get('name')}: {k.get('registers')} regs, {k.get('spills')} spills, "
                     f"{k.get('local_bytes', 0)} B local; {seen or 'no notable instruction families'}")
    status = "passed" if att.status == "passed" else "failed"
    packet = new_packet(
        KIND, status=status, failure_class=att.failure_class,
        command=replay_command(task, cand, att.seed, device),
        # the first four are what `evidence table` shows for a kind it has no column list for
        params={"task": task.name, "device": device, "reward": att.reward, "speedup": att.speedup,
                "op": task.op, "task_sha256": task.source_sha256, "candidate_sha256": att.candidate_sha256,
                "sol_fraction": att.sol_fraction, "shapes": att.shapes,
                "sandbox": att.sandbox, "checks": att.checks, "kernels": kernels,
                "compiler_invocation": [{"kernel": k.get("name"), "target": k.get("target"),
                                         "num_warps": k.get("num_warps"), "num_stages": k.get("num_stages")}
                                        for k in kernels],
                "timing_harness_wall_s": (att.timing or {}).get("harness_wall_s"),
                "timing_harness_overhead_us": (att.timing or {}).get("harness_overhead_us"),
                "timing_worker_wall_median_us": (att.timing or {}).get("worker_wall_median_us")},
        correctness=correctness, timing=_timing(att.timing), baselines=baselines, floor=floor,
        compiler=_compiler(att), artifacts=[artifact(p, out_dir) for p in files], notes=notes)
    return write_packet(packet, out_dir, stem)


def run_attempt(harness: Harness, task: Task, source: str, out_dir: Path | None, seed: int | None = None
                ) -> tuple[Attempt, Path | None]:
    att = harness.evaluate(task, source, keep_tmp=True, seed=seed)
    try:
        path = write_attempt(att, task, source, out_dir, harness.cfg.device) if out_dir is not None else None
    finally:
        if att.tmpdir:
            shutil.rmtree(att.tmpdir, ignore_errors=True)
            att.tmpdir = None
    att.evidence = str(path) if path else None
    return att, path
