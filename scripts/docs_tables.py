"""Regenerate the measured tables of docs/attention.md, docs/allreduce.md and docs/model.md from results/.

Each table sits in a <!-- NAME:start --> ... <!-- NAME:end --> block; `--check` exits 1 if any doc
would change (tests/test_docs_tables.py runs it), like scripts/update_readme_table.py for the README.
"""

import re
import sys
from pathlib import Path

from floorline.evidence.doctables import Case, load_cases, num, pct, peer, replace_block, table, targets_table
from floorline.evidence.targets import load_targets

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
H200, X2 = "nvidia-h200", "nvidia-h200-x2"


def size(n: int) -> str:
    for unit, div in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= div:
            return f"{n // div} {unit}"
    return f"{n} B"


def tokens(n: int) -> str:
    return f"{n >> 20}M" if n >= 1 << 20 else f"{n >> 10}K"


def targets(issue: int) -> str:
    return targets_table([t for t in load_targets(ROOT / "docs" / "targets.toml") if t.issue == issue], RESULTS)


# docs/attention.md

ORDER = {"bf16": 0, "fp8": 1, "fp4": 2}  # KV dtypes, in the order the doc discusses them

def attention_cases() -> str:
    cases = load_cases(RESULTS, "bench.attention", H200)
    cases.sort(key=lambda c: (ORDER[c.params["kv_dtype"]], c.params["batch"], c.params["context"],
                              c.params["page_size"] == 0, c.params["page_size"]))
    return table(cases, [
        ("KV", lambda c: c.params["kv_dtype"]),
        ("batch x context", lambda c: f"{c.params['batch']} x {tokens(c.params['context'])}"),
        ("pages", lambda c: str(c.params["page_size"]) if c.params["page_size"] else "contiguous"),
        ("timed", lambda c: "graph" if c.params["mode"] == "cuda_graph" else "events"),
        ("build", lambda c: c.params.get("family", "-")),
        ("us", lambda c: num(c.packet.timing.median)),
        ("us / KV head", lambda c: num(c.params["us_per_kv_head"])),
        ("TB/s", lambda c: num(c.params["tbps"], 2)),
        ("of ceiling", lambda c: pct(c.packet.floor.fraction)),
        ("same-run ceiling TB/s", lambda c: num(c.packet.floor.ceiling, 3)),
        ("torch SDPA bf16 (peer/ours)", peer("torch_sdpa")),
        ("FlashInfer (peer/ours)", peer("flashinfer")),
        ("rel-L2 vs SDPA", lambda c: f"{c.packet.correctness.value:.2g}"),
    ])


def attention_variants() -> str:
    cases = [c for c in load_cases(RESULTS, "bench.attention", H200) if c.params.get("variants")]
    cases.sort(key=lambda c: (ORDER[c.params["kv_dtype"]], c.params["batch"], c.params["context"],
                              c.params["page_size"]))
    rows = [Case(c.file, c.packet, fam) for c in cases for fam in c.params["variants"]]

    def v(r: Case) -> dict:
        return r.params["variants"][r.item]

    def build(r: Case) -> str:
        k = v(r)["config"]
        cap = f", maxnreg {k['maxnreg']}" if k.get("maxnreg") else ""
        return f"{k['block_n']} tokens x {k['num_warps']} warps x {k['num_stages']} stages, {k['ctas_per_sm']} CTAs/SM{cap}"

    return table(rows, [
        ("case", lambda r: f"{r.params['kv_dtype']} {r.params['batch']} x {tokens(r.params['context'])} "
                           f"{'page ' + str(r.params['page_size']) if r.params['page_size'] else 'contiguous'}"),
        ("family", lambda r: r.item + (" (timed)" if r.item == r.params.get("family") else "")),
        ("us", lambda r: num(v(r)["us"])),
        ("rel-L2 vs SDPA", lambda r: f"{v(r)['rel_l2_vs_sdpa']:.3g}"),
        ("best configuration", build),
    ])


