"""Paged GQA decode attention, split-KV (flash-decoding): each program streams one slice of one
sequence's cache for one KV head and all the query heads that share it; attention_combine merges
the slices.

Why this shape: decode reads every cached byte once and does little math per byte, so the kernel
is held to the HBM read ceiling. One program per (sequence, KV head, split) reads each K/V byte once
for the whole GQA group (G query heads x T query tokens form the M side of one tensor-core dot),
and the split count is picked so the grid fills every SM even at batch 1.

Query token t of T (speculative verification) sits at position seq_len - T + t and sees keys at
positions <= its own (and > its own - window when window > 0). seq_len 0 gives a zero output.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import triton
import triton.language as tl

from floorline.errors import InputError
from floorline.kernels.kv_cache import KVCache

LOG2E = 1.4426950408889634
MAX_SPLITS = 256  # beyond this the combine costs more than the extra parallelism buys
# Triton's CPU interpreter multiplies bf16 tiles in tl.dot as their raw 16-bit integers (numpy has no
# bf16), so under TRITON_INTERPRET=1 the bf16 path upcasts to fp32 before the dot. Same math,
# products of bf16 values are exact in fp32 either way; only the GPU build uses bf16 tensor cores.
_INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"


VARIANTS = ("v1", "v2")


@dataclass(frozen=True)
class DecodeConfig:
    """Launch shape. num_splits=0 picks splits so that about ctas_per_sm x SMs programs run.

    variant: "v1" (the kernel measured in runs 1-3, the default) or "v2" (decode_attention_v2:
    swapped dot operands, scales outside the dots; not yet measured). fuse_combine (v2 only): merge
    the splits in the last program of each (sequence, KV head) instead of a second launch.
    fp8_mma (v2, fp8 caches): K and V enter FP8 tensor cores as stored; q and the probabilities are
    split into two e4m3 tiles each (value + residual), so no K/V element is converted.
    min_split_tokens > 0 caps the split count so every split streams at least that many tokens
    (short contexts: a split of 2-4 blocks spends most of its life filling the pipeline).
    align_hint (v1 and v2): tell Triton the first slot of a block is a multiple of 16. The device's
    Triton 3.6 cannot derive it from the loop variable, so the token-contiguous fp8 V^T tile was
    loaded as 64 scalar bytes per thread outside the cp.async pipeline (round-0 SASS); with the hint
    it is 16-byte cp.async. v1 with the hint also zeroes a stale fp8 V tail only in the one partial
    block, not in every block. Results are identical either way; off by default until measured.
    maxnreg > 0 caps registers per thread (Triton launch option), e.g. 128 so that two 8-warp
    programs fit on one SM.
    prefetch (v1; bf16/fp8 with blocks inside one page, else ignored): load block i+1's K/V into
    registers before block i's math (see the kernel); meant with num_stages=1.
    one_tile (the decoder's fp32 attention, model/attention.py; used only where a split is one block,
    split_len == block_n, as at 1K with 64-token blocks): no loop. The split's page, K and V go out
    first (under PDL before the wait: no kernel of this step writes them), and q's QK-norm + RoPE run
    while they arrive (session 8, H100: the prologue cost ~1.5 us on the launch's critical path).
    """

    block_n: int = 64
    num_warps: int = 4
    num_stages: int = 3
    num_splits: int = 0
    ctas_per_sm: int = 4
    variant: str = "v1"
    fuse_combine: bool = False
    min_split_tokens: int = 0
    fp8_mma: bool = False
    align_hint: bool = False
    maxnreg: int = 0
    prefetch: bool = False
    one_tile: bool = False

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise InputError(f"variant: must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.fuse_combine and self.variant != "v2":
            raise InputError("fuse_combine: only the v2 kernel fuses the combine")
        if self.fp8_mma and self.variant != "v2":
            raise InputError("fp8_mma: only the v2 kernel has the FP8 tensor-core path")
        if self.fp8_mma and self.block_n < 32:
            # P x V^T reduces over the block's tokens: an FP8 wgmma needs K >= 32 (the interpreter
            # does not care, so CPU tests alone never saw this; nvidia-h200, session 4)
            raise InputError(f"block_n: the FP8 tensor-core path (fp8_mma) needs >= 32 tokens per block, got {self.block_n}")
        if self.prefetch and self.variant != "v1":
            raise InputError("prefetch: only the v1 kernel has the register-prefetch loop")
        if self.maxnreg and not 24 <= self.maxnreg <= 255:
            raise InputError(f"maxnreg: must be 0 (no cap) or 24..255, got {self.maxnreg}")
        if self.min_split_tokens < 0:
            raise InputError(f"min_split_tokens: must be >= 0, got {self.min_split_tokens}")


@triton.jit
def _decode_kernel(
    q_ptr, k_ptr, v_ptr, ks_ptr, vs_ptr, pt_ptr, len_ptr, o_ptr, lse_ptr,
    sq_b, sq_t, sq_h,
    sk_page, sk_head, sk_slot,
    sv_page, sv_head, sv_slot, sv_dim,
    ss_page, ss_head, ss_slot,
    pt_stride, so_b, so_t, so_h, so_s, sl_b, sl_t, sl_h,
    split_len, window, qk_scale, PAGE_SIZE: tl.constexpr,
    T: tl.constexpr, G: tl.constexpr, D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
    SCALAR_PAGE: tl.constexpr, V_T: tl.constexpr,
    KV_DTYPE: tl.constexpr, UPCAST_BF16: tl.constexpr, ALIGN_HINT: tl.constexpr = False,
    PREFETCH: tl.constexpr = False,
):
    b = tl.program_id(0)
    hk = tl.program_id(1)
    split = tl.program_id(2)
    seq_len = tl.load(len_ptr + b)

    rows = tl.arange(0, BLOCK_M)
    t_row = rows // G
    h_row = hk * G + rows % G
    row_ok = rows < G * T
    q_pos = seq_len - T + t_row  # position of each row's query token

    start = split * split_len
    end = tl.minimum(start + split_len, seq_len)
    if window > 0:  # skip whole blocks left of the earliest key any query sees
        lo = tl.maximum(seq_len - T - window + 1, 0)
        start = tl.maximum(start, (lo // BLOCK_N) * BLOCK_N)

    q_base = q_ptr + b * sq_b + t_row[:, None] * sq_t + h_row[:, None] * sq_h
    if KV_DTYPE == "fp4":
        dh = tl.arange(0, D // 2)
        q_lo = tl.load(q_base + 2 * dh[None, :], mask=row_ok[:, None], other=0.0).to(tl.float16)
        q_hi = tl.load(q_base + 2 * dh[None, :] + 1, mask=row_ok[:, None], other=0.0).to(tl.float16)
        acc_lo = tl.zeros([BLOCK_M, D // 2], dtype=tl.float32)
        acc_hi = tl.zeros([BLOCK_M, D // 2], dtype=tl.float32)
    else:
        d = tl.arange(0, D)
        q = tl.load(q_base + d[None, :], mask=row_ok[:, None], other=0.0)
        if KV_DTYPE == "fp8":
            q = q.to(tl.float16)
        acc = tl.zeros([BLOCK_M, D], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)

    pt_row = pt_ptr + b * pt_stride
    kv_head_off = hk.to(tl.int64) * sk_head
    if PREFETCH:
        # Register prefetch (bf16/fp8, blocks inside one page): Triton 3.6 pipelines a K/V load whose
        # address depends on a page-table load of the same iteration only one block ahead and with a
        # single buffer (the next block's copy is issued after this block's math and waited for at the
        # top of the next iteration: no overlap inside a program). Here block i+1's K/V are loaded into
        # registers before block i's math, with its page index loaded one iteration earlier still.
        d = tl.arange(0, D)
        pg_a = tl.load(pt_row + start // PAGE_SIZE, mask=start < end, other=0).to(tl.int64)
        pg_b = tl.load(pt_row + (start + BLOCK_N) // PAGE_SIZE, mask=start + BLOCK_N < end, other=0).to(tl.int64)
        k_c, v_c, ks_c, vs_c = _load_kv_block(k_ptr, v_ptr, ks_ptr, vs_ptr, pg_a, start, end, kv_head_off, hk,
                                              sk_page, sk_slot, sv_page, sv_head, sv_slot, sv_dim, ss_page, ss_head,
                                              ss_slot, PAGE_SIZE, D, BLOCK_N, V_T, KV_DTYPE)
        for n0 in range(start, end, BLOCK_N):
            n1 = n0 + BLOCK_N
            k_n, v_n, ks_n, vs_n = _load_kv_block(k_ptr, v_ptr, ks_ptr, vs_ptr, pg_b, n1, end, kv_head_off, hk,
                                                  sk_page, sk_slot, sv_page, sv_head, sv_slot, sv_dim, ss_page,
                                                  ss_head, ss_slot, PAGE_SIZE, D, BLOCK_N, V_T, KV_DTYPE)
            pg_b = tl.load(pt_row + (n1 + BLOCK_N) // PAGE_SIZE, mask=n1 + BLOCK_N < end, other=0).to(tl.int64)
            offs_n = n0 + tl.arange(0, BLOCK_N)
            n_ok = offs_n < end
            if KV_DTYPE == "fp8":
                s = tl.dot(q, tl.trans(k_c.to(tl.float16))) * ks_c[None, :]
            elif UPCAST_BF16:
                s = tl.dot(q.to(tl.float32), tl.trans(k_c.to(tl.float32)))
            else:
                s = tl.dot(q, tl.trans(k_c))
            s = s * qk_scale
            visible = n_ok[None, :] & (offs_n[None, :] <= q_pos[:, None])
            if window > 0:
                visible = visible & (offs_n[None, :] > q_pos[:, None] - window)
            s = tl.where(visible, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)
            alpha = tl.exp2(m_i - m_safe)
            p = tl.exp2(s - m_safe[:, None])
            l_i = l_i * alpha + tl.sum(p, axis=1)
            m_i = m_new
            acc = acc * alpha[:, None]
            if KV_DTYPE == "fp8":
                v16 = v_c.to(tl.float16)
                if n1 > end:  # the partial block: its stale tail (any byte, NaN included) must weigh 0
                    v16 = tl.where(n_ok[:, None], v16, 0.0)
                acc += tl.dot((p * vs_c[None, :]).to(tl.float16), v16)
            elif UPCAST_BF16:
                acc += tl.dot(p.to(v_c.dtype).to(tl.float32), v_c.to(tl.float32))
            else:
                acc += tl.dot(p.to(v_c.dtype), v_c)
            k_c, v_c, ks_c, vs_c = k_n, v_n, ks_n, vs_n
    else:
        for n0 in range(start, end, BLOCK_N):
            offs_n = n0 + tl.arange(0, BLOCK_N)
            n_ok = offs_n < end
            if SCALAR_PAGE:  # the block lies in one page: one page-table read, addresses contiguous in n
                page = tl.load(pt_row + n0 // PAGE_SIZE).to(tl.int64)
                slot0 = n0 % PAGE_SIZE
                if ALIGN_HINT:  # see DecodeConfig.align_hint: n0 is a multiple of BLOCK_N, Triton 3.6 cannot tell
                    slot0 = tl.multiple_of(slot0, 16)
                slot = slot0 + tl.arange(0, BLOCK_N)
            else:  # pages smaller than the block: one page-table read per token
                page = tl.load(pt_row + offs_n // PAGE_SIZE, mask=n_ok, other=0).to(tl.int64)
                slot = offs_n % PAGE_SIZE  # PAGE_SIZE is constexpr: a power of two becomes a mask and a shift
            tok_off = page * sk_page + kv_head_off + slot * sk_slot  # [BLOCK_N], in elements of k
            if V_T:  # fp8: V page is [D, page_size], tokens contiguous (literal stride 1 so Triton vectorizes)
                v_off = page * sv_page + hk.to(tl.int64) * sv_head + slot
            else:
                v_off = page * sv_page + hk.to(tl.int64) * sv_head + slot * sv_slot
            if KV_DTYPE == "fp4":
                # bytes as [N, D/32, 16]: the middle axis is the scale group, so the E8M0 scales
                # ([N, D/32, 1]) broadcast without a gather; merging the last two axes is free
                grp = tl.arange(0, D // 32)[None, :, None]
                byte3 = grp * 16 + tl.arange(0, 16)[None, None, :]
                ok3 = n_ok[:, None, None]
                kp = tl.load(k_ptr + tok_off[:, None, None] + byte3, mask=ok3, other=0)
                vp = tl.load(v_ptr + v_off[:, None, None] + byte3, mask=ok3, other=0)
                sc_off = page * ss_page + hk.to(tl.int64) * ss_head + slot * ss_slot
                k_scale = _e8m0_times_2p14(tl.load(ks_ptr + sc_off[:, None, None] + grp, mask=ok3, other=0))
                v_scale = _e8m0_times_2p14(tl.load(vs_ptr + sc_off[:, None, None] + grp, mask=ok3, other=0))
                k_lo = tl.reshape((_e2m1_to_f32(kp & 15) * k_scale).to(tl.float16), [BLOCK_N, D // 2])
                k_hi = tl.reshape((_e2m1_to_f32(kp >> 4) * k_scale).to(tl.float16), [BLOCK_N, D // 2])
                s = tl.dot(q_lo, tl.trans(k_lo)) + tl.dot(q_hi, tl.trans(k_hi))
            else:
                k = tl.load(k_ptr + tok_off[:, None] + d[None, :], mask=n_ok[:, None], other=0.0)
                if V_T:
                    v_ptrs = v_ptr + v_off[:, None] + d[None, :] * sv_dim
                else:
                    v_ptrs = v_ptr + v_off[:, None] + d[None, :]
                if V_T and SCALAR_PAGE:
                    # A mask that varies along the token axis would stop the loads from vectorizing; the
                    # block lies inside one allocated page, so load it whole and zero the tail below
                    # (a stale slot may hold any byte, NaN included).
                    v = tl.load(v_ptrs)
                else:
                    v = tl.load(v_ptrs, mask=n_ok[:, None], other=0.0)
                if KV_DTYPE == "fp8":
                    sc_off = page * ss_page + hk.to(tl.int64) * ss_head + slot * ss_slot
                    k_scale = tl.load(ks_ptr + sc_off, mask=n_ok, other=0.0)
                    v_scale = tl.load(vs_ptr + sc_off, mask=n_ok, other=0.0)
                    s = tl.dot(q, tl.trans(k.to(tl.float16))) * k_scale[None, :]
                elif UPCAST_BF16:
                    s = tl.dot(q.to(tl.float32), tl.trans(k.to(tl.float32)))
                else:
                    s = tl.dot(q, tl.trans(k))
            s = s * qk_scale  # log2 domain
            visible = n_ok[None, :] & (offs_n[None, :] <= q_pos[:, None])
            if window > 0:
                visible = visible & (offs_n[None, :] > q_pos[:, None] - window)
            s = tl.where(visible, s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # a row with nothing visible yet
            alpha = tl.exp2(m_i - m_safe)
            p = tl.exp2(s - m_safe[:, None])
            l_i = l_i * alpha + tl.sum(p, axis=1)
            m_i = m_new
            if KV_DTYPE == "fp4":
                acc_lo = acc_lo * alpha[:, None]
                acc_hi = acc_hi * alpha[:, None]
                v_lo = tl.reshape((_e2m1_to_f32(vp & 15) * v_scale).to(tl.float16), [BLOCK_N, D // 2])
                v_hi = tl.reshape((_e2m1_to_f32(vp >> 4) * v_scale).to(tl.float16), [BLOCK_N, D // 2])
                p16 = p.to(tl.float16)
                acc_lo += tl.dot(p16, v_lo)
                acc_hi += tl.dot(p16, v_hi)
            elif KV_DTYPE == "fp8":
                acc = acc * alpha[:, None]
                if SCALAR_PAGE and ALIGN_HINT:  # only the one partial block pays for zeroing its stale tail
                    v16 = v.to(tl.float16)
                    if n0 + BLOCK_N > end:
                        v16 = tl.where(n_ok[:, None], v16, 0.0)
                else:
                    v16 = tl.where(n_ok[:, None], v.to(tl.float16), 0.0) if SCALAR_PAGE else v.to(tl.float16)
                acc += tl.dot((p * v_scale[None, :]).to(tl.float16), v16)
            else:
                acc = acc * alpha[:, None]
                if UPCAST_BF16:
                    acc += tl.dot(p.to(v.dtype).to(tl.float32), v.to(tl.float32))
                else:
                    acc += tl.dot(p.to(v.dtype), v)

    l_safe = tl.where(l_i > 0, l_i, 1.0)
    lse = tl.where(l_i > 0, m_i + tl.log2(l_safe), float("-inf"))  # log2 domain
    o_base = o_ptr + b * so_b + t_row[:, None] * so_t + h_row[:, None] * so_h + split * so_s
    if KV_DTYPE == "fp4":
        tl.store(o_base + 2 * dh[None, :], acc_lo / l_safe[:, None], mask=row_ok[:, None])
        tl.store(o_base + 2 * dh[None, :] + 1, acc_hi / l_safe[:, None], mask=row_ok[:, None])
    else:
        tl.store(o_base + d[None, :], acc / l_safe[:, None], mask=row_ok[:, None])
    tl.store(lse_ptr + b * sl_b + t_row * sl_t + h_row * sl_h + split, lse, mask=row_ok)


@triton.jit
def _load_kv_block(k_ptr, v_ptr, ks_ptr, vs_ptr, page, n0, end, kv_head_off, hk, sk_page, sk_slot, sv_page,
                   sv_head, sv_slot, sv_dim, ss_page, ss_head, ss_slot, PAGE_SIZE: tl.constexpr, D: tl.constexpr,
                   BLOCK_N: tl.constexpr, V_T: tl.constexpr, KV_DTYPE: tl.constexpr):
    """K [N, D], V [N, D] and (fp8) the per-token scales of the block at n0, which lies in `page`.
    Rows past `end` read as 0 (K, bf16 V) or stay unmasked (fp8 V^T: a mask along its contiguous token
    axis would break 16-byte loads; the caller zeroes them); a block wholly past `end` reads page 0's
    bytes and is never used."""
    d = tl.arange(0, D)
    slot = tl.multiple_of(n0 % PAGE_SIZE, 16) + tl.arange(0, BLOCK_N)
    n_ok = n0 + tl.arange(0, BLOCK_N) < end
    k = tl.load(k_ptr + (page * sk_page + kv_head_off + slot * sk_slot)[:, None] + d[None, :], mask=n_ok[:, None],
                other=0.0)
    if V_T:
        v = tl.load(v_ptr + (page * sv_page + hk.to(tl.int64) * sv_head + slot)[:, None] + d[None, :] * sv_dim)
    else:
        v = tl.load(v_ptr + (page * sv_page + hk.to(tl.int64) * sv_head + slot * sv_slot)[:, None] + d[None, :],
                    mask=n_ok[:, None], other=0.0)
    if KV_DTYPE == "fp8":
        sc = page * ss_page + hk.to(tl.int64) * ss_head + slot * ss_slot
        ks = tl.load(ks_ptr + sc, mask=n_ok, other=0.0)
        vs = tl.load(vs_ptr + sc, mask=n_ok, other=0.0)
    else:
        ks = tl.zeros([BLOCK_N], dtype=tl.float32)
        vs = ks
    return k, v, ks, vs


@triton.jit
def _e2m1_to_f32(code):
    """E2M1 code (uint8 0..15) -> its value times 2**-14, by placing sign|exp|mantissa in fp16 bits
    (E2M1's subnormal 0.5 lands on fp16's subnormal range, so no special case)."""
    c = code.to(tl.int16)
    bits = ((c & 8) << 12) | ((c & 7) << 9)
    return bits.to(tl.float16, bitcast=True).to(tl.float32)


@triton.jit
def _e8m0_times_2p14(e):
    """E8M0 byte -> 2**(e - 127 + 14) as float32 (e = 0, an all-zero block, gives 0)."""
    ei = e.to(tl.int32)
    return tl.where(ei > 0, ((ei + 14) << 23).to(tl.float32, bitcast=True), 0.0)


def _check(q: Any, cache: KVCache, page_table: Any, seq_lens: Any) -> tuple[int, int, int, int]:
    import torch

    if q.dim() != 4:
        raise InputError(f"q: must be [batch, tokens, q_heads, head_dim], got shape {tuple(q.shape)}")
    b, t, hq, d = q.shape
    if d != cache.head_dim:
        raise InputError(f"q: head_dim {d} does not match the cache's {cache.head_dim}")
    if not 1 <= t <= 8:
        raise InputError(f"q: tokens per sequence must be 1..8, got {t}")
    hk = cache.kv_heads
    if hq % hk or not 1 <= hq // hk <= 16:
        raise InputError(f"q: q_heads ({hq}) must be a multiple of kv_heads ({hk}) with group size 1..16")
    if q.stride(3) != 1:
        raise InputError("q: head_dim must be the innermost, contiguous dimension")
    if page_table.dim() != 2 or page_table.shape[0] != b or page_table.dtype != torch.int32:
        raise InputError(f"page_table: must be int32 [{b}, max_pages], got {page_table.dtype} {tuple(page_table.shape)}")
    if seq_lens.shape != (b,) or seq_lens.dtype != torch.int32:
        raise InputError(f"seq_lens: must be int32 [{b}], got {seq_lens.dtype} {tuple(seq_lens.shape)}")
    if cache.k.stride(3) != 1:
        raise InputError("k_cache: head_dim must be contiguous")
    return b, t, hq, d


def split_plan(batch: int, kv_heads: int, max_len: int, cfg: DecodeConfig, sm_count: int) -> tuple[int, int]:
    """(num_splits, split_len): split_len is a multiple of block_n, fixed by max_len alone so that a
    CUDA graph captured at max_len serves every shorter length."""
    blocks = max(1, triton.cdiv(max_len, cfg.block_n))
    splits = cfg.num_splits or max(1, triton.cdiv(cfg.ctas_per_sm * sm_count, batch * kv_heads))
    if cfg.min_split_tokens and not cfg.num_splits:
        splits = min(splits, max(1, max_len // cfg.min_split_tokens))
    splits = min(splits, blocks, MAX_SPLITS)
    split_len = triton.cdiv(blocks, splits) * cfg.block_n
    return triton.cdiv(max(max_len, 1), split_len), split_len


def _sm_count(device: Any) -> int:
    import torch

    if torch.device(device).type != "cuda":
        return 4  # interpreter: a few programs are plenty
    return torch.cuda.get_device_properties(device).multi_processor_count


def decode_attention(q: Any, cache: KVCache, page_table: Any, seq_lens: Any, *, max_len: int,
                     scale: float | None = None, window: int = 0, cfg: DecodeConfig = DecodeConfig(),
                     out: Any = None, workspace: tuple[Any, ...] | None = None) -> Any:
    """Attention of q over a paged KV cache; returns [batch, tokens, q_heads, head_dim] in q's dtype.

    q: [batch, tokens (1..8), q_heads, head_dim]; cache: a KVCache (bf16 | fp8 | fp4; see kv_cache);
    page_table: int32 [batch, max_pages]; seq_lens: int32 [batch] on the device, each <= max_len and
    counting the query tokens themselves (they were appended before the call). max_len is a host int
    and fixes the launch (split count), so a CUDA graph captured at max_len replays for any lengths.
    scale defaults to head_dim**-0.5; window > 0 keeps only the last `window` keys per query.
    workspace: optional (partial_out, partial_lse) from `decode_workspace` to avoid allocation.
    """
    import torch

    from floorline.kernels.attention_combine import combine_splits

    b, t, hq, d = _check(q, cache, page_table, seq_lens)
    if window < 0:
        raise InputError(f"window: must be >= 0, got {window}")
    hk = cache.kv_heads
    g = hq // hk
    scale = d**-0.5 if scale is None else scale
    splits, split_len = split_plan(b, hk, max_len, cfg, _sm_count(q.device))
    if cache.rotation is not None:
        q = (q.float() @ cache.rotation.to(q.device)).to(q.dtype)
    if workspace is None:
        workspace = decode_workspace(b, t, hq, d, splits, q.device, fused=cfg.fuse_combine)
    o_part, lse = workspace[0], workspace[1]
    if o_part.shape[3] < splits:
        raise InputError(f"workspace: has {o_part.shape[3]} splits, this launch needs {splits}")
    block_m = max(16, triton.next_power_of_2(g * t))
    ks = cache.k_scale if cache.k_scale is not None else cache.k
    vs = cache.v_scale if cache.v_scale is not None else cache.v
    if out is None:
        out = torch.empty_like(q)
    if cfg.variant == "v2":
        _launch_v2(q, cache, page_table, seq_lens, workspace, out, ks, vs, b, hk, g, t, d, splits, split_len,
                   window, scale, block_m, cfg)
    else:
        _launch_v1(q, cache, page_table, seq_lens, o_part, lse, ks, vs, b, hk, g, t, d, splits, split_len,
                   window, scale, block_m, cfg)
    if not cfg.fuse_combine:
        combine_splits(o_part, lse, splits, out)
    if cache.rotation is not None:
        out.copy_((out.float() @ cache.rotation.to(out.device).T).to(out.dtype))
    return out


def _launch_v1(q: Any, cache: KVCache, page_table: Any, seq_lens: Any, o_part: Any, lse: Any, ks: Any, vs: Any,
               b: int, hk: int, g: int, t: int, d: int, splits: int, split_len: int, window: int, scale: float,
               block_m: int, cfg: DecodeConfig) -> None:
    _decode_kernel[(b, hk, splits)](
        q, cache.k, cache.v, ks, vs, page_table, seq_lens, o_part, lse,
        q.stride(0), q.stride(1), q.stride(2),
        cache.k.stride(0), cache.k.stride(1), cache.k.stride(2),
        cache.v.stride(0), cache.v.stride(1), *_v_token_dim_strides(cache),
        ks.stride(0), ks.stride(1), ks.stride(2),
        page_table.stride(0), o_part.stride(0), o_part.stride(1), o_part.stride(2), o_part.stride(3),
        lse.stride(0), lse.stride(1), lse.stride(2),
        split_len, window, scale * LOG2E, PAGE_SIZE=cache.page_size,
        T=t, G=g, D=d, BLOCK_M=block_m, BLOCK_N=cfg.block_n, KV_DTYPE=cache.kv_dtype,
        SCALAR_PAGE=cache.page_size % cfg.block_n == 0, V_T=cache.v_transposed,
        UPCAST_BF16=_INTERPRET, ALIGN_HINT=cfg.align_hint,
        PREFETCH=cfg.prefetch and cache.page_size % cfg.block_n == 0 and cache.kv_dtype != "fp4",
        num_warps=cfg.num_warps, num_stages=cfg.num_stages, **_reg_cap(cfg),
    )


def _reg_cap(cfg: DecodeConfig) -> dict[str, int]:
    """Triton's maxnreg launch option, only when set (the CPU interpreter has no registers)."""
    return {"maxnreg": cfg.maxnreg} if cfg.maxnreg and not _INTERPRET else {}


def _launch_v2(q: Any, cache: KVCache, page_table: Any, seq_lens: Any, workspace: tuple, out: Any, ks: Any,
               vs: Any, b: int, hk: int, g: int, t: int, d: int, splits: int, split_len: int, window: int,
               scale: float, block_m: int, cfg: DecodeConfig) -> None:
    from floorline.kernels.decode_attention_v2 import _decode_kernel_v2

    o_part, lse = workspace[0], workspace[1]
    if cfg.fuse_combine:
        if len(workspace) < 3 or workspace[2].numel() < b * hk:
            raise InputError("workspace: fuse_combine needs decode_workspace(..., fused=True)")
        counter = workspace[2]
    else:
        counter = seq_lens  # never touched when the combine is not fused
    _decode_kernel_v2[(b, hk, splits)](
        q, cache.k, cache.v, ks, vs, page_table, seq_lens, o_part, lse, out, counter,
        q.stride(0), q.stride(1), q.stride(2),
        cache.k.stride(0), cache.k.stride(1), cache.k.stride(2),
        cache.v.stride(0), cache.v.stride(1), *_v_token_dim_strides(cache),
        ks.stride(0), ks.stride(1), ks.stride(2),
        page_table.stride(0), o_part.stride(0), o_part.stride(1), o_part.stride(2), o_part.stride(3),
        lse.stride(0), lse.stride(1), lse.stride(2), out.stride(0), out.stride(1), out.stride(2),
        split_len, splits, window, scale * LOG2E, PAGE_SIZE=cache.page_size,
        T=t, G=g, D=d, BLOCK_M=block_m, BLOCK_N=cfg.block_n, KV_DTYPE=cache.kv_dtype,
        SCALAR_PAGE=cache.page_size % cfg.block_n == 0, V_T=cache.v_transposed,
        UPCAST_BF16=_INTERPRET, FUSE_COMBINE=cfg.fuse_combine,
        # BLOCK_S is read by the fused combine only: a constant otherwise, so the split count (CTAs per SM)
        # does not force a recompile per tuning point
        BLOCK_S=max(2, triton.next_power_of_2(splits)) if cfg.fuse_combine else 2, FP8_MMA=cfg.fp8_mma and cache.kv_dtype == "fp8",
        ALIGN_HINT=cfg.align_hint, num_warps=cfg.num_warps, num_stages=cfg.num_stages, **_reg_cap(cfg),
    )


def _v_token_dim_strides(cache: KVCache) -> tuple[int, int]:
    """(token stride, channel stride) of V: fp8 pages keep V transposed ([.., D, page_size])."""
    if cache.kv_dtype == "fp8":
        return cache.v.stride(3), cache.v.stride(2)
    return cache.v.stride(2), cache.v.stride(3)


def decode_workspace(batch: int, tokens: int, q_heads: int, head_dim: int, splits: int, device: Any,
                     fused: bool = False) -> tuple[Any, ...]:
    """Per-split partial outputs (float32) and log2-sum-exps, reusable across calls and graph replays.
    fused=True adds the zeroed int32 ticket counters the fused combine needs (it leaves them at 0)."""
    import torch

    ws = (torch.empty(batch, tokens, q_heads, splits, head_dim, dtype=torch.float32, device=device),
          torch.empty(batch, tokens, q_heads, splits, dtype=torch.float32, device=device))
    if fused:
        ws += (torch.zeros(batch * q_heads, dtype=torch.int32, device=device),)
    return ws
