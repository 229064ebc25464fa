"""`bench attention`: paged GQA decode attention, ours vs torch SDPA (bf16, contiguous) vs FlashInfer,
same process, same data, divided by the same-run HBM read ceiling.

Each case builds K/V once (bf16, contiguous, for SDPA), copies it into shuffled pages (ours and
FlashInfer), times all three in the same mode (CUDA-graph replay for short calls, events otherwise),
rotating through enough copies of the cache that consecutive calls never hit in L2.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from floorline.errors import InputError

GRAPH_MAX_TOKENS = 256 * 1024  # batch x context at or below this is timed in CUDA graphs
ROTATE_BYTES = 512 << 20  # at least this much distinct KV per timed rotation (H200 L2 is 50 MiB)


@dataclass(frozen=True)
class Case:
    context: int
    batch: int = 1
    kv_dtype: str = "bf16"
    page_size: int = 64  # 0 = contiguous
    q_heads: int = 64
    kv_heads: int = 4
    head_dim: int = 128

    @property
    def graph(self) -> bool:
        return self.batch * self.context <= GRAPH_MAX_TOKENS

    def label(self) -> str:
        ps = "contig" if self.page_size == 0 else f"page {self.page_size}"
        return f"{self.kv_dtype} {self.batch}x{self.context} {ps}"

    def kv_bytes(self) -> float:
        from floorline.kernels.kv_cache import bytes_per_token_head

        return 2.0 * self.batch * self.context * self.kv_heads * bytes_per_token_head(self.kv_dtype, self.head_dim)


K = 1024


def sweep(quick: bool) -> list[Case]:
    """Context 4K -> 1M at batch 1; batch 1 -> 64 at 32K; each KV dtype; page sizes 16-256; contiguous."""
    if quick:
        return [Case(32 * K), Case(128 * K), Case(32 * K, kv_dtype="fp8"), Case(32 * K, kv_dtype="fp4"),
                Case(128 * K, page_size=0)]
    cases = [Case(c) for c in (4 * K, 32 * K, 128 * K, 1024 * K)]
    cases += [Case(32 * K, batch=b) for b in (8, 64)]
    cases += [Case(128 * K, page_size=ps) for ps in (16, 256)]
    cases += [Case(c, page_size=0) for c in (128 * K, 1024 * K)]
    for dt in ("fp8", "fp4"):
        cases += [Case(c, kv_dtype=dt) for c in (32 * K, 128 * K, 1024 * K)]
        cases += [Case(1024 * K, kv_dtype=dt, page_size=0)]
    return cases


def candidate_configs(quick: bool) -> list[Any]:
    """The v1 kernel's tuning space (runs 1-3)."""
    from floorline.kernels.decode_attention import DecodeConfig

    shapes = [(64, 4, 3), (64, 8, 3), (128, 8, 3), (32, 4, 4)] if not quick else [(64, 4, 3), (64, 8, 3)]
    if not quick:
        shapes += [(128, 4, 2), (128, 8, 4)]
    return [DecodeConfig(block_n=n, num_warps=w, num_stages=s, ctas_per_sm=c)
            for n, w, s in shapes for c in ((1, 2, 4, 8) if not quick else (4,))]


VARIANT_FAMILIES = ("v1", "v2", "v2-fp8mma", "v1-align", "v2-fp8mma-align", "v1-prefetch")


