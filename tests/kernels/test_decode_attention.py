"""decode_attention vs a float64 reference: fresh random inputs, shuffled pages, odd lengths,
poisoned outputs, GQA groups 1..16, head_dim 64/128/256, 1..8 query tokens, windows, length 0/1.
Every case runs for each kernel variant (v1 as measured; v2 swapped operands; v2 with the fused
combine; v2 on FP8 tensor cores for fp8 caches)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from floorline.errors import InputError
from floorline.kernels.decode_attention import DecodeConfig, decode_attention
from floorline.kernels.kv_cache import KERNEL_REL_L2, allocate_kv_cache, kv_append
from tests.kernels.reference_attention import decode_reference

VARIANTS = {
    "v1": {},
    "v2": {"variant": "v2"},
    "v2-fused": {"variant": "v2", "fuse_combine": True},
    "v2-fp8mma": {"variant": "v2", "fp8_mma": True, "fuse_combine": True},
    # session 2: the alignment hint (and a register cap) change code generation only, never results
    "v1-align": {"align_hint": True},
    "v2-fp8mma-align": {"variant": "v2", "fp8_mma": True, "align_hint": True, "maxnreg": 128},
    # register prefetch of the next block (bf16 in the bench; fp8 kept correct and tested too)
    "v1-prefetch": {"prefetch": True},
}
ALIGN_ONLY_FP8 = ("v1-align", "v2-fp8mma-align")  # the hint changes no bf16/fp4 load (their strides are 16-aligned)


def variants_for(kv_dtype: str) -> list[str]:
    """fp8_mma changes nothing for bf16/fp4 caches, so it runs on fp8 only; the fused combine does not
    depend on the dtype, and fp4 is the slowest to interpret, so fp4 runs v1 and v2 only."""
    if kv_dtype == "fp4":
        return ["v1", "v2"]
    if kv_dtype == "fp8":
        return list(VARIANTS)
    return [v for v in VARIANTS if v != "v2-fp8mma" and v not in ALIGN_ONLY_FP8]  # bf16: v1-prefetch included


def dtype_variants(dtypes=("bf16", "fp8", "fp4")) -> list[tuple[str, str]]:
    return [(dt, v) for dt in dtypes for v in variants_for(dt)]


def with_variant(cfg: DecodeConfig, variant: str) -> DecodeConfig:
    name, extra = (variant[0], {"maxnreg": variant[1]}) if isinstance(variant, tuple) else (variant, {})
    fields = {**VARIANTS[name], **extra}
    if fields.get("fp8_mma"):  # an FP8 wgmma reduces over >= 32 tokens (P x V^T): small-block cases grow to 32
        fields["block_n"] = max(cfg.block_n, 32)
    return replace(cfg, **fields)


def with_cap(variant: str, cap: int) -> tuple[str, int]:
    return (variant, cap)


def rel_l2(x: torch.Tensor, ref: torch.Tensor) -> float:
    x, ref = x.double().cpu(), ref.double().cpu()
    den = ref.norm().item()
    return (x - ref).norm().item() / den if den > 0 else (x - ref).norm().item()


def build(lengths, hq, hk, d, kv_dtype, page_size, device, gen, *, rotate=False, tokens=1, mag=1.0):
    """A cache filled through kv_append with shuffled pages, and a query batch."""
    n_pages = [max(1, -(-n // page_size)) for n in lengths]
    total = sum(n_pages) + 3  # spare pages nobody owns
    perm = torch.randperm(total, generator=gen).to(torch.int32)
    pt = torch.zeros(len(lengths), max(n_pages), dtype=torch.int32)
    at = 0
    for i, n in enumerate(n_pages):
        pt[i, :n] = perm[at:at + n]
        at += n
    cache = allocate_kv_cache(total, hk, page_size, d, kv_dtype, device, rotate=rotate)
    # poison every page first: a read of a slot the sequence does not own shows up as NaN/garbage
    for x in (cache.k, cache.v):
        x.view(torch.uint8).fill_(0x7F)
    seq_ids = torch.cat([torch.full((n,), i, dtype=torch.int32) for i, n in enumerate(lengths)])
    pos = torch.cat([torch.arange(n, dtype=torch.int32) for n in lengths])
    ntok = int(sum(lengths))
    k = (torch.randn(ntok, hk, d, generator=gen) * mag).to(torch.bfloat16)
    v = torch.randn(ntok, hk, d, generator=gen).to(torch.bfloat16)
    pt_d = pt.to(device)
    kv_append(cache, k.to(device), v.to(device), pt_d, seq_ids.to(device), pos.to(device))
    q = (torch.randn(len(lengths), tokens, hq, d, generator=gen) * mag).to(torch.bfloat16).to(device)
    return cache, q, pt_d, torch.tensor(lengths, dtype=torch.int32, device=device)


def run_case(device, lengths, hq, hk, d, kv_dtype="bf16", page_size=16, tokens=1, window=0, seed=0,
             cfg=DecodeConfig(block_n=16, num_warps=4, num_stages=1), rotate=False, mag=1.0, variant="v1"):
    cfg = with_variant(cfg, variant)
    gen = torch.Generator().manual_seed(seed + 1000 * hq + 17 * d + sum(lengths))
    cache, q, pt, lens = build(lengths, hq, hk, d, kv_dtype, page_size, device, gen, rotate=rotate,
                               tokens=tokens, mag=mag)
    out = torch.full_like(q, float("nan"))  # poisoned: every element must be written
    decode_attention(q, cache, pt, lens, max_len=max(max(lengths), 1), window=window, cfg=cfg, out=out)
    ref = decode_reference(q, cache, pt, lens, d**-0.5, window)
    assert torch.isfinite(out).all(), "NaN/inf in the output"
    err = rel_l2(out, ref)
    assert err < KERNEL_REL_L2[kv_dtype], f"rel-L2 {err:.3g} over budget {KERNEL_REL_L2[kv_dtype]}"
    return out


@pytest.mark.parametrize("kv_dtype,variant", dtype_variants())
def test_dtypes_batch_of_lengths(device, kv_dtype, variant):
    run_case(device, [1, 7, 45], hq=8, hk=2, d=64, kv_dtype=kv_dtype, variant=variant)


@pytest.mark.parametrize("variant", variants_for("bf16"))
@pytest.mark.parametrize("group", [1, 3, 16])
def test_gqa_groups(device, group, variant):
    run_case(device, [33, 5], hq=2 * group, hk=2, d=64, variant=variant)


@pytest.mark.parametrize("group", [1, 16])
def test_gqa_groups_fp8_tensor_cores(device, group):
    run_case(device, [33, 5], hq=2 * group, hk=2, d=64, kv_dtype="fp8", variant="v2-fp8mma")


@pytest.mark.parametrize("kv_dtype,variant", dtype_variants(("bf16", "fp8")))
@pytest.mark.parametrize("d", [128, 256])
def test_head_dims(device, d, kv_dtype, variant):
    run_case(device, [19], hq=4, hk=1, d=d, kv_dtype=kv_dtype, variant=variant)


@pytest.mark.parametrize("variant", variants_for("fp4"))
def test_fp4_head_dim_128_rotated(device, variant):
    run_case(device, [23, 9], hq=4, hk=2, d=128, kv_dtype="fp4", rotate=True, variant=variant)


@pytest.mark.parametrize("variant", variants_for("fp4"))
def test_fp4_blocks_with_far_apart_scales(device, variant):
    """Blocks of every key and value 2**16 apart: v2 scales each block relative to the token's largest
    in fp16, so the small blocks must survive the trip. (Scaled down, not up: v1 dequantizes to fp16
    absolute values, so magnitudes above 65504 overflow there; noted in docs/notes/attention.md.)"""
    gen = torch.Generator().manual_seed(11)
    lengths, hq, hk, d = [37, 4], 4, 2, 64
    cache, q, pt, lens = build(lengths, hq, hk, d, "fp4", 16, device, gen)
    n = sum(lengths)
    k = torch.randn(n, hk, d, generator=gen)
    v = torch.randn(n, hk, d, generator=gen)
    k[..., 32:] *= 2.0**-16
    v[..., :32] *= 2.0**-16
    seq_ids = torch.cat([torch.full((m,), i, dtype=torch.int32) for i, m in enumerate(lengths)]).to(device)
    pos = torch.cat([torch.arange(m, dtype=torch.int32) for m in lengths]).to(device)
    kv_append(cache, k.to(device), v.to(device), pt, seq_ids, pos)
    cfg = with_variant(DecodeConfig(block_n=16, num_warps=4, num_stages=1), variant)
    out = torch.full_like(q, float("nan"))
    decode_attention(q, cache, pt, lens, max_len=37, cfg=cfg, out=out)
    ref = decode_reference(q, cache, pt, lens, d**-0.5)
    assert torch.isfinite(out).all()
    # the small blocks of V carry the output's channels 0..31: compare them on their own too
    assert rel_l2(out, ref) < KERNEL_REL_L2["fp4"]
    assert rel_l2(out[..., :32], ref[..., :32]) < KERNEL_REL_L2["fp4"]


@pytest.mark.parametrize("kv_dtype,variant", [("bf16", v) for v in variants_for("bf16")] + [("fp8", "v2-fp8mma")])
@pytest.mark.parametrize("tokens", [2, 8])
def test_speculative_query_tokens(device, tokens, kv_dtype, variant):
    run_case(device, [tokens, 21], hq=4, hk=2, d=64, tokens=tokens, kv_dtype=kv_dtype, variant=variant)


@pytest.mark.parametrize("kv_dtype,variant", [("bf16", v) for v in variants_for("bf16")] + [("fp8", "v2-fp8mma")])
def test_sliding_window(device, kv_dtype, variant):
    run_case(device, [50, 7], hq=4, hk=1, d=64, window=9, tokens=2, kv_dtype=kv_dtype, variant=variant)


@pytest.mark.parametrize("kv_dtype,variant", dtype_variants())
def test_many_splits_and_page_sizes(device, kv_dtype, variant):
    """Pages larger than the block (one page-table read per block) and smaller (one per token)."""
    cfg = DecodeConfig(block_n=16, num_warps=4, num_stages=1, num_splits=5)
    run_case(device, [77, 1], hq=4, hk=2, d=64, page_size=32, cfg=cfg, kv_dtype=kv_dtype, variant=variant)
    run_case(device, [40], hq=4, hk=2, d=64, page_size=8, cfg=cfg, kv_dtype=kv_dtype, variant=variant)


@pytest.mark.parametrize("kv_dtype,variant", dtype_variants())
def test_length_zero_and_one_are_finite(device, kv_dtype, variant):
    out = run_case(device, [0, 1], hq=4, hk=2, d=64, kv_dtype=kv_dtype, variant=variant)
    assert out[0].abs().max().item() == 0.0  # nothing to attend to: zero, not NaN


@pytest.mark.parametrize("kv_dtype,variant", dtype_variants(("bf16", "fp8")))
def test_large_logits(device, kv_dtype, variant):
    # scores of order 1e4: a naive exp overflows, the online softmax must not
    run_case(device, [29, 3], hq=4, hk=2, d=64, mag=12.0, kv_dtype=kv_dtype, variant=variant)


@pytest.mark.parametrize("kv_dtype,variant", [("bf16", v) for v in variants_for("bf16")] + [("fp8", "v2-fp8mma")])
def test_graph_max_len_serves_shorter(device, kv_dtype, variant):
    """Launch fixed at max_len; shorter device-side lengths still give the right answer. With the
    fused combine the same workspace serves two calls: the ticket counters must be back at 0."""
    from floorline.kernels.decode_attention import decode_workspace, split_plan

    gen = torch.Generator().manual_seed(5)
    cache, q, pt, lens = build([40, 11], 4, 2, 64, kv_dtype, 16, device, gen)
    cfg = with_variant(DecodeConfig(block_n=16, num_warps=4, num_stages=1, num_splits=3), variant)
    splits, _ = split_plan(2, 2, 64, cfg, 4)
    ws = decode_workspace(2, 1, 4, 64, splits, device, fused=cfg.fuse_combine)
    for lengths in ([40, 11], [17, 1]):
        lens = torch.tensor(lengths, dtype=torch.int32, device=device)
        out = torch.full_like(q, float("nan"))
        decode_attention(q, cache, pt, lens, max_len=64, cfg=cfg, out=out, workspace=ws)
        ref = decode_reference(q, cache, pt, lens, 64**-0.5)
        assert torch.isfinite(out).all()
        assert rel_l2(out, ref) < KERNEL_REL_L2[kv_dtype]
        if cfg.fuse_combine:
            assert int(ws[2].abs().sum()) == 0, "ticket counters not reset"


@pytest.mark.parametrize("kv_dtype,variant", [("bf16", "v2-fused"), ("fp8", "v2-fp8mma")])
def test_fused_combine_many_splits(device, kv_dtype, variant):
    """21 splits: the fused combine's [rows, splits, D-chunk] tiles take several D-chunks, and
    splits past a short sequence's end carry lse = -inf."""
    cfg = DecodeConfig(block_n=16, num_warps=4, num_stages=1, num_splits=21)
    run_case(device, [333, 2], hq=4, hk=2, d=64, cfg=cfg, kv_dtype=kv_dtype, variant=variant)


