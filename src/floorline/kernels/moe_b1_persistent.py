"""Batch-1 MoE expert block in ONE persistent launch: gate-up + SwiGLU (RMSNorm folded in), a grid
barrier, then down weighted by the routing weights and added into the float32 residual.

NOT YET RUN ON A GPU. Everything here was checked on the CPU (the Triton interpreter, two-launch mode)
and compiled for sm_90 without a GPU (docs/notes/decode.md, session 7). The one-launch mode (PHASE=0,
the grid barrier) has only been compiled, never executed.

Why (docs/notes/decode.md, session 5 timeline on an H200): the two launches it replaces,
kernels/moe_gemv.py's moe_gemv_b1 with swiglu + norm and with slot_weights + accumulate, cost 15.5 +
8.4 us per layer against an 11.1 + 5.5 us HBM floor. Each launch pays a ramp (launch -> expert id ->
first weight bytes) and a tail. Here a fixed grid of resident programs (SMs x programs_per_sm) does
both. A program that has finished its gate-up tiles issues the loads of its first down tile (the
expert ids are known since the router ran) and only then waits at the grid barrier, so the down
stream starts with its first bytes already in flight.

Work split, same math as the two moe_gemv_b1 calls of model/fast.py's _step_b1:
- phase 1, gate-up tile t = pid + i * grid (slot s = t % S, row block t // S, the order in which the
  old (S, row blocks) grid was scheduled): BLOCK_N1 gate rows and the matching up rows of expert
  slot_e[s], K = hidden in BLOCK_K1 tiles, the raw residual normed on the fly (sum of squares rides
  the K loop, rsqrt(mean) scales the dot products), act[s, rows] = silu(g) * u in float32;
- phase 2, down tile t = pid + i * grid: BLOCK_N2 rows of expert slot_e[s]'s down weight over the whole
  intermediate K, times act[s], times slot_w[s], added into res[0, rows] with fp32 atomics (as
  moe_gemv_b1's accumulate path at split_k 1: each output element gets S adds, one per slot).
  The K loop keeps one weight tile ahead in registers (double_buffer) and that lookahead crosses tile
  boundaries: the last K step of tile t loads tile t + grid's first K tile, so a program's stream does
  not stop between its down tiles; the first one is loaded before the barrier.

The grid barrier (PHASE=0) and why it needs no host reset (also across CUDA-graph replays):
counter is int32 [BARRIER_WORDS] (barrier_counter()): word ARRIVE counts arrivals of the running call and
is 0 between calls; word GEN is a generation number that each call increments once; word TIMEOUT is a
status flag. Each program (after bar.sync, so all its act stores are issued):
  1. reads gen0 = GEN (ld.acquire.gpu, from L2). No program of this call can have changed GEN yet: only
     the last arrival does, and this program has not arrived. Every earlier call's increment is
     visible: that call's kernel finished before this one passed its PDL wait (or before it launched,
     without PDL), and PDL waits chain, so every kernel before it in the stream has finished too.
  2. arrives: a = atomic_add(ARRIVE, 1, acq_rel, gpu) (one thread; Triton issues a scalar atomic once
     per program). The program that gets a == grid - 1 is the last: every other arrival (each a release
     after its own bar.sync) precedes it in ARRIVE's modification order, so its acquire half sees all
     their act stores. It sets ARRIVE back to 0 (nobody else touches ARRIVE in this call, and the next
     call is a later kernel) and then increments GEN with release semantics, which publishes all of it.
  3. spins until GEN != gen0 (ld.acquire.gpu by every thread, so every thread's later .cg loads of act
     are ordered after the release). != rather than a target value: GEN may wrap at 2^32 and may start
     anywhere (a replayed graph, a different grid size between calls: nothing is assumed about it).
A freshly zeroed counter works, nothing needs resetting between launches or graph replays, and a call
that is interrupted mid-barrier (a timeout, below) still leaves ARRIVE at 0 once all programs arrived.
Spins are bounded (spin_limit polls: the 1 << 16 default is ~15-50 ms at 0.2-0.7 us per L2 round trip,
about 1000x the longest legitimate wait, a whole gate-up phase of ~15 us: a broken barrier then costs
~1-2 s per 48-layer step instead of hanging the device call); a program that gives up sets
counter[TIMEOUT] = 1 and goes on, so a grid that cannot be co-resident gives wrong sums and a flag the
host can read (moe_b1_persistent_timed_out) instead of a hung GPU.

Co-residency (a grid barrier deadlocks if any program cannot be resident while the others spin): the
build is compiled with a register cap that lets programs_per_sm programs fit (register_cap), then the
launcher compiles the kernel first, computes from its registers and shared memory how many programs fit
on one SM (resident_per_sm, the occupancy arithmetic of sm_90: 64K registers in four 16K partitions
allocated per warp in 256-register units, 64 warps, 32 blocks, 228 KB of shared memory with 1 KB
reserved per block) and launches SMs x min(programs_per_sm, that). The config refuses more than 64
warps per SM outright. Under PDL (pdl=True), the kernel before this one may still hold SM resources
when these programs start. That is safe: its programs never wait on ours and retire, freeing the slots;
and the kernel after this one cannot launch before every program of ours has executed
griddepcontrol.launch_dependents, i.e. has become resident. Other work on the same GPU at the same
time (another stream or process) could hold slots indefinitely: do not run this beside other kernels.

CPU testing: the Triton interpreter runs programs one after another, so a grid barrier would never open.
PHASE=1 runs gate-up only, PHASE=2 down only; the launcher runs the two as two launches when
interpreting (or with split_phases=True on a GPU, the comparison mode of the GPU tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import triton
import triton.language as tl

from floorline.errors import InputError
from floorline.kernels.gemv import _INTERPRET, pdl_enter
from floorline.kernels.swiglu import silu_mul

# counter layout (int32 words): the arrival count and the generation on different 128-byte lines, so the
# spinning loads of GEN do not share a line with the arrivals' atomics
ARRIVE, GEN, TIMEOUT = 0, 32, 64
BARRIER_WORDS = 96
SPIN_LIMIT = 1 << 16

# sm_90 (H100/H200) per-SM limits for the residency arithmetic
SM90_REGS_PER_PARTITION = 16384  # 65536 registers in 4 partitions; a warp's registers come from one
SM90_MAX_WARPS = 64
SM90_MAX_BLOCKS = 32
SM90_SHARED_PER_SM = 233472  # 228 KiB
SM90_SHARED_RESERVED = 1024  # per block


@dataclass(frozen=True)
class MoePersistentConfig:
    """Launch shape of moe_b1_persistent. Gate-up as the session 5 tuner chose it for its own launch (16 x
    256, 4 warps, double-buffered; 167 registers on sm_90: 3 programs of 4 warps per SM). Down gets 16 x 256
    rather than its own launch's 16 x 128: here only 3 programs per SM stream it (the separate down kernel,
    55 registers, kept ~8 per SM resident), so each program needs bigger tiles in flight, 2 x 8 KB, 48 KB
    per SM (sm_90 at 168 registers: one 4-byte spill outside the loops, scripts/regs_moe_b1_persistent.py)."""

    programs_per_sm: int = 3
    gate_up_block_n: int = 16
    gate_up_block_k: int = 256
    down_block_n: int = 16
    down_block_k: int = 256
    num_warps: int = 4
    num_stages: int = 3
    double_buffer: bool = True
    spin_limit: int = SPIN_LIMIT

    def __post_init__(self) -> None:
        for name in ("gate_up_block_n", "gate_up_block_k", "down_block_n", "down_block_k", "num_warps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1 or v & (v - 1):
                raise InputError(f"moe_persistent.{name}: must be a power of two, got {v!r}")
        if self.num_warps > 32:
            raise InputError(f"moe_persistent.num_warps: at most 32, got {self.num_warps}")
        if not isinstance(self.programs_per_sm, int) or self.programs_per_sm < 1:
            raise InputError(f"moe_persistent.programs_per_sm: must be >= 1, got {self.programs_per_sm!r}")
        if self.programs_per_sm * self.num_warps > SM90_MAX_WARPS:
            raise InputError(f"moe_persistent.programs_per_sm: {self.programs_per_sm} programs x {self.num_warps} warps "
                             f"exceed the {SM90_MAX_WARPS} warps one SM holds (a grid barrier needs every program resident)")
        if not isinstance(self.spin_limit, int) or self.spin_limit < 1:
            raise InputError(f"moe_persistent.spin_limit: must be >= 1, got {self.spin_limit!r}")


def barrier_counter(device: Any) -> Any:
    """The int32 [BARRIER_WORDS] counter moe_b1_persistent's grid barrier needs (zeros; never reset after)."""
    return torch.zeros(BARRIER_WORDS, dtype=torch.int32, device=device)


