"""The trusted side: runs one attempt (task + candidate source) through a sandboxed worker and judges it.

The harness holds the secret seed, computes every reference on private clones in this process, and
decides pass/fail from bytes the worker sends back. What the worker says about itself (ops, launches,
timer integrity) is evidence to check, never a verdict. Order of events for one attempt:

  load -> check calls (fresh inputs from the secret seed, held-out shapes, a determinism repeat, a
  pointer-poisoning repeat) -> timing (calibration, timed sets with outputs re-checked, the harness's own
  wall clock as a cross-check) -> floor check -> compiler receipt -> baseline timing in a clean worker.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import secrets
import shutil
import statistics
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from floorline.kernelenv import checks, wire
from floorline.kernelenv.reward import reward
from floorline.kernelenv.task import Task

OWN_KERNEL_ROOTS = (
    str(Path(__file__).resolve().parent.parent / "kernels"),
    str(Path(__file__).resolve().parent / "candidates"),
)
_FLOORS = Path(__file__).parent / "floors.toml"


@dataclass(frozen=True)
class HarnessConfig:
    device: str = "cpu"
    trials: int = 2  # fresh default-shape input sets
    timing: bool = True
    timing_sets: int = 3  # input sets rotated through the timed loop
    warmup: int = 2
    iters: int = 10
    call_timeout_s: float = 120.0
    load_timeout_s: float = 180.0
    netns: bool = True
    drop_caps: bool = True
    settle_s: float = 0.03
    cpu_address_bytes: int = 16 << 30
    # where a launched kernel must be defined to count as the candidate's own: None = the candidate file,
    # floorline.kernels and the shipped candidates (eval/suite); () = the candidate file only (the RL env,
    # so an agent cannot score by importing a shipped solution)
    own_roots: tuple[str, ...] | None = None

    @staticmethod
    def for_device(device: str, **kw: Any) -> HarnessConfig:
        if device == "cuda":
            return HarnessConfig(device="cuda", warmup=10, iters=50, timing_sets=4, **kw)
        return HarnessConfig(device="cpu", **kw)


@dataclass
class Attempt:
    task: str
    candidate_sha256: str
    status: str = "failed"
    failure_class: str | None = None
    message: str = ""
    correct: bool = False
    reward: float = 0.0
    speedup: float | None = None
    sol_fraction: float | None = None
    timing: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    floor: dict[str, Any] | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    sandbox: dict[str, Any] = field(default_factory=dict)
    kernels: list[dict[str, Any]] = field(default_factory=list)
    compile_log: str = ""
    seeds_used: int = 0
    seed: int | None = None
    shapes: dict[str, Any] = field(default_factory=dict)
    tmpdir: str | None = None
    evidence: str | None = None

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "failure_class": self.failure_class, "correct": self.correct,
                "reward": self.reward, "speedup": self.speedup, "evidence": self.evidence}


class WorkerGone(RuntimeError):
    pass


class WorkerTimeout(RuntimeError):
    pass


_CTX: Any = None
_START_LOCK = threading.Lock()


def _context() -> Any:
    """A fork server that imported torch/triton once and never ran candidate code: each worker is a fresh
    fork of it (separate process, separate allocator, none of the harness's memory), in milliseconds."""
    with _START_LOCK:
        return _make_context()


def _make_context() -> Any:
    global _CTX
    if _CTX is None:
        import multiprocessing as mp

        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["torch", "triton", "triton.language", "floorline.kernelenv.worker",
                                    "torch.utils._python_dispatch", "torch.overrides", "numpy",
                                    "floorline.kernelenv._warm"])
        _CTX = ctx
    return _CTX