def family_configs(family: str, case: Case, quick: bool) -> list[Any]:
    """Tuning space per kernel family, so one run times the measured kernel (v1) and each new variant
    at its own best configuration. v2-fp8mma exists for fp8 caches only. Short graph-mode cases also
    try v2 with the fused combine and with longer splits (min_split_tokens).
    The -align families (session 2) are fp8 only: the alignment hint changes no bf16/fp4 load. The CTA
    count costs no compile, so graph cases (where the split count is most of the story) try more."""
    from floorline.kernels.decode_attention import DecodeConfig

    if family == "v1":
        cfgs = candidate_configs(quick)
        if case.graph and not quick:
            cfgs += [DecodeConfig(block_n=n, num_warps=w, num_stages=s, ctas_per_sm=c)
                     for n, w, s in ((64, 4, 3), (128, 8, 4), (64, 4, 4)) for c in (3, 6)]
        return cfgs
    if family == "v1-prefetch":  # bf16 only (the fp8 build spills on Triton 3.6); one stage: no cp.async
        if case.kv_dtype != "bf16":
            return []
        shapes = [(64, 4), (32, 4), (128, 8), (64, 8)] if not quick else [(64, 4)]
        ctas = (1, 2, 3, 4, 6) if case.graph else (1, 2, 4)
        return [DecodeConfig(block_n=n, num_warps=w, num_stages=1, ctas_per_sm=c, prefetch=True)
                for n, w in shapes for c in (ctas if not quick else (2,))]
    if family.endswith("-align"):
        if case.kv_dtype != "fp8":
            return []
        ctas = (1, 2, 3, 4) if not quick else (2,)
        if family == "v1-align":
            # register caps from the Triton 3.6 build (no spills): 64x4 at 128 -> 4 CTAs/SM, 128x4x2 at
            # 168 -> 3 CTAs/SM, 128x8 at 128 -> 2 CTAs/SM
            shapes = [(64, 4, 3, 0), (64, 4, 3, 128), (128, 4, 2, 0), (128, 4, 2, 168), (128, 8, 3, 128), (32, 4, 4, 0)]
            extra = {}
        else:  # v2-fp8mma-align: the 128-register cap lets two 8-warp programs share an SM (Triton 3.6: 152 regs)
            # (num_stages 3 and 4 compile to the same buffers here on Triton 3.6, so no 4-stage point)
            shapes = [(64, 4, 3, 0), (128, 8, 3, 0), (128, 8, 3, 128), (128, 4, 3, 0)]
            extra = {"variant": "v2", "fp8_mma": True}
        if quick:
            shapes = shapes[:2]
        return [DecodeConfig(block_n=n, num_warps=w, num_stages=s, ctas_per_sm=c, maxnreg=r, align_hint=True, **extra)
                for n, w, s, r in shapes for c in ctas]
    if family == "v2-fp8mma" and case.kv_dtype != "fp8":
        return []
    shapes = [(64, 4, 3), (128, 4, 3), (128, 8, 3)] if not quick else [(64, 4, 3), (128, 4, 3)]
    ctas = (1, 2, 4) if not quick else (2,)
    extra: dict[str, Any] = {"fp8_mma": True} if family == "v2-fp8mma" else {}
    cfgs = [DecodeConfig(block_n=n, num_warps=w, num_stages=s, ctas_per_sm=c, variant="v2", **extra)
            for n, w, s in shapes for c in ctas]
    if case.graph:
        cfgs += [DecodeConfig(block_n=n, num_warps=w, num_stages=s, ctas_per_sm=c, variant="v2", fuse_combine=True,
                              min_split_tokens=m, **extra)
                 for n, w, s in shapes[:2] for c in (1, 2) for m in (0, 1024)]
    return cfgs


@dataclass
class Inputs:
    q: Any
    sdpa_kv: list[tuple[Any, Any]]  # per rotation set: contiguous bf16 [B, Hkv, L, D]
    ours: list[Any]  # per set: KVCache
    page_table: Any
    seq_lens: Any
    fi_caches: list[tuple[Any, Any]]  # per set: FlashInfer paged caches (bf16 or fp8)
    fi_scale: float