def moe_b1_persistent_timed_out(counter: Any) -> bool:
    """True if some program of some call since the counter was made gave up waiting at the barrier (the
    grid was not co-resident; those calls' sums are wrong). Synchronizes with the device."""
    return bool(int(counter[TIMEOUT].item()))


def resident_per_sm(regs: int, num_warps: int, shared: int) -> int:
    """Programs of one kernel that fit on one sm_90 SM at once, from its registers per thread, warps per
    program and shared memory per program (the CUDA occupancy arithmetic; conservative: registers are
    counted per 16K partition, so a warp never straddles two)."""
    warp_regs = -(-max(regs, 1) * 32 // 256) * 256
    warps_by_regs = 4 * (SM90_REGS_PER_PARTITION // warp_regs)
    by_regs = warps_by_regs // num_warps
    by_warps = SM90_MAX_WARPS // num_warps
    by_smem = SM90_SHARED_PER_SM // (shared + SM90_SHARED_RESERVED)
    return max(0, min(by_regs, by_warps, by_smem, SM90_MAX_BLOCKS))


def register_cap(programs_per_sm: int, num_warps: int) -> int | None:
    """The most registers per thread at which programs_per_sm programs of num_warps warps fit on one sm_90
    SM (passed to the compiler as maxnreg; None when the cap would be the hardware's 255 anyway). Why: with
    the persistent tile loops ptxas takes 212 registers for the default build where the one-tile gate-up
    kernel took 167 (scripts/regs_moe_b1_persistent.py), which would leave 2 programs per SM instead of 3;
    capped at 168 it compiles with no spills."""
    warps_per_partition = -(-programs_per_sm * num_warps // 4)
    cap = SM90_REGS_PER_PARTITION // (warps_per_partition * 32) // 8 * 8
    return None if cap >= 255 else cap


@triton.jit
def _ld_acquire(ptr):
    """One int32 at ptr, ld.acquire.gpu (from L2, ordered before every later load of this thread)."""
    v = tl.inline_asm_elementwise("ld.global.acquire.gpu.b32 $0, [$1];", "=r,l", [ptr + tl.zeros([1], tl.int32)],
                                  dtype=tl.int32, is_pure=False, pack=1)
    return tl.max(v, axis=0)


@triton.jit
def _grid_barrier(cnt_ptr, SPIN: tl.constexpr):
    """All programs of the grid meet here (see the module docstring for the memory-order argument)."""
    gen_ptr = cnt_ptr + 32
    gen0 = _ld_acquire(gen_ptr)
    tl.debug_barrier()  # every thread's stores (act) and its gen0 read come before the arrival
    a = tl.atomic_add(cnt_ptr, 1, sem="acq_rel", scope="gpu")
    if a == tl.num_programs(0) - 1:
        tl.atomic_xchg(cnt_ptr, 0, sem="relaxed", scope="gpu")
        tl.atomic_add(gen_ptr, 1, sem="release", scope="gpu")
    seen = _ld_acquire(gen_ptr)
    i = 0
    while (seen == gen0) & (i < SPIN):
        seen = _ld_acquire(gen_ptr)
        i += 1
    if seen == gen0:  # gave up: say so rather than hang the GPU
        tl.atomic_xchg(cnt_ptr + 64, 1, sem="relaxed", scope="gpu")
    tl.debug_barrier()


@triton.jit
def _down_tile(t, T2, S, N2, slot_e_ptr, s_de, s_dn, BLOCK_N2: tl.constexpr):
    """Down tile t: its slot, its expert, the int64 weight-row offsets and the row mask (all False past
    the last tile, so a lookahead past the end loads nothing)."""
    live = t < T2
    s = t % S
    e = tl.load(slot_e_ptr + s, mask=live, other=0).to(tl.int64)
    n = (t // S) * BLOCK_N2 + tl.arange(0, BLOCK_N2)
    # the row limit drops to 0 past the last tile (a mask, not `& live`: the interpreter refuses a
    # scalar-and-tensor boolean mask)
    return s, e, n, n < tl.where(live, N2, 0), e * s_de + n.to(tl.int64) * s_dn


@triton.jit
def _moe_b1_persistent_kernel(
        x_ptr, gain_ptr, wgu_ptr, sgu_ptr, wd_ptr, sd_ptr, slot_e_ptr, slot_w_ptr, act_ptr, cnt_ptr,
        S, H, INTER, s_gue, s_gun, s_gse, s_de, s_dn, s_dse, s_act, eps,
        PHASE: tl.constexpr, HAS_SCALE: tl.constexpr, HAS_WEIGHT: tl.constexpr, PDL: tl.constexpr,
        DBUF: tl.constexpr, SPIN: tl.constexpr,
        BLOCK_N1: tl.constexpr, BLOCK_K1: tl.constexpr, BLOCK_N2: tl.constexpr, BLOCK_K2: tl.constexpr):
    pid = tl.program_id(0)
    G = tl.num_programs(0)
    pdl_enter(PDL)
    if PHASE != 2:
        # ---- phase 1: gate-up + SwiGLU, RMSNorm folded in (moe_gemv_b1's DBUF K loop) ----
        T1 = S * tl.cdiv(INTER, BLOCK_N1)
        for t in range(pid, T1, G):
            s = t % S
            e = tl.load(slot_e_ptr + s).to(tl.int64)
            n = (t // S) * BLOCK_N1 + tl.arange(0, BLOCK_N1)
            nmask = n < INTER
            wg = wgu_ptr + e * s_gue + n.to(tl.int64)[:, None] * s_gun
            wu = wg + INTER * s_gun
            acc_g = tl.zeros([BLOCK_N1, BLOCK_K1], dtype=tl.float32)
            acc_u = tl.zeros([BLOCK_N1, BLOCK_K1], dtype=tl.float32)
            ss = tl.zeros([BLOCK_K1], dtype=tl.float32)
            if DBUF:  # tile i+1 issued before tile i's multiply-adds (GemvConfig.double_buffer)
                k = tl.arange(0, BLOCK_K1)
                m2 = nmask[:, None] & (k < H)[None, :]
                tg = tl.load(wg + k[None, :], mask=m2, other=0.0)
                tu = tl.load(wu + k[None, :], mask=m2, other=0.0)
                for k0 in range(0, H, BLOCK_K1):
                    k = k0 + tl.arange(0, BLOCK_K1)
                    kmask = k < H
                    kn = k + BLOCK_K1
                    mn = nmask[:, None] & (kn < H)[None, :]
                    ng = tl.load(wg + kn[None, :], mask=mn, other=0.0)
                    nu = tl.load(wu + kn[None, :], mask=mn, other=0.0)
                    x = tl.load(x_ptr + k, mask=kmask, other=0.0).to(tl.float32)
                    ss += x * x
                    x = x * tl.load(gain_ptr + k, mask=kmask, other=0.0).to(tl.float32)
                    acc_g += tg.to(tl.float32) * x[None, :]
                    acc_u += tu.to(tl.float32) * x[None, :]
                    tg = ng
                    tu = nu
            else:
                for k0 in range(0, H, BLOCK_K1):
                    k = k0 + tl.arange(0, BLOCK_K1)
                    kmask = k < H
                    m2 = nmask[:, None] & kmask[None, :]
                    x = tl.load(x_ptr + k, mask=kmask, other=0.0).to(tl.float32)
                    ss += x * x
                    x = x * tl.load(gain_ptr + k, mask=kmask, other=0.0).to(tl.float32)
                    acc_g += tl.load(wg + k[None, :], mask=m2, other=0.0).to(tl.float32) * x[None, :]
                    acc_u += tl.load(wu + k[None, :], mask=m2, other=0.0).to(tl.float32) * x[None, :]
            r = tl.rsqrt(tl.sum(ss, axis=0) / H + eps)
            g = tl.sum(acc_g, axis=1) * r
            u = tl.sum(acc_u, axis=1) * r
            if HAS_SCALE:
                g = g * tl.load(sgu_ptr + e * s_gse + n, mask=nmask, other=0.0)
                u = u * tl.load(sgu_ptr + e * s_gse + INTER + n, mask=nmask, other=0.0)
            tl.store(act_ptr + s * s_act + n, silu_mul(g, u), mask=nmask)
    if PHASE != 1:
        # ---- phase 2: down, weighted, added into the residual ----
        T2 = S * tl.cdiv(H, BLOCK_N2)
        kk = tl.arange(0, BLOCK_K2)
        # this program's first down tile: its first K tile is in flight while the program waits below
        s, e, n, nmask, roff = _down_tile(pid, T2, S, H, slot_e_ptr, s_de, s_dn, BLOCK_N2)
        tw = tl.load(wd_ptr + roff[:, None] + kk[None, :], mask=nmask[:, None] & (kk < INTER)[None, :], other=0.0)
        if PHASE == 0:
            _grid_barrier(cnt_ptr, SPIN)
        for t in range(pid, T2, G):
            # tw holds tile t's first K tile on entry (loaded by the previous tile's last K step)
            s, e, n, nmask, roff = _down_tile(t, T2, S, H, slot_e_ptr, s_de, s_dn, BLOCK_N2)
            s_n, e_n, n_n, nmask_n, roff_n = _down_tile(t + G, T2, S, H, slot_e_ptr, s_de, s_dn, BLOCK_N2)
            acc = tl.zeros([BLOCK_N2, BLOCK_K2], dtype=tl.float32)
            for k0 in range(0, INTER, BLOCK_K2):
                k = k0 + kk
                kmask = k < INTER
                # the next K tile: this tile's, or past its end the next tile's first
                more = k0 + BLOCK_K2 < INTER
                noff = tl.where(more, roff, roff_n)
                ncol = tl.where(more, k + BLOCK_K2, kk)
                nm = tl.where(more, nmask, nmask_n)[:, None] & (ncol < INTER)[None, :]
                if DBUF:
                    nw = tl.load(wd_ptr + noff[:, None] + ncol[None, :], mask=nm, other=0.0)
                # act was written by other programs of this launch: from L2 (.cg), never a stale L1 line
                x = tl.load(act_ptr + s * s_act + k, mask=kmask, other=0.0, cache_modifier=".cg")
                acc += tw.to(tl.float32) * x[None, :]
                if DBUF:
                    tw = nw
                else:  # one tile live at a time: the next load waits for these multiply-adds
                    tw = tl.load(wd_ptr + noff[:, None] + ncol[None, :], mask=nm, other=0.0)
            y = tl.sum(acc, axis=1)
            if HAS_SCALE:
                y = y * tl.load(sd_ptr + e * s_dse + n, mask=nmask, other=0.0)
            if HAS_WEIGHT:
                y = y * tl.load(slot_w_ptr + s)
            tl.atomic_add(x_ptr + n, y, mask=nmask, sem="relaxed")


_RESIDENT: dict[tuple, int] = {}


def _resident(device: Any, key: tuple, compile_fn: Any) -> int:
    """Programs per SM the compiled kernel can keep resident, cached per (device, build)."""
    full = (device, *key)
    if full not in _RESIDENT:
        kern = compile_fn()
        kern._init_handles()  # loads the cubin: n_regs is known only then
        _RESIDENT[full] = resident_per_sm(kern.n_regs, kern.metadata.num_warps, kern.metadata.shared)
    return _RESIDENT[full]


def kernel_args(res: Any, w_gate_up: Any, w_down: Any, slot_e: Any, slot_w: Any, act: Any, *, scale_gu: Any,
                scale_down: Any, norm: tuple[Any, float], counter: Any, cfg: MoePersistentConfig,
                pdl: bool, one_launch: bool) -> tuple[tuple, dict[str, Any]]:
    """Checked positional arguments and constexpr / launch options of _moe_b1_persistent_kernel (PHASE
    not included). one_launch: the barrier build, compiled under register_cap (the two-launch builds need
    no co-residency, so no cap). Also what scripts/regs_moe_b1_persistent.py compiles for sm_90."""
    S = slot_e.numel()
    R, H = res.shape
    E, n_w, kw = w_gate_up.shape
    inter = n_w // 2
    gain, eps = norm
    if R != 1 or res.dtype != torch.float32 or res.stride(1) != 1:
        raise InputError(f"moe_b1_persistent: res must be float32 [1, H] with contiguous rows, got {tuple(res.shape)} {res.dtype}")
    if kw != H or n_w % 2 or w_gate_up.stride(2) != 1:
        raise InputError(f"moe_b1_persistent: w_gate_up must be [E, 2I, {H}] with contiguous rows, got {tuple(w_gate_up.shape)}")
    if tuple(w_down.shape) != (E, H, inter) or w_down.stride(2) != 1:
        raise InputError(f"moe_b1_persistent: w_down must be [{E}, {H}, {inter}] with contiguous rows, got {tuple(w_down.shape)}")
    if tuple(act.shape) != (S, inter) or act.stride(1) != 1 or act.dtype != torch.float32:
        raise InputError(f"moe_b1_persistent: act must be float32 [{S}, {inter}], got {tuple(act.shape)} {act.dtype}")
    if slot_e.dtype != torch.int32 or (slot_w is not None and tuple(slot_w.shape) != (S,)):
        raise InputError(f"moe_b1_persistent: slot_e must be int32 [S] and slot_w [S] or None, got {slot_e.dtype}, "
                         f"{None if slot_w is None else tuple(slot_w.shape)}")
    if (scale_gu is None) != (scale_down is None):
        raise InputError("moe_b1_persistent: scale_gu and scale_down come together (FP8 weights) or not at all")
    if scale_gu is not None and (tuple(scale_gu.shape) != (E, n_w) or tuple(scale_down.shape) != (E, H)):
        raise InputError(f"moe_b1_persistent: scales must be [{E}, {n_w}] and [{E}, {H}], got "
                         f"{tuple(scale_gu.shape)}, {tuple(scale_down.shape)}")
    if tuple(gain.shape) != (H,):
        raise InputError(f"moe_b1_persistent: norm gain must be [{H}], got {tuple(gain.shape)}")
    if counter.dtype != torch.int32 or counter.numel() < BARRIER_WORDS:
        raise InputError(f"moe_b1_persistent: counter must be int32 [>= {BARRIER_WORDS}] (barrier_counter())")
    has_scale = scale_gu is not None
    args = (res, gain, w_gate_up, scale_gu if has_scale else res, w_down, scale_down if has_scale else res, slot_e,
            slot_w if slot_w is not None else res, act, counter,
            S, H, inter, w_gate_up.stride(0), w_gate_up.stride(1), scale_gu.stride(0) if has_scale else 0,
            w_down.stride(0), w_down.stride(1), scale_down.stride(0) if has_scale else 0, act.stride(0), float(eps))
    const = dict(HAS_SCALE=has_scale, HAS_WEIGHT=slot_w is not None, PDL=pdl, DBUF=cfg.double_buffer,
                 SPIN=cfg.spin_limit, BLOCK_N1=cfg.gate_up_block_n, BLOCK_K1=cfg.gate_up_block_k,
                 BLOCK_N2=cfg.down_block_n, BLOCK_K2=cfg.down_block_k,
                 num_warps=cfg.num_warps, num_stages=cfg.num_stages, **({"launch_pdl": True} if pdl else {}))
    cap = register_cap(cfg.programs_per_sm, cfg.num_warps)
    if one_launch and cap is not None and not _INTERPRET:  # the interpreter takes no register cap
        const["maxnreg"] = cap
    return args, const


def moe_b1_persistent(res: Any, w_gate_up: Any, w_down: Any, slot_e: Any, slot_w: Any, act: Any, *,
                      scale_gu: Any = None, scale_down: Any = None, norm: tuple[Any, float], counter: Any,
                      cfg: MoePersistentConfig = MoePersistentConfig(), pdl: bool = False,
                      split_phases: bool | None = None, sm_count: int | None = None) -> Any:
    """res[0] += sum_j slot_w[j] * down_e(silu(g) * u), (g, u) = gate_up_e(rmsnorm(res[0]) * gain), e = slot_e[j],
    in one launch: the same result as model/fast.py's two moe_gemv_b1 calls (gate-up swiglu + norm into
    act, down with slot_weights + accumulate into res), up to the order of the float32 atomic adds.

    res: float32 [1, H], the raw residual (read normed, then added into); w_gate_up: [E, 2I, H] (gate rows
    then up rows), w_down: [E, H, I], bf16 or FP8 with scale_gu [E, 2I] / scale_down [E, H]; slot_e: int32
    [S] (distinct experts); slot_w: float32 [S] or None (a dense MLP: S = 1, unweighted); act: float32
    [S, I] scratch (rows may be strided), left holding silu(g) * u; norm: (gain [H], eps); counter:
    barrier_counter(device), shared by every call (see the module docstring). split_phases: None = one
    launch on a GPU, two (gate-up, then down) in the interpreter; True forces two launches. sm_count:
    None = the device's SM count (4 in the interpreter, where it only sets how many tiles each program
    loops over). NOT YET RUN ON A GPU."""
    if split_phases is None:
        split_phases = _INTERPRET
    args, const = kernel_args(res, w_gate_up, w_down, slot_e, slot_w, act, scale_gu=scale_gu, scale_down=scale_down,
                              norm=norm, counter=counter, cfg=cfg, pdl=pdl, one_launch=not split_phases)
    if _INTERPRET and not split_phases:
        raise InputError("moe_b1_persistent: split_phases=False under TRITON_INTERPRET would deadlock (programs run one at a time)")
    if sm_count is None:
        sm_count = torch.cuda.get_device_properties(res.device).multi_processor_count if res.is_cuda else 4
    per_sm = cfg.programs_per_sm
    if not split_phases:
        # deadlock safety: never more programs than the compiled build can keep resident
        key = (cfg, pdl, scale_gu is not None, slot_w is not None, w_gate_up.dtype, w_down.dtype, *args[10:13])
        fit = _resident(res.device, key, lambda: _moe_b1_persistent_kernel.warmup(*args, PHASE=0, grid=(1,), **const))
        if fit < 1:
            raise InputError(f"moe_b1_persistent: the build for {cfg} does not fit on one SM")
        per_sm = min(per_sm, fit)
    grid = (max(1, sm_count * per_sm),)
    for phase in ((1, 2) if split_phases else (0,)):
        _moe_b1_persistent_kernel[grid](*args, PHASE=phase, **const)
    return res