def test_min_split_tokens_caps_splits():
    from floorline.kernels.decode_attention import split_plan

    many = split_plan(1, 4, 32768, DecodeConfig(block_n=128, ctas_per_sm=4), 132)[0]
    few = split_plan(1, 4, 32768, DecodeConfig(block_n=128, ctas_per_sm=4, min_split_tokens=1024), 132)[0]
    assert many == 128 and few == 32  # 256- vs 1024-token splits


def test_config_rejects_unknown_variants():
    with pytest.raises(InputError, match="variant"):
        DecodeConfig(variant="v9")
    with pytest.raises(InputError, match="fuse_combine"):
        DecodeConfig(fuse_combine=True)
    with pytest.raises(InputError, match="fp8_mma"):
        DecodeConfig(fp8_mma=True)
    with pytest.raises(InputError, match="block_n"):
        DecodeConfig(variant="v2", fp8_mma=True, block_n=16)
    with pytest.raises(InputError, match="maxnreg"):
        DecodeConfig(maxnreg=300)
    with pytest.raises(InputError, match="prefetch"):
        DecodeConfig(variant="v2", prefetch=True)


def test_bad_shapes_are_input_errors(device):
    gen = torch.Generator().manual_seed(1)
    cache, q, pt, lens = build([4], 4, 2, 64, "bf16", 16, device, gen)
    with pytest.raises(InputError, match="q_heads"):
        decode_attention(q[:, :, :3], cache, pt, lens, max_len=4)
    with pytest.raises(InputError, match="seq_lens"):
        decode_attention(q, cache, pt, lens.long(), max_len=4)
    with pytest.raises(InputError, match="window"):
        decode_attention(q, cache, pt, lens, max_len=4, window=-1)