def build_inputs(case: Case, gen: Any) -> Inputs:
    import torch

    from floorline.kernels.kv_cache import KVCache, allocate_kv_cache, kv_append

    b, hk, d, L = case.batch, case.kv_heads, case.head_dim, case.context
    n_sets = max(1, min(8, math.ceil(ROTATE_BYTES / case.kv_bytes()))) if case.graph else 1
    ps = case.page_size or L
    pages_per_seq = math.ceil(L / ps)
    perm = torch.randperm(b * pages_per_seq, generator=gen) if case.page_size else torch.arange(b)
    page_table = perm.view(b, pages_per_seq).to(torch.int32).cuda()
    q = torch.randn(b, 1, case.q_heads, d, device="cuda", dtype=torch.bfloat16)
    sdpa, ours, fi = [], [], []
    fi_scale = 1.0
    for _ in range(n_sets):
        k = torch.randn(b, hk, L, d, device="cuda", dtype=torch.bfloat16)
        v = torch.randn(b, hk, L, d, device="cuda", dtype=torch.bfloat16)
        sdpa.append((k, v))
        if case.kv_dtype == "bf16":
            if case.page_size == 0:
                cache = KVCache(k, v, "bf16", L, d)
            else:
                cache = allocate_kv_cache(b * pages_per_seq, hk, ps, d, "bf16", "cuda")
                _scatter_pages(k, cache.k, page_table, ps)
                _scatter_pages(v, cache.v, page_table, ps)
            fi.append((cache.k, cache.v))
        else:
            cache = allocate_kv_cache(b * pages_per_seq, hk, ps, d, case.kv_dtype, "cuda")
            seq = torch.arange(b, dtype=torch.int32, device="cuda").repeat_interleave(L)
            pos = torch.arange(L, dtype=torch.int32, device="cuda").repeat(b)
            for i in range(b):  # per sequence keeps the [tokens, Hkv, D] staging copy small
                sl = slice(i * L, (i + 1) * L)
                kv_append(cache, k[i].transpose(0, 1), v[i].transpose(0, 1), page_table, seq[sl], pos[sl])
            if case.kv_dtype == "fp8":  # FlashInfer's fp8 KV: one scale per tensor
                amax = max(k.abs().max().item(), v.abs().max().item())
                fi_scale = amax / 448.0
                kf = torch.empty((b * pages_per_seq, hk, ps, d), device="cuda", dtype=torch.bfloat16)
                vf = torch.empty_like(kf)
                _scatter_pages(k, kf, page_table, ps)
                _scatter_pages(v, vf, page_table, ps)
                fi.append(((kf / fi_scale).to(torch.float8_e4m3fn), (vf / fi_scale).to(torch.float8_e4m3fn)))
                del kf, vf
        ours.append(cache)
    seq_lens = torch.full((b,), L, dtype=torch.int32, device="cuda")
    return Inputs(q, sdpa, ours, page_table, seq_lens, fi, fi_scale)


def _scatter_pages(src: Any, pages: Any, page_table: Any, ps: int) -> None:
    """Contiguous [B, Hkv, L, D] -> pages [P, Hkv, ps, D] following page_table (L may leave a tail)."""
    b, hk, L, d = src.shape
    n = page_table.shape[1]
    for i in range(b):
        full = L // ps
        if full:
            blocks = src[i, :, : full * ps].reshape(hk, full, ps, d).transpose(0, 1)
            pages[page_table[i, :full].long()] = blocks
        if L % ps:
            pages[page_table[i, n - 1].long(), :, : L % ps] = src[i, :, full * ps:]


def _time(fn: Callable[[int], Any], graph: bool, quick: bool) -> Any:
    from floorline.gpu.timing import TimingConfig, time_cuda

    cfg = TimingConfig(warmup=5, iters=15 if quick else 40, graph=graph, ops_per_graph=10 if graph else 20)
    return time_cuda(fn, cfg)


def rel_l2(x: Any, ref: Any) -> float:
    x, ref = x.double().flatten(), ref.double().flatten()
    return float((x - ref).norm() / ref.norm().clamp_min(1e-30))


@dataclass
class CaseResult:
    case: Case
    ours: Any  # TimingResult
    config: Any
    rel_l2_vs_sdpa: float
    sdpa: Any
    flashinfer: Any  # TimingResult | None
    flashinfer_status: str
    flashinfer_reason: str | None
    flashinfer_rel_l2: float | None
    tune_rows: list[tuple[str, float]]
    families: dict[str, dict[str, Any]] = field(default_factory=dict)  # family -> {config, us, rel_l2}