def _start_without_main(proc: Any) -> None:
    """multiprocessing re-imports the parent's __main__ in the fork server and its children; the worker must not
    run the harness's own script (or a test file), so the main-module entries are dropped from what it gets."""
    from multiprocessing import spawn

    orig = spawn.get_preparation_data

    def prep(name: str) -> dict[str, Any]:
        d = orig(name)
        d.pop("init_main_from_path", None)
        d.pop("init_main_from_name", None)
        d.pop("main_path", None)
        return d

    with _START_LOCK:  # the server may judge attempts on several threads
        spawn.get_preparation_data = prep
        try:
            proc.start()
        finally:
            spawn.get_preparation_data = orig


class WorkerHandle:
    def __init__(self, cfg: HarnessConfig, tmpdir: Path) -> None:
        from floorline.kernelenv import worker

        ctx = _context()
        self.conn, child = ctx.Pipe(duplex=True)
        wcfg = {"device": cfg.device, "tmpdir": str(tmpdir), "netns": cfg.netns, "drop_caps": cfg.drop_caps,
                "settle_s": cfg.settle_s,
                "limits": {"cpu_s": int(cfg.call_timeout_s * 20 + cfg.load_timeout_s), "file_bytes": 512 << 20,
                           "address_bytes": cfg.cpu_address_bytes if cfg.device == "cpu" else None}}
        self.proc = ctx.Process(target=worker.main, args=(child, wcfg), daemon=True)
        _start_without_main(self.proc)
        child.close()
        self.hello = self._recv(cfg.load_timeout_s)[0]

    def _recv(self, timeout_s: float) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        deadline = time.monotonic() + timeout_s
        while not self.conn.poll(0.05):
            if not self.proc.is_alive():
                raise WorkerGone(f"worker exited with code {self.proc.exitcode}")
            if time.monotonic() > deadline:
                raise WorkerTimeout(f"no reply within {timeout_s:.0f} s")
        try:
            data = self.conn.recv_bytes(wire.MAX_MESSAGE_BYTES)
        except (EOFError, OSError) as e:
            raise WorkerGone(f"worker closed the channel: {e}") from None
        return wire.unpack(data)

    def request(self, header: dict[str, Any], tensors: dict[str, list[Any]] | None, timeout_s: float
                ) -> tuple[dict[str, Any], dict[str, list[Any]], float]:
        nonce = secrets.token_hex(8)
        t0 = time.perf_counter()
        self.conn.send_bytes(wire.pack({**header, "nonce": nonce}, tensors))
        reply, ts = self._recv(timeout_s)
        wall = time.perf_counter() - t0
        if not isinstance(reply.get("ok"), bool):
            raise wire.WireError(f"reply without an ok field: {sorted(reply)[:8]}")
        if reply.get("nonce") != nonce:  # a reply written before the request existed cannot know its nonce
            raise wire.WireError("reply does not answer this request (nonce mismatch)")
        return reply, ts, wall

    def close(self) -> None:
        import os
        import signal

        try:
            if self.proc.is_alive():
                try:
                    self.conn.send_bytes(wire.pack({"op": "exit"}))
                except (OSError, ValueError):
                    pass
                self.proc.join(0.5)
            if self.proc.is_alive() and self.proc.pid:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)  # the worker leads its own session
                except (ProcessLookupError, PermissionError):
                    self.proc.kill()
                self.proc.join(5)
        finally:
            self.conn.close()


def _nondumpable() -> None:
    """Keep this process's memory (seed, references) out of /proc reach of anything without CAP_SYS_PTRACE."""
    try:
        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except Exception:
        pass


def device_ceilings(device: str) -> dict[str, Any] | None:
    if device != "cuda":
        return None
    import torch

    name = torch.cuda.get_device_name(0).lower()
    for key, d in tomllib.loads(_FLOORS.read_text())["devices"].items():
        if d["match"] in name:
            return {"device": key, "hbm_bw": d["hbm_bw"]["value"], "flops": d["bf16_dense"]["value"],
                    "source": d["hbm_bw"]["source"]}
    return None