@pytest.mark.gpu
@pytest.mark.xdist_group("host-memory")  # each case holds ~2 GB of float64 reference on the host: one xdist worker
@pytest.mark.parametrize("kv_dtype,variant", [x for x in dtype_variants() if x != ("fp8", "v1-prefetch")])
def test_gpu_odd_long_sequence(kv_dtype, variant):
    """1,000,003 tokens (not a multiple of any page or block) plus lengths 1 and 7, default launch shape."""
    lengths = [1_000_003, 1, 7]
    gen = torch.Generator().manual_seed(7)
    cache, q, pt, lens = build(lengths, 16, 1, 128, kv_dtype, 64, "cuda", gen)
    out = torch.full_like(q, float("nan"))
    cfg = with_variant(DecodeConfig(), variant)
    decode_attention(q, cache, pt, lens, max_len=max(lengths), out=out, cfg=cfg)
    ref = decode_reference(q.cpu(), cache, pt, lens, 128**-0.5)
    assert torch.isfinite(out).all()
    assert rel_l2(out, ref) < KERNEL_REL_L2[kv_dtype]


@pytest.mark.gpu
def test_gpu_default_configs_all_shapes():
    """The compiled (non-interpreter) kernel at every head_dim and group size, and every KV dtype."""
    for d in (64, 128, 256):
        for group in (1, 8, 16):
            for kv_dtype in ("bf16", "fp8", "fp4") if d == 128 else ("bf16",):
                run_case("cuda", [3000, 1, 7], hq=2 * group, hk=2, d=d, page_size=64, cfg=DecodeConfig(),
                         kv_dtype=kv_dtype)