def run_case(case: Case, quick: bool, gen: Any, fi_mod: Any, fi_reason: str | None,
             progress: Callable[[str], None], families: tuple[str, ...] = ("v1",)) -> CaseResult:
    import torch
    import torch.nn.functional as F

    from floorline.kernels.decode_attention import decode_attention, decode_workspace, split_plan
    from floorline.kernels.kv_cache import KERNEL_REL_L2, QUANT_REL_L2

    inp = build_inputs(case, gen)
    b, hq, d, L = case.batch, case.q_heads, case.head_dim, case.context
    sm = torch.cuda.get_device_properties(0).multi_processor_count
    n = len(inp.ours)
    out = torch.empty_like(inp.q)

    def ours_fn(cfg: Any) -> Callable[[int], Any]:
        splits, _ = split_plan(b, case.kv_heads, L, cfg, sm)
        ws = decode_workspace(b, 1, hq, d, splits, "cuda", fused=cfg.fuse_combine)
        return lambda i: decode_attention(inp.q, inp.ours[i % n], inp.page_table, inp.seq_lens, max_len=L,
                                          cfg=cfg, out=out, workspace=ws)

    q_sdpa = inp.q.transpose(1, 2)  # [B, Hq, 1, D]
    sdpa_out = torch.empty_like(q_sdpa)

    def sdpa_fn(i: int) -> Any:
        k, v = inp.sdpa_kv[i % n]
        sdpa_out.copy_(F.scaled_dot_product_attention(q_sdpa, k, v, enable_gqa=True))

    sdpa_fn(0)
    ref = sdpa_out[:, :, 0].clone()
    budget = KERNEL_REL_L2["bf16"] if case.kv_dtype == "bf16" else QUANT_REL_L2[case.kv_dtype]
    tune_rows = []
    fam_res: dict[str, dict[str, Any]] = {}
    best, ours_t = None, None
    for family in families:
        fbest, fbest_us = None, math.inf
        for cfg in family_configs(family, case, quick):
            try:
                fn = ours_fn(cfg)
                fn(0)
                torch.cuda.synchronize()
                cand_err = rel_l2(out[:, 0], ref)
                if not cand_err < budget:  # a configuration that computes the wrong thing never wins
                    tune_rows.append((f"{cfg} rejected: rel-L2 {cand_err:.3g} vs SDPA", math.nan))
                    continue
                # tuned in the case's own mode: eager timing of a 20-30 us call measures the host's
                # launch overhead (round 0: 100-230 us per 32K config), not the kernels
                r = _time(fn, case.graph, True)
            except Exception as e:  # noqa: BLE001 - a config that cannot compile (smem) is skipped, recorded
                tune_rows.append((f"{cfg} failed: {type(e).__name__}", math.nan))
                continue
            tune_rows.append((str(cfg), r.median))
            progress(f"{case.label()}: tune {family} {cfg.block_n}/{cfg.num_warps}/{cfg.num_stages}/{cfg.ctas_per_sm}"
                     f" {r.median:.1f} us")
            if r.median < fbest_us:
                fbest, fbest_us = cfg, r.median
        if fbest is None:
            fam_res[family] = {"error": "no configuration of this family ran (see tune)"}
            continue
        # each family's winner timed in the case's own mode (graph for short calls), same data; a
        # family that fails here is recorded and the others still make the packet
        try:
            ft = _time(ours_fn(fbest), case.graph, quick)
            ours_fn(fbest)(0)
            torch.cuda.synchronize()
        except Exception as e:  # noqa: BLE001
            fam_res[family] = {"config": asdict(fbest), "error": f"{type(e).__name__}: {str(e)[:300]}"}
            continue
        fam_res[family] = {"config": asdict(fbest), "us": ft.median, "rel_l2_vs_sdpa": rel_l2(out[:, 0], ref)}
        if ours_t is None or ft.median < ours_t.median:
            best, ours_t = fbest, ft
    if best is None:
        raise RuntimeError(f"{case.label()}: no decode configuration ran: {tune_rows}")

    sdpa_t = _time(sdpa_fn, case.graph, quick)
    ours_fn(best)(0)
    sdpa_fn(0)
    torch.cuda.synchronize()
    err = rel_l2(out[:, 0], sdpa_out[:, :, 0])

    fi_t, fi_status, fi_err = None, "skipped", None
    reason = fi_reason
    if fi_mod is not None and reason is None:
        try:
            fi_t, fi_err = _time_flashinfer(fi_mod, case, inp, sdpa_out[:, :, 0], quick)
            fi_status = "passed"
        except _Skip as e:
            fi_status, reason = "skipped", str(e)
        except Exception as e:  # noqa: BLE001 - the packet records exactly why the peer did not run
            fi_status, reason = "error", f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
    elif reason is None:
        reason = "flashinfer not importable"
    inp = None  # free this case's caches before the next case allocates
    torch.cuda.empty_cache()
    return CaseResult(case, ours_t, best, err, sdpa_t, fi_t, fi_status, reason, fi_err, tune_rows, fam_res)