def hbm() -> str:
    cases = load_cases(RESULTS, "bench.hbm", H200)
    return table(cases, [
        ("op", lambda c: c.params["op"]),
        ("TB/s", lambda c: num(c.params["tbps"], 3)),
        ("of datasheet", lambda c: f"{pct(c.params['fraction_of_peak'])} of {c.params['peak_tbps']} TB/s"),
        ("us for the bytes", lambda c: f"{num(c.packet.timing.median)} for {c.params['bytes'] / 2**30:.0f} GiB"),
    ])


def attention_accuracy() -> str:
    (c,) = load_cases(RESULTS, "bench.attention_accuracy", H200)
    rel, budget = c.params["rel_l2"], c.params["budget"]
    return table([Case(c.file, c.packet, fmt) for fmt in rel], [
        ("format", lambda r: r.item),
        ("rel-L2 vs float64", lambda r: f"{rel[r.item]:.3g}"),
        ("budget (QUANT)", lambda r: f"{budget[r.item]:g}"),
    ])


# docs/allreduce.md

def _ar(c: Case) -> dict:
    return c.params["algorithms"]


def allreduce_sizes() -> str:
    cases = load_cases(RESULTS, "bench.allreduce", X2)
    cases.sort(key=lambda c: (c.params["mode"] != "process", c.params["size_bytes"]))

    def nccl(c: Case) -> str:
        b = c.packet.baseline("nccl")
        return f"{b.timing.median:.2f} ({b.config.get('chosen', '?')})"

    def symm(c: Case) -> str:
        b = c.packet.baseline("torch_symm_mem")
        return f"{b.timing.median:.2f}"

    return table(cases, [
        ("mode", lambda c: c.params["mode"]),
        ("size", lambda c: size(c.params["size_bytes"])),
        ("algo", lambda c: c.params["algorithm"]),
        ("graph us", lambda c: num(c.packet.timing.median, 2)),
        ("eager us", lambda c: num(c.params["eager_us"])),
        ("NCCL us (config)", nccl),
        ("vs NCCL", lambda c: f"{c.packet.baseline('nccl').ratio:.2f}x"),
        ("symm_mem us", symm),
        ("vs symm_mem", lambda c: f"{c.packet.baseline('torch_symm_mem').ratio:.2f}x"),
        ("composite floor us", lambda c: num(c.params["floor_composite_us"], 2)),
        ("/ floor", lambda c: num(c.params["over_composite_floor"], 2, "x")),
        ("busbw GB/s", lambda c: num(c.params["busbw_gbps"], 0)),
        ("correct", lambda c: str(c.packet.correctness.passed)),
    ])


def allreduce_floor() -> str:
    cases = load_cases(RESULTS, "bench.allreduce", X2, where=lambda p: p.params["size_bytes"] == 1024)
    return table(cases, [
        ("mode", lambda c: c.params["mode"]),
        ("one-way NVLink latency us (ping-pong)", lambda c: num(c.params["floor_one_way_us"], 3)),
        ("graph kernel slot us", lambda c: num(c.params["floor_kernel_slot_us"], 3)),
        ("peer copy GB/s", lambda c: num(c.params["link_gbps"], 1)),
    ])


def allreduce_fused() -> str:
    cases = load_cases(RESULTS, "bench.allreduce", X2, where=lambda p: "fused_residual_rmsnorm" in p.params)
    cases.sort(key=lambda c: c.params["mode"] != "process")
    rows = [Case(c.file, c.packet, variant) for c in cases for variant in ("split", "block", "light")]

    def fused(r: Case) -> dict:
        return r.params["fused_residual_rmsnorm"]

    def us(r: Case) -> float:  # the default (split) is `fused_us`; the others `<variant>_us`
        return fused(r)["fused_us" if r.item == "split" else f"{r.item}_us"]

    return table(rows, [
        ("mode", lambda r: r.params["mode"]),
        ("fused kernel", lambda r: r.item + (" (default)" if r.item == "split" else "")),
        ("fused us", lambda r: num(us(r), 2)),
        ("/ plain one-shot", lambda r: num(us(r) / fused(r)["plain_all_reduce_us"], 2, "x")),
        ("plain one-shot us", lambda r: num(fused(r)["plain_all_reduce_us"], 2)),
        ("ours + torch add, rms_norm us", lambda r: num(fused(r)["unfused_torch_us"], 2)),
    ])