def v2_sweep(variant: str) -> list[tuple[str, int, int, DecodeConfig]]:
    """(kv_dtype, head_dim, group, config) of the v2 build sweep: the head_dims, group sizes and block
    shapes that change the layouts of the builds the bench tunes (page 64)."""
    dtypes = ("fp8",) if variant == "v2-fp8mma" else ("bf16", "fp8", "fp4")
    builds = []
    for kv_dtype in dtypes:
        for d in (64, 128, 256) if kv_dtype != "fp4" else (128,):
            for group in (1, 16):
                for n, w in ((64, 4), (128, 8)):
                    # bf16 v2 at d=256, 128 tokens needs 274 KB of shared memory at 2 stages (sm_90 has
                    # 227; Triton 3.6 on nvidia-h200), so that one build runs unpipelined
                    stages = 3 if d * n <= 16384 else 1 if kv_dtype == "bf16" else 2
                    builds.append((kv_dtype, d, group, DecodeConfig(block_n=n, num_warps=w, num_stages=stages)))
    return builds


# (d, group, block, warps, stages, register cap) of the fp8 -align builds: the bench's shape (d=128, group
# 16) with every block shape the bench tunes; the other head_dims / group 1 with one shape each
ALIGN_BUILDS = [(128, 16, 64, 4, 3, 0), (128, 16, 64, 4, 3, 128), (128, 16, 128, 8, 3, 128), (128, 16, 128, 4, 2, 168),
                (128, 16, 128, 4, 3, 0), (128, 1, 64, 4, 3, 0), (64, 16, 64, 4, 3, 0), (256, 16, 64, 4, 3, 0)]