def _time_flashinfer(fi: Any, case: Case, inp: Inputs, ref: Any, quick: bool) -> tuple[Any, float]:
    import torch

    if case.kv_dtype == "fp4":
        raise _Skip("FlashInfer 0.5.3 decode has no 4-bit KV cache format")
    b, L = case.batch, case.context
    scale = inp.fi_scale if case.kv_dtype == "fp8" else None
    n = len(inp.fi_caches)
    if case.page_size == 0:  # contiguous: FlashInfer's single-request decode over [Hkv, L, D]
        if b != 1:
            raise _Skip("FlashInfer has no contiguous batch decode; the paged case is the comparison")
        q1 = inp.q[0, 0].contiguous()
        o1 = torch.empty_like(q1)

        def single(i: int) -> Any:
            k, v = inp.fi_caches[i % n]
            o1.copy_(fi.single_decode_with_kv_cache(q1, k[0], v[0], kv_layout="HND", use_tensor_cores=True,
                                                    k_scale=scale, v_scale=scale))

        single(0)
        torch.cuda.synchronize()
        return _time(single, case.graph, quick), rel_l2(o1[None], ref)
    ps = case.page_size or L
    pages = inp.page_table.shape[1]
    indptr = torch.arange(0, (b + 1) * pages, pages, dtype=torch.int32, device="cuda")
    indices = inp.page_table.flatten().contiguous()
    last = torch.full((b,), L - (pages - 1) * ps, dtype=torch.int32, device="cuda")
    ws = torch.zeros(256 << 20, dtype=torch.uint8, device="cuda")  # FlashInfer wants it zeroed
    kw = dict(use_cuda_graph=True, use_tensor_cores=True, paged_kv_indptr_buffer=indptr.clone(),
              paged_kv_indices_buffer=indices.clone(), paged_kv_last_page_len_buffer=last.clone())
    w = fi.BatchDecodeWithPagedKVCacheWrapper(ws, "HND", **kw)
    kv_dt = torch.float8_e4m3fn if case.kv_dtype == "fp8" else torch.bfloat16
    w.plan(indptr, indices, last, case.q_heads, case.kv_heads, case.head_dim, ps, pos_encoding_mode="NONE",
           q_data_type=torch.bfloat16, kv_data_type=kv_dt)
    q = inp.q[:, 0].contiguous()
    out = torch.empty_like(q)

    def fn(i: int) -> Any:
        if scale is None:
            w.run(q, inp.fi_caches[i % n], out=out)
        else:
            w.run(q, inp.fi_caches[i % n], out=out, k_scale=scale, v_scale=scale)

    fn(0)
    torch.cuda.synchronize()
    err = rel_l2(out, ref)
    return _time(fn, case.graph, quick), err


class _Skip(Exception):
    pass


