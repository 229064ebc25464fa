"""Does an L2 set-aside keep the next layer's qkv weight (21 MB at the 30B shape) resident across one
layer's expert stream (75 MB), eagerly and inside a CUDA graph? The question is in
docs/notes/decode.md, session 11, "The idle HBM": session 10's prefetch into L2 lost because the lines
did not survive gate-up and down. This answers the survival half before any decoder change.

Every case runs B (a flush), a first touch of A (the stand-in for the next qkv), B again (the
experts), then a timed read of A (CUDA events; medians over --iters). Before each repetition the GPU
is idle, the persisting lines are reset, and a sleep kernel heads the queue, so the host has issued
everything before the GPU reaches it and no launch gap lands inside a timed read. With the set-aside,
an access-policy window over A (hit: persisting, miss: streaming) is on the stream for the first touch
only. In the "prefetched" cases that first touch is not a read but `prefetch.global.L2` hints from 128
programs (kernels.gemv.prefetch_share, what the decoder's prefetch_next issues): do hints take the
window's persisting property? References: the first touch followed directly by the timed read (A
resident, no B in between), and every case without a set-aside (what session 10 had). The graph cases
capture [B, A under the window, B, A] and [B, A under the window, B] on their own stream and time the
difference of their replays: if the window reaches the captured kernel nodes, it drops as the eager
one does.

    python3 scripts/bench_l2_setaside.py [--a-mb 21] [--b-mb 75] [--iters 20] [--json]

It sets the context's persisting-L2 limit (CU_LIMIT_PERSISTING_L2_CACHE_SIZE, a context limit, not a
clock), and before it exits resets the persisting lines and puts the limit back.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import triton
import triton.language as tl

from floorline.kernels.gemv import prefetch_share


def _ok(ret):
    """cuda.bindings calls return (CUresult, *values): raise on an error, return the values."""
    from cuda.bindings import driver

    err, *vals = ret if isinstance(ret, tuple) else (ret,)
    if err != driver.CUresult.CUDA_SUCCESS:
        raise RuntimeError(f"CUDA driver call failed: {err}")
    return vals[0] if len(vals) == 1 else vals


def _window(stream, ptr: int, nbytes: int) -> None:
    """An access-policy window over [ptr, ptr + nbytes) on the stream; nbytes 0 clears it."""
    from cuda.bindings import driver

    v = driver.CUstreamAttrValue()
    w = v.accessPolicyWindow
    w.base_ptr, w.num_bytes, w.hitRatio = ptr, nbytes, 1.0
    w.hitProp = driver.CUaccessProperty.CU_ACCESS_PROPERTY_PERSISTING if nbytes else driver.CUaccessProperty.CU_ACCESS_PROPERTY_NORMAL
    w.missProp = driver.CUaccessProperty.CU_ACCESS_PROPERTY_STREAMING if nbytes else driver.CUaccessProperty.CU_ACCESS_PROPERTY_NORMAL
    _ok(driver.cuStreamSetAttribute(driver.CUstream(stream.cuda_stream), driver.CU_STREAM_ATTRIBUTE_ACCESS_POLICY_WINDOW, v))


@triton.jit
def _prefetch(ptr, n_lines, LINE: tl.constexpr):
    """Each program asks L2 for its share of n_lines 128-byte lines at ptr (hints only, no loads)."""
    prefetch_share(ptr, n_lines, LINE, False)


SLEEP_CYCLES = 400_000  # ~200 us at 2 GHz: the queue fills behind it before the GPU gets to work


def run(a_mb: float, b_mb: float, iters: int) -> dict:
    import torch
    from cuda.bindings import driver

    dev = torch.device("cuda")
    cu_dev = _ok(driver.cuDeviceGet(torch.cuda.current_device()))
    l2 = torch.cuda.get_device_properties(dev).L2_cache_size
    max_persist = _ok(driver.cuDeviceGetAttribute(driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_PERSISTING_L2_CACHE_SIZE, cu_dev))
    max_window = _ok(driver.cuDeviceGetAttribute(driver.CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_ACCESS_POLICY_WINDOW_SIZE, cu_dev))
    a = torch.randn(int(a_mb * 2**20) // 2, device=dev, dtype=torch.bfloat16)
    b = torch.randn(int(b_mb * 2**20) // 2, device=dev, dtype=torch.bfloat16)
    sink = torch.empty(2, device=dev, dtype=torch.float32)
    win = min(a.numel() * 2, max_window)
    setaside = min(int(0.75 * l2), max_persist)
    stream = torch.cuda.Stream()  # attributes go on a stream of ours, not the legacy default stream

    def read(t, i: int) -> None:
        torch.sum(t, dtype=torch.float32, out=sink[i])

    def first_touch(window: bool, prefetch: bool, s) -> None:
        if window:
            _window(s, a.data_ptr(), win)
        if prefetch:  # 64 bf16 = one 128-byte line per hint
            _prefetch[(128,)](a, a.numel() // 64, LINE=64)
        else:
            read(a, 0)
        if window:
            _window(s, 0, 0)

    def timed(setup, body) -> float:
        """Median us of body() over the repetitions: each starts on an idle GPU with the persisting lines
        reset and a sleep kernel at the head of the queue, then runs setup() untimed."""
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters + 2)]
        with torch.cuda.stream(stream):
            for e0, e1 in ev:
                torch.cuda.synchronize()
                _ok(driver.cuCtxResetPersistingL2Cache())
                torch.cuda._sleep(SLEEP_CYCLES)
                setup()
                e0.record()
                body()
                e1.record()
        torch.cuda.synchronize()
        return statistics.median(e0.elapsed_time(e1) * 1e3 for e0, e1 in ev[2:])

    def eager(window: bool, prefetch: bool = False, between: bool = True) -> float:
        def setup() -> None:
            read(b, 1)  # flush: A is not in L2 before its first touch
            first_touch(window, prefetch, stream)
            if between:
                read(b, 1)

        return timed(setup, lambda: read(a, 0))

    def graph(window: bool, last_read: bool) -> float:
        g, side = torch.cuda.CUDAGraph(), torch.cuda.Stream()
        with torch.cuda.stream(side):  # warm-up outside capture
            read(a, 0)
            read(b, 1)
        torch.cuda.synchronize()
        with torch.cuda.graph(g, stream=side):
            read(b, 1)
            first_touch(window, False, side)
            read(b, 1)
            if last_read:
                read(a, 0)
        return timed(lambda: None, g.replay)

    old_limit = _ok(driver.cuCtxGetLimit(driver.CUlimit.CU_LIMIT_PERSISTING_L2_CACHE_SIZE))
    out = {"device": torch.cuda.get_device_name(dev), "l2_bytes": l2, "max_persisting_bytes": max_persist,
           "max_window_bytes": max_window, "a_bytes": a.numel() * 2, "b_bytes": b.numel() * 2, "window_bytes": win,
           "setaside_bytes": setaside, "iters": iters, "us": {}}
    us = out["us"]
    try:
        us["A read, then A (resident)"] = eager(False, between=False)
        us["A read, B, A; no set-aside"] = eager(False)
        us["A prefetched, then A"] = eager(False, prefetch=True, between=False)
        us["A prefetched, B, A; no set-aside"] = eager(False, prefetch=True)
        us["graph [B, A, B, A] - [B, A, B]; no set-aside"] = graph(False, True) - graph(False, False)
        _ok(driver.cuCtxSetLimit(driver.CUlimit.CU_LIMIT_PERSISTING_L2_CACHE_SIZE, setaside))
        us["A read under the window, B, A; set-aside"] = eager(True)
        us["A prefetched under the window, B, A; set-aside"] = eager(True, prefetch=True)
        try:
            us["graph, window set on the capture stream; set-aside"] = graph(True, True) - graph(True, False)
        except Exception as e:  # noqa: BLE001 - a stream attribute set during capture may be refused
            out["graph_window_error"] = f"{type(e).__name__}: {str(e)[:300]}"
    finally:  # each undo on its own, so a failure in one does not skip the others or hide the first error
        for undo in (lambda: _window(stream, 0, 0), lambda: _ok(driver.cuCtxResetPersistingL2Cache()),
                     lambda: _ok(driver.cuCtxSetLimit(driver.CUlimit.CU_LIMIT_PERSISTING_L2_CACHE_SIZE, old_limit))):
            try:
                undo()
            except Exception as e:  # noqa: BLE001 - reported, not raised over the original error
                print(f"bench_l2_setaside: cleanup: {e}", file=sys.stderr)
        torch.cuda.synchronize()
    out["hbm_read_tbps_implied"] = out["a_bytes"] / us["A read, B, A; no set-aside"] / 1e6
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a-mb", type=float, default=21.0, help="the array to keep (MiB; the next layer's qkv)")
    ap.add_argument("--b-mb", type=float, default=75.0, help="the stream between its reads (MiB; the experts)")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.a_mb <= 0 or a.b_mb <= 0 or a.iters < 1:
        print("bench_l2_setaside: --a-mb and --b-mb must be > 0 and --iters >= 1", file=sys.stderr)
        return 2
    import torch

    if not torch.cuda.is_available():
        print("bench_l2_setaside: needs a CUDA GPU (this machine has none)", file=sys.stderr)
        return 2
    out = run(a.a_mb, a.b_mb, a.iters)
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"{out['device']}: L2 {out['l2_bytes'] / 2**20:.0f} MiB, set-aside {out['setaside_bytes'] / 2**20:.1f} MiB "
              f"(max {out['max_persisting_bytes'] / 2**20:.1f}), window {out['window_bytes'] / 2**20:.1f} MiB")
        for k, v in out["us"].items():
            print(f"  {k:<55} {v:8.2f} us")
        if "graph_window_error" in out:
            print(f"  graph window: {out['graph_window_error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