# docs/model.md

def decode_bench() -> str:
    cases = load_cases(RESULTS, "bench.decode", H200)
    cases.sort(key=lambda c: (c.params["batch"], c.params["context"], c.params.get("kv_dtype", "bf16")))

    def hf_setting(c: Case) -> str:
        b = c.packet.baseline("transformers")
        cfg = b.config
        compiled = f"torch.compile {cfg['torch_compile']}" if cfg.get("torch_compile") else "eager"
        return f"{b.version} {cfg.get('cache')}, {compiled}, {cfg.get('experts_implementation')}"

    return table(cases, [
        ("batch", lambda c: str(c.params["batch"])),
        ("context", lambda c: tokens(c.params["context"])),
        ("K/V", lambda c: c.params.get("kv_dtype", "bf16")),
        ("ms/token", lambda c: num(c.packet.timing.median, 3)),
        ("tokens/s", lambda c: num(c.params["tokens_per_s"], 0)),
        ("floor ms (GB/step)", lambda c: f"{c.packet.floor.value:.2f} ({c.packet.floor.bytes / 1e9:.2f})"),
        ("of floor", lambda c: pct(c.packet.floor.fraction, 2)),
        ("same-run ceiling TB/s", lambda c: num(c.packet.floor.ceiling, 2)),
        ("transformers (peer/ours)", peer("transformers", 2)),
        ("transformers setting", hf_setting),
        ("transformers eager (peer/ours)", peer("transformers-eager", 2)),
    ])


def _note(c: Case, prefix: str) -> str:
    return next((n[len(prefix):].strip() for n in c.packet.notes if n.startswith(prefix)), "-")


def decode_check() -> str:
    cases = load_cases(RESULTS, "decode.check", H200)
    cases.sort(key=lambda c: (c.params["kv_dtype"], c.params["batch"]))

    def matched(c: Case) -> str:
        m = re.search(r"max rel-L2 ([0-9.e+-]+)", _note(c, "shared routing, reference K/V rounded"))
        return m.group(1) if m else "-"

    return table(cases, [
        ("KV cache", lambda c: c.params["kv_dtype"]),
        ("batch (prompt lengths)", lambda c: f"{c.params['batch']} ({', '.join(map(str, c.params['prompt_lens']))})"),
        ("steps", lambda c: str(c.params["steps"])),
        ("max rel-L2 vs float64", lambda c: f"{c.packet.correctness.value:.2g}"),
        ("tolerance", lambda c: f"{c.packet.correctness.tolerance:g}"),
        ("status", lambda c: c.packet.status),
        ("K/V-matched rel-L2", matched),
        ("greedy identical (shared routing)", lambda c: _note(c, "greedy tokens identical (shared routing):")),
    ])


BLOCKS = {
    "docs/attention.md": {"attention-targets": lambda: targets(4), "attention-cases": attention_cases,
                          "attention-variants": attention_variants,
                          "hbm": hbm, "attention-accuracy": attention_accuracy},
    "docs/allreduce.md": {"allreduce-targets": lambda: targets(5), "allreduce-floor": allreduce_floor,
                          "allreduce-sizes": allreduce_sizes, "allreduce-fused": allreduce_fused},
    "docs/model.md": {"decode-targets": lambda: targets(6), "decode-bench": decode_bench,
                      "decode-check": decode_check},
}


def main(argv: list[str]) -> int:
    stale = []
    for rel, blocks in BLOCKS.items():
        path = ROOT / rel
        text = new = path.read_text()
        for name, render in blocks.items():
            new = replace_block(new, name, render())
        if new != text:
            stale.append(rel)
            if "--check" not in argv:
                path.write_text(new)
    if "--check" in argv and stale:
        print(f"stale: {', '.join(stale)} (run python3 scripts/docs_tables.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