def load_flashinfer() -> tuple[Any, str | None, str | None]:
    """(module, version, reason it cannot run)."""
    try:
        import flashinfer
    except Exception as e:  # noqa: BLE001
        return None, None, f"import flashinfer failed: {type(e).__name__}: {e}"
    return flashinfer, getattr(flashinfer, "__version__", None), None


def write_case_packet(res: CaseResult, ceiling_tbps: float, fi_version: str | None, out_dir: Path,
                      command: list[str] | None = None) -> Path:
    import torch

    from floorline.evidence.schema import Baseline, Correctness, Floor
    from floorline.evidence.store import new_packet, write_packet
    from floorline.kernels.kv_cache import KERNEL_REL_L2, QUANT_REL_L2

    c = res.case
    us = res.ours.median
    nbytes = c.kv_bytes()
    floor_us = nbytes / (ceiling_tbps * 1e12) * 1e6
    budget = KERNEL_REL_L2["bf16"] if c.kv_dtype == "bf16" else QUANT_REL_L2[c.kv_dtype]
    ok = res.rel_l2_vs_sdpa < budget
    bf16_bytes = 2.0 * c.batch * c.context * c.kv_heads * 2 * c.head_dim
    baselines = [Baseline(name="torch_sdpa", version=torch.__version__, timing=res.sdpa.to_model(),
                          ratio=res.sdpa.median / us,
                          config={"kv": "bf16 contiguous [B, Hkv, L, D]", "enable_gqa": True,
                                  "tbps": bf16_bytes / res.sdpa.median / 1e6})]
    fi_cfg = {"layout": "HND", "use_tensor_cores": True,
              "api": "single_decode_with_kv_cache (contiguous)" if c.page_size == 0 else "BatchDecodeWithPagedKVCacheWrapper",
              "page_size": c.page_size,
              "kv": "fp8 e4m3, one scale per tensor" if c.kv_dtype == "fp8" else "bf16"}
    if res.flashinfer is not None:
        fi_bytes = bf16_bytes / (2 if c.kv_dtype == "fp8" else 1)
        fi_cfg.update(rel_l2_vs_sdpa=res.flashinfer_rel_l2, tbps=fi_bytes / res.flashinfer.median / 1e6)
        baselines.append(Baseline(name="flashinfer", version=fi_version, timing=res.flashinfer.to_model(),
                                  ratio=res.flashinfer.median / us, config=fi_cfg))
    else:
        baselines.append(Baseline(name="flashinfer", version=fi_version, status=res.flashinfer_status,
                                  reason=res.flashinfer_reason, config=fi_cfg))
    packet = new_packet(
        "bench.attention", status="passed" if ok else "failed", failure_class=None if ok else "accuracy",
        command=command,
        params={"context": c.context, "batch": c.batch, "kv_dtype": c.kv_dtype, "page_size": c.page_size,
                "q_heads": c.q_heads, "kv_heads": c.kv_heads, "head_dim": c.head_dim,
                "mode": "cuda_graph" if c.graph else "eager", "pages": "shuffled" if c.page_size else "contiguous",
                "bytes": nbytes, "tbps": nbytes / us / 1e6, "ceiling_tbps": ceiling_tbps,
                "us_per_kv_head": us / (c.batch * c.kv_heads), "config": asdict(res.config),
                "variant": res.config.variant, "variants": res.families,
                "family": next((f for f, r in res.families.items() if r.get("config") == asdict(res.config)), "v1"),
                "tune": [{"config": k, "us": v if math.isfinite(v) else None} for k, v in res.tune_rows]},
        correctness=Correctness(
            reference="torch SDPA over the unquantized bf16 K/V (same data)", metric="rel_l2",
            value=res.rel_l2_vs_sdpa, tolerance=budget, passed=ok),
        timing=res.ours.to_model(), baselines=baselines,
        floor=Floor(model="KV bytes read (scales included) / same-run HBM read ceiling", bytes=nbytes,
                    ceiling=ceiling_tbps, ceiling_unit="TB/s", value=floor_us, fraction=floor_us / us),
    )
    name = f"bench-attention-{c.kv_dtype}-b{c.batch}-ctx{c.context}-ps{c.page_size}"
    return write_packet(packet, out_dir, name)