class Harness:
    """Judges attempts. One instance caches baseline timings per (task, shape); attempts never share a worker."""

    def __init__(self, cfg: HarnessConfig | None = None) -> None:
        self.cfg = cfg or HarnessConfig()
        self._baselines: dict[tuple[str, str], dict[str, Any]] = {}
        if self.cfg.device == "cpu":
            # the fork server's triton must come up in interpreter mode too; workers inherit its imports
            os.environ.setdefault("TRITON_INTERPRET", "1")
        _nondumpable()

    # -- references -------------------------------------------------------------------------------
    def _reference(self, task: Task, inputs: list[Any]) -> list[Any]:
        import torch

        dev = self.cfg.device
        model = task.make_model().to(dev)
        with torch.no_grad():
            out = model(*[x.clone().to(dev) for x in inputs])  # private clones: nothing the candidate touches
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        return [o.detach().to("cpu") for o in outs]

    # -- one attempt --------------------------------------------------------------------------------
    def evaluate(self, task: Task, source: str, *, keep_tmp: bool = False, seed: int | None = None) -> Attempt:
        """Judge one candidate. `seed` replays an earlier attempt's inputs; by default each attempt draws a fresh
        secret seed, which is written to the evidence only after the attempt is over."""
        sha = hashlib.sha256(source.encode()).hexdigest()
        att = Attempt(task=task.name, candidate_sha256=sha)
        att.seed = seed if seed is not None else secrets.randbits(62)
        tmp = Path(tempfile.mkdtemp(prefix="kernelenv-"))
        att.tmpdir = str(tmp)
        (tmp / "candidate.py").write_text(source)
        try:
            self._evaluate(task, tmp, att)
            att.reward = reward(att.failure_class, att.speedup)
        finally:
            log = tmp / "worker.log"
            if log.exists():
                att.compile_log = log.read_bytes()[-16000:].decode(errors="replace")
            if not keep_tmp:
                shutil.rmtree(tmp, ignore_errors=True)
                att.tmpdir = None
        return att

    def _spawn(self, tmp: Path) -> WorkerHandle:
        return WorkerHandle(self.cfg, tmp)

    def _own_roots(self) -> tuple[str, ...]:
        return OWN_KERNEL_ROOTS if self.cfg.own_roots is None else tuple(self.cfg.own_roots)

    def _load(self, task: Task, tmp: Path, candidate: Path, att: Attempt | None) -> WorkerHandle:
        w = self._spawn(tmp)
        state = task.make_model().state_dict()
        reply, _, _ = w.request({"op": "load", "candidate": str(candidate), "init_inputs": list(task.module.get_init_inputs()),
                                 "state_keys": list(state), "own_roots": list(self._own_roots())},
                                {"state": list(state.values())}, self.cfg.load_timeout_s)
        if reply.get("sandbox_cuda") and (self.cfg.netns or self.cfg.drop_caps):
            # CUDA refused to start inside the namespace: retry with weaker isolation and say so
            w.close()
            self.cfg = replace(self.cfg, netns=False, drop_caps=False)
            return self._load(task, tmp, candidate, att)
        if att is not None:
            att.sandbox = dict(w.hello.get("sandbox", {}))
        w.load_reply = reply  # type: ignore[attr-defined]
        return w

    def _evaluate(self, task: Task, tmp: Path, att: Attempt) -> None:
        cfg = self.cfg
        seed = att.seed
        default_shape, heldout = task.shapes(cfg.device)
        att.shapes = {"default": default_shape, "heldout": heldout}
        roots = self._own_roots()
        judge = checks.Judge(task, cfg.device, self._reference, roots, str(tmp / "candidate.py"))
        try:
            w = self._load(task, tmp, tmp / "candidate.py", att)
        except WorkerTimeout as e:
            return _fail(att, "timeout", f"load: {e}")
        except (WorkerGone, wire.WireError) as e:
            return _fail(att, "harness_tampering" if isinstance(e, wire.WireError) else "runtime_error", f"load: {e}")
        try:
            reply = w.load_reply  # type: ignore[attr-defined]
            if reply.get("blocked"):  # the sandbox refused a vendor library, whether or not the import then failed
                return _fail(att, checks.blocked_class(reply["blocked"]), f"at import: blocked {reply['blocked'][0]}")
            if not reply["ok"]:
                cls = "compile_error" if reply.get("compile") else "runtime_error"
                return _fail(att, cls, f"{reply.get('error')}: {reply.get('message')}")
            if reply.get("tampered"):
                return _fail(att, "harness_tampering", f"at import: {', '.join(reply['tampered'])}")
            native = native_problems(tmp)
            if native:
                return _fail(att, "forbidden_op", f"native code built at import: {native[0]}")
            if reply.get("net"):
                return _fail(att, "sandbox_violation", f"network at import: {reply['net'][0]}")
            plan = [("trial", default_shape, seed + i, False) for i in range(cfg.trials)]
            plan += [("heldout", s, seed + 100 + j, False) for j, s in enumerate(heldout)]
            plan += [("determinism", default_shape, seed, False), ("poison", default_shape, seed + 200, True)]
            for phase, shape, s, reuse in plan:
                inputs = task.inputs(shape, s)
                att.seeds_used += 1
                ref = judge.reference_for(s, shape, inputs)
                try:
                    r, ts, _ = w.request({"op": "call", "reuse": reuse,
                                          "sentinel_sizes": [o.numel() * o.element_size() for o in ref]},
                                         {"inputs": inputs}, cfg.call_timeout_s)
                except WorkerTimeout as e:
                    return _fail(att, "timeout", f"{phase} call: {e}")
                except WorkerGone as e:
                    return _fail(att, "runtime_error", f"{phase} call: {e}")
                except wire.WireError as e:
                    return _fail(att, "harness_tampering", f"forged result channel: {e}")
                verdict = judge.judge_call(phase, shape, s, inputs, ref, r, ts)
                att.checks.append(verdict.record())
                if verdict.failure:
                    return _fail(att, verdict.failure, f"{phase} {shape}: {verdict.message}")
            native = native_problems(tmp)  # anything built lazily, on the first call
            if native:
                return _fail(att, "forbidden_op", f"native code built during the calls: {native[0]}")
            att.correct = True
            if cfg.timing:
                self._time(task, w, judge, seed, default_shape, att)
                if att.failure_class:
                    return None
            try:
                r, _, _ = w.request({"op": "receipt"}, None, cfg.call_timeout_s)
                att.kernels = r.get("kernels", []) if r.get("ok") else []
            except (WorkerTimeout, WorkerGone, wire.WireError):
                att.kernels = []
        finally:
            w.close()
        if cfg.timing and att.timing:
            self._baseline(task, tmp, seed, default_shape, att)
        att.status = "passed"
        return None

    # -- timing -------------------------------------------------------------------------------------
    def _timing_sets(self, task: Task, seed: int, shape: dict[str, Any]) -> list[list[Any]]:
        return [task.inputs(shape, seed + 1000 + i) for i in range(self.cfg.timing_sets)]

    def _timed(self, w: WorkerHandle, sets: list[list[Any]], calibrate: bool = False
               ) -> tuple[dict[str, Any], dict[str, list[Any]], float]:
        cfg = self.cfg
        flat = [x for s in sets for x in s]
        budget = cfg.call_timeout_s * (2 + (cfg.warmup + cfg.iters) / max(len(sets), 1))
        return w.request({"op": "time", "n_sets": len(sets), "arity": len(sets[0]), "warmup": cfg.warmup,
                          "iters": cfg.iters, "calibrate": calibrate}, {"inputs": flat}, budget)

    def _time(self, task: Task, w: WorkerHandle, judge: checks.Judge, seed: int, shape: dict[str, Any],
              att: Attempt) -> None:
        cfg = self.cfg
        sets = self._timing_sets(task, seed, shape)
        try:
            cal, _, cal_wall = self._timed(w, sets, calibrate=True)
            r, ts, wall = self._timed(w, sets)
        except WorkerTimeout as e:
            return _fail(att, "timeout", f"timing: {e}")
        except WorkerGone as e:
            return _fail(att, "runtime_error", f"timing: {e}")
        except wire.WireError as e:
            return _fail(att, "harness_tampering", f"forged result channel: {e}")
        if not r.get("ok"):
            return _fail(att, "runtime_error", f"timing: {r.get('error')}: {r.get('message')}")
        if r.get("tampered"):
            return _fail(att, "harness_tampering", f"during timing: {', '.join(r['tampered'])}")
        # the outputs of the timed iterations are checked like any other call
        outs = ts.get("outputs", [])
        counts = r.get("out_counts", [])
        if len(counts) != len(sets) or sum(counts) != len(outs):
            return _fail(att, "harness_tampering", "timed outputs do not match the request")
        pos = 0
        for i, s in enumerate(sets):
            o = outs[pos:pos + counts[i]]
            pos += counts[i]
            ref = judge.reference_for(seed + 1000 + i, shape, s)
            v = judge.judge_values("timed", shape, seed + 1000 + i, s, ref, o)
            att.checks.append(v.record())
            if v.failure:
                return _fail(att, v.failure, f"timed set {i}: {v.message}")
        problem = checks.timing_consistency(cfg.device, r, wall, cal, cal_wall, cfg.iters)
        if problem:
            return _fail(att, "harness_tampering", f"timing cross-check: {problem}")
        samples = r["samples_us"] if cfg.device == "cuda" else r["walls_us"]
        att.timing = checks.stats(samples, "cuda_events+device_sync+l2_flush" if cfg.device == "cuda" else "wall_clock_cpu",
                                  cfg.warmup, r["walls_us"], wall)
        # what the same loop measures around a no-op: the sync and event cost every sample carries
        cal_samples = (cal.get("samples_us") if cfg.device == "cuda" else cal.get("walls_us")) or []
        att.timing["harness_overhead_us"] = checks.stats(cal_samples, "", 0, [], 0.0)["median"] if cal_samples else None
        ref0 = judge.reference_for(seed + 1000, shape, sets[0])
        fl = self._floor(task, sets[0], ref0, att.timing["median"])
        att.floor = fl
        if fl and fl.get("value") and att.timing["median"] < fl["value"]:
            return _fail(att, "impossible_timing",
                         f"median {att.timing['median']:.3f} us is below the floor {fl['value']:.3f} us ({fl['model']})")
        att.sol_fraction = fl.get("fraction") if fl else None
        return None

    def _floor(self, task: Task, inputs: list[Any], outputs: list[Any], median_us: float) -> dict[str, Any] | None:
        b = task.floor_bytes(inputs, outputs)
        f = task.floor_flops(inputs, outputs)
        ceil = device_ceilings(self.cfg.device)
        if ceil is None and self.cfg.device == "cpu":
            cpu = task.meta.get("cpu_floor")  # test tasks declare a CPU ceiling to exercise the floor gate
            if cpu:
                ceil = {"device": "cpu (task-declared)", "hbm_bw": float(cpu["bytes_per_s"]),
                        "flops": float(cpu.get("flops_per_s", 0)) or None, "source": "task METADATA cpu_floor"}
        if ceil is None:
            return {"model": "no ceiling known for this device", "bytes": b, "flops": f or None}
        t_bytes = b / ceil["hbm_bw"] * 1e6
        t_flops = (f / ceil["flops"] * 1e6) if (f and ceil.get("flops")) else 0.0
        value = max(t_bytes, t_flops)
        return {"model": f"max(bytes / {ceil['hbm_bw']:.3g} B/s, flops / {ceil.get('flops') or 0:.3g} FLOP/s) on {ceil['device']}",
                "bytes": b, "flops": f or None, "ceiling": ceil["hbm_bw"], "ceiling_unit": "B/s", "value": value,
                "fraction": value / median_us if median_us > 0 else None, "source": ceil["source"]}

    # -- baseline -------------------------------------------------------------------------------------
    def _baseline(self, task: Task, tmp: Path, seed: int, shape: dict[str, Any], att: Attempt) -> None:
        key = (task.source_sha256, repr(sorted(shape.items())))
        if key not in self._baselines:
            self._baselines[key] = self._time_baseline(task, tmp, seed, shape)
        base = self._baselines[key]
        att.baseline = base
        if base.get("median") and att.timing:
            att.speedup = base["median"] / att.timing["median"]

    def _time_baseline(self, task: Task, tmp: Path, seed: int, shape: dict[str, Any]) -> dict[str, Any]:
        """The task's named baseline (its `Baseline` class, else `Model`) timed the same way, in a clean worker
        that never saw the candidate: a candidate cannot slow the baseline down to look fast."""
        bdir = Path(tempfile.mkdtemp(prefix="kernelenv-baseline-"))
        shim = bdir / "baseline.py"
        shim.write_text(
            "import importlib.util\n"
            f"_spec = importlib.util.spec_from_file_location('task', {str(task.path)!r})\n"
            "_m = importlib.util.module_from_spec(_spec)\n_spec.loader.exec_module(_m)\n"
            "ModelNew = getattr(_m, 'Baseline', _m.Model)\n")
        name = "Baseline" if hasattr(task.module, "Baseline") else "Model (float64 reference)"
        try:
            w = self._load(task, bdir, shim, None)
            try:
                if not w.load_reply.get("ok"):  # type: ignore[attr-defined]
                    return {"name": name, "status": "error", "reason": w.load_reply.get("message")}  # type: ignore[attr-defined]
                r, _, wall = self._timed(w, self._timing_sets(task, seed, shape))
            finally:
                w.close()
            if not r.get("ok"):
                return {"name": name, "status": "error", "reason": r.get("message")}
            samples = r["samples_us"] if self.cfg.device == "cuda" else r["walls_us"]
            method = "cuda_events+device_sync+l2_flush" if self.cfg.device == "cuda" else "wall_clock_cpu"
            return {"name": name, "status": "passed", **checks.stats(samples, method, self.cfg.warmup, r["walls_us"], wall)}
        except (WorkerTimeout, WorkerGone, wire.WireError) as e:
            return {"name": name, "status": "error", "reason": str(e)}
        finally:
            shutil.rmtree(bdir, ignore_errors=True)