# (d, group, block, warps) of the bf16 register-prefetch builds (one stage)
PREFETCH_BUILDS = [(128, 16, 64, 4), (128, 16, 32, 4), (128, 16, 128, 8), (128, 16, 64, 8), (128, 1, 64, 4),
                   (256, 16, 32, 4)]
# every sweep also runs one page-16 case at d=128, group 8: (kv_dtype per family, config)
PAGE16_CFG = {"v2": DecodeConfig(block_n=64, num_warps=4, num_stages=3),
              "prefetch": DecodeConfig(block_n=64, num_warps=4, num_stages=1)}


def gpu_builds() -> list[tuple[str, int, int, int, DecodeConfig]]:
    """(kv_dtype, head_dim, group, page_size, config as launched) of every build the GPU build sweeps
    compile: scripts/check_sm90_builds.py compiles them for sm_90 without a GPU."""
    out = []
    for variant in ("v2", "v2-fused", "v2-fp8mma"):
        sweep = v2_sweep(variant)
        out += [(dt, d, g, 64, with_variant(cfg, variant)) for dt, d, g, cfg in sweep]
        out.append((sweep[0][0], 128, 8, 16, with_variant(PAGE16_CFG["v2"], variant)))
    for variant in ("v1-align", "v2-fp8mma-align"):
        out += [("fp8", d, g, 64, with_variant(DecodeConfig(block_n=n, num_warps=w, num_stages=st, maxnreg=cap),
                                                with_cap(variant, cap))) for d, g, n, w, st, cap in ALIGN_BUILDS]
        out.append(("fp8", 128, 8, 16, with_variant(PAGE16_CFG["v2"], variant)))
    out += [("bf16", d, g, 64, with_variant(DecodeConfig(block_n=n, num_warps=w, num_stages=1), "v1-prefetch"))
            for d, g, n, w in PREFETCH_BUILDS]
    out.append(("bf16", 128, 8, 16, with_variant(PAGE16_CFG["prefetch"], "v1-prefetch")))
    return out


@pytest.mark.gpu
@pytest.mark.parametrize("variant", ["v2", "v2-fused", "v2-fp8mma"])
def test_gpu_v2_builds_all_shapes(variant):
    """The v2 builds the bench tunes over (wgmma / FP8 tensor-core code the interpreter never runs),
    at the head_dims, group sizes, block shapes and page sizes that change their layouts."""
    sweep = v2_sweep(variant)
    failures = []  # every build is tried, so one run names all the shapes that fail, with the reason
    for kv_dtype, d, group, cfg in sweep:
        try:
            run_case("cuda", [3001, 1, 7], hq=2 * group, hk=2, d=d, page_size=64, cfg=cfg,
                     kv_dtype=kv_dtype, variant=variant)
        except Exception as e:  # noqa: BLE001 - collected and reported below
            failures.append(f"{kv_dtype} d={d} group={group} block={cfg.block_n} warps={cfg.num_warps} "
                            f"stages={cfg.num_stages}: {type(e).__name__}: {str(e)[:300]}")
    assert not failures, "\n".join(failures)
    run_case("cuda", [999, 5], hq=16, hk=2, d=128, page_size=16, kv_dtype=sweep[0][0], variant=variant,
             cfg=PAGE16_CFG["v2"])