def run(quick: bool, out_dir: Path, progress: Callable[[str], None] = lambda m: None,
        cases: list[Case] | None = None, ceiling: Any = None, families: tuple[str, ...] = ("v1",)) -> dict[str, Any]:
    """The whole benchmark: ceiling, accuracy report, every case. Returns rows + packet paths.
    families: kernel families to tune and time per case (VARIANT_FAMILIES); the packet's timing is
    the fastest family's, params.variants holds each family's best config and time."""
    import torch

    from floorline.bench.accuracy import accuracy_report, write_accuracy_packet
    from floorline.bench.hbm import read_ceiling

    if not torch.cuda.is_available():
        raise InputError("device: bench attention needs a CUDA GPU and this machine has none")
    if ceiling is None:
        progress("measuring the HBM read ceiling")
        ceiling = read_ceiling(quick=quick, progress=progress)
    acc = accuracy_report("cuda", quick=quick)
    paths = [write_accuracy_packet(acc, out_dir)]
    fi, fi_version, fi_reason = load_flashinfer()
    gen = torch.Generator().manual_seed(2026)
    rows = []
    for case in cases or sweep(quick):
        progress(case.label())
        try:
            res = run_case(case, quick, gen, fi, fi_reason, progress, families)
        except Exception as e:  # noqa: BLE001 - one broken case is recorded as an error packet, the rest still run
            paths.append(write_error_packet(case, e, out_dir))
            rows.append({"case": case.label(), "error": f"{type(e).__name__}: {e}"[:300]})
            torch.cuda.empty_cache()
            continue
        p = write_case_packet(res, ceiling.tbps, fi_version, out_dir)
        paths.append(p)
        rows.append(summary_row(res, ceiling.tbps, p))
    return {"ceiling_tbps": ceiling.tbps, "ceiling_config": ceiling.config.label(), "accuracy": acc,
            "cases": rows, "packets": [str(p) for p in paths]}


def write_error_packet(case: Case, err: Exception, out_dir: Path) -> Path:
    from floorline.evidence.store import new_packet, write_packet

    packet = new_packet("bench.attention", status="error", failure_class=type(err).__name__,
                        params={"context": case.context, "batch": case.batch, "kv_dtype": case.kv_dtype,
                                "page_size": case.page_size, "q_heads": case.q_heads, "kv_heads": case.kv_heads,
                                "head_dim": case.head_dim},
                        notes=[f"{type(err).__name__}: {str(err)[:500]}"])
    name = f"bench-attention-{case.kv_dtype}-b{case.batch}-ctx{case.context}-ps{case.page_size}"
    return write_packet(packet, out_dir, name)


def summary_row(res: CaseResult, ceiling: float, path: Path) -> dict[str, Any]:
    c, us = res.case, res.ours.median
    floor_us = c.kv_bytes() / (ceiling * 1e12) * 1e6
    return {"case": c.label(), "mode": "graph" if c.graph else "eager", "us": us,
            "tbps": c.kv_bytes() / us / 1e6, "of_ceiling": floor_us / us,
            "us_per_kv_head": us / (c.batch * c.kv_heads), "sdpa_us": res.sdpa.median,
            "vs_sdpa": res.sdpa.median / us,
            "flashinfer_us": res.flashinfer.median if res.flashinfer else None,
            "vs_flashinfer": res.flashinfer.median / us if res.flashinfer else None,
            "flashinfer": res.flashinfer_status if res.flashinfer is None else "ok",
            "flashinfer_reason": res.flashinfer_reason,
            "rel_l2": res.rel_l2_vs_sdpa, "packet": str(path), "variant": res.config.variant,
            "variants": {k: v.get("us") for k, v in res.families.items()}}