def native_problems(tmp: Path) -> list[str]:
    """Vendor libraries linked into the shared objects the attempt built (load_inline, hand-built extensions):
    read from the files on disk by this process, so the worker cannot hide a `-lcublas` behind its own kernel.
    A library that resolves vendor symbols at run time through dlsym is caught by the worker's audit hook."""
    import re
    import subprocess

    from floorline.kernelenv.worker import VENDOR_LIB, VENDOR_SYMBOL

    readelf, nm = shutil.which("readelf"), shutil.which("nm")
    if not readelf or not nm:
        return []
    out: list[str] = []
    for so in sorted(tmp.rglob("*.so")):
        if not so.is_file() or so.is_symlink():
            continue
        try:
            dyn = subprocess.run([readelf, "-dW", str(so)], capture_output=True, text=True, timeout=30).stdout
            syms = subprocess.run([nm, "-D", "--undefined-only", str(so)], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            continue
        for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", dyn):
            if VENDOR_LIB.search(lib):
                out.append(f"{so.name} links {lib}")
        for line in syms.splitlines():
            name = line.split()[-1].split("@")[0] if line.split() else ""
            if name and VENDOR_SYMBOL.search(name):
                out.append(f"{so.name} calls {name}")
    return out


def _fail(att: Attempt, failure_class: str, message: str) -> None:
    att.status = "failed"
    att.failure_class = failure_class
    att.message = message
    att.correct = False
    return None


def median(xs: list[float]) -> float:
    return statistics.median(xs)