@pytest.mark.gpu
@pytest.mark.parametrize("variant", ["v1-align", "v2-fp8mma-align"])
def test_gpu_align_builds_all_shapes(variant):
    """The fp8 builds with the alignment hint (16-byte cp.async of V^T on Triton 3.6) at every head_dim,
    group size and block shape the bench tunes, with and without the 128-register cap; page 16 (no hint
    applies) and page 64 with a partial last block (the masked, peeled block of the FP8 MMA path)."""
    for d, group, n, w, s, cap in ALIGN_BUILDS:
        cfg = DecodeConfig(block_n=n, num_warps=w, num_stages=s, maxnreg=cap)
        run_case("cuda", [3001, 1, 7], hq=2 * group, hk=2, d=d, page_size=64, cfg=cfg, kv_dtype="fp8",
                 variant=with_cap(variant, cap))
    run_case("cuda", [999, 5], hq=16, hk=2, d=128, page_size=16, kv_dtype="fp8", variant=variant,
             cfg=PAGE16_CFG["v2"])


@pytest.mark.gpu
def test_gpu_prefetch_builds_all_shapes():
    """The bf16 register-prefetch builds the bench tunes (block x warps, one stage), other head_dims and
    group 1, a partial last block, and page 16 (prefetch does not apply: the pipelined loop runs)."""
    for d, group, n, w in PREFETCH_BUILDS:
        run_case("cuda", [3001, 1, 7], hq=2 * group, hk=2, d=d, page_size=64, variant="v1-prefetch",
                 cfg=DecodeConfig(block_n=n, num_warps=w, num_stages=1))
    run_case("cuda", [999, 5], hq=16, hk=2, d=128, page_size=16, variant="v1-prefetch", cfg=PAGE16_CFG["prefetch"])


@pytest.mark.gpu
@pytest.mark.parametrize("kv_dtype,variant", [("bf16", "v1"), ("fp8", "v1"), ("bf16", "v2-fused"), ("bf16", "v1-prefetch"),
                                              ("fp8", "v2-fp8mma"), ("fp8", "v1-align"), ("fp8", "v2-fp8mma-align")])
def test_gpu_cuda_graph_replay_follows_lengths(kv_dtype, variant):
    """Captured once at max_len, replayed after the device-side lengths change (the fused combine's
    ticket counters must come back to 0 on their own between replays)."""
    from floorline.kernels.decode_attention import decode_workspace, split_plan

    gen = torch.Generator().manual_seed(3)
    cache, q, pt, lens = build([4000, 900], 16, 1, 128, kv_dtype, 64, "cuda", gen)
    out = torch.full_like(q, float("nan"))
    short = torch.tensor([1500, 1], dtype=torch.int32, device="cuda")
    live = lens.clone()
    cfg = with_variant(DecodeConfig(), variant)
    splits, _ = split_plan(2, 1, 4096, cfg, torch.cuda.get_device_properties(0).multi_processor_count)
    ws = decode_workspace(2, 1, 16, 128, splits, "cuda", fused=cfg.fuse_combine)
    decode_attention(q, cache, pt, live, max_len=4096, out=out, cfg=cfg, workspace=ws)  # compile outside
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        decode_attention(q, cache, pt, live, max_len=4096, out=out, cfg=cfg, workspace=ws)
    for lengths in (lens, short):
        live.copy_(lengths)
        out.fill_(float("nan"))
        graph.replay()
        torch.cuda.synchronize()
        ref = decode_reference(q, cache, pt, live, 128**-0.5)
        assert torch.isfinite(out).all()
        assert rel_l2(out, ref) < KERNEL_REL_L2[kv_dtype]
