"""Static SASS statistics of the decode-attention kernel for sm_90, without a GPU.

Compiles `_decode_kernel` (and the fused-combine build) with triton.compile for GPUTarget("cuda", 90, 32)
at the bench's shapes (Hq=64, Hkv=4, d=128, page 64), with the divisibility the JIT would see at
launch, then reads registers / spills / shared memory from the cubin (Triton's bundled cuobjdump) and
counts the SASS instructions of the hottest loop (the largest backward-branch body).

Usage: python3 scripts/sass_attention.py [--json] [--dump DIR]
Printed: per build, registers, spill bytes, shared bytes, loop instructions, warp-instructions per
KV byte (num_warps x loop instructions / bytes the loop consumes), and the mix of loads / MMAs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import triton

from floorline.kernels.decode_attention import DecodeConfig
from floorline.kernels.decode_attention_aot import BuildShape, compile_sm90
from floorline.kernels.kv_cache import bytes_per_token_head

BIN = Path(os.path.dirname(triton.__file__)) / "backends" / "nvidia" / "bin"
D, G, PAGE = 128, 16, 64


def compile_decode(kv_dtype: str, cfg: DecodeConfig) -> object:
    return compile_sm90(BuildShape(kv_dtype, head_dim=D, group=G, page_size=PAGE), cfg)


def sass_text(cubin: bytes) -> str:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        return subprocess.run([str(BIN / "cuobjdump"), "--dump-sass", f.name], capture_output=True,
                              text=True, check=True).stdout


_LINE = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);")


def hottest_loop(sass: str) -> list[str]:
    """Opcodes of the largest loop body (backward BRA), in order."""
    ins = [(int(m.group(1), 16), m.group(3), m.group(4)) for m in _LINE.finditer(sass)]
    best: list[str] = []
    for addr, op, rest in ins:
        if op.startswith("BRA"):
            t = re.search(r"0x([0-9a-f]+)", rest)
            if t and int(t.group(1), 16) < addr:
                body = [o for a, o, _ in ins if int(t.group(1), 16) <= a <= addr]
                if len(body) > len(best):
                    best = body
    return best


def stats(kernel: object, loop_bytes: float, num_warps: int) -> dict:
    md = kernel.metadata
    sass = sass_text(kernel.asm["cubin"])
    loop = hottest_loop(sass)
    mix = Counter(re.sub(r"\..*", "", o) for o in loop)
    return {"shared": md.shared, "loop_instructions": len(loop), "loop_bytes": loop_bytes,
            "warp_instr_per_byte": num_warps * len(loop) / loop_bytes,
            "mix": {k: v for k, v in mix.most_common() if k in (
                "LDG", "LDGSTS", "LDS", "STS", "LDSM", "HMMA", "HGMMA", "QGMMA", "WARPGROUP", "F2FP", "PRMT", "LOP3", "I2F", "F2F",
                "HADD2", "HMUL2", "FMUL", "FFMA", "MUFU", "SHF", "IMAD", "BAR", "STL", "LDL", "SHFL", "UTMALDG")},
            "sass": sass}


def resource_usage(cubin: bytes) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(cubin)
        f.flush()
        out = subprocess.run([str(BIN / "cuobjdump"), "--dump-resource-usage", f.name], capture_output=True,
                             text=True, check=True).stdout
    get = {k: int(v) for k, v in re.findall(r"(REG|STACK|SHARED|LOCAL):(\d+)", out)}
    return {"registers": get.get("REG"), "stack": get.get("STACK"), "local": get.get("LOCAL")}


def _c(**kw: object) -> DecodeConfig:
    return DecodeConfig(**kw)


# (kv_dtype, config): v1 as measured in run 3 next to each v2 candidate the next run times
BUILDS = [
    ("bf16", _c(block_n=64, num_warps=4, num_stages=3)),
    ("bf16", _c(block_n=64, num_warps=4, num_stages=3, variant="v2")),
    ("bf16", _c(block_n=128, num_warps=8, num_stages=3)),
    ("bf16", _c(block_n=128, num_warps=8, num_stages=3, variant="v2")),
    ("bf16", _c(block_n=128, num_warps=4, num_stages=3, variant="v2", fuse_combine=True)),
    ("fp8", _c(block_n=64, num_warps=4, num_stages=2)),
    ("fp8", _c(block_n=128, num_warps=8, num_stages=3)),
    ("fp8", _c(block_n=64, num_warps=4, num_stages=2, variant="v2")),
    ("fp8", _c(block_n=128, num_warps=8, num_stages=3, variant="v2")),
    ("fp8", _c(block_n=64, num_warps=4, num_stages=3, variant="v2", fp8_mma=True)),
    ("fp8", _c(block_n=128, num_warps=4, num_stages=3, variant="v2", fp8_mma=True)),
    ("fp8", _c(block_n=128, num_warps=8, num_stages=3, variant="v2", fp8_mma=True)),
    # session 2: the alignment hint (16-byte cp.async of fp8 V^T on Triton 3.6) and the register cap
    ("fp8", _c(block_n=64, num_warps=4, num_stages=3, align_hint=True)),
    ("fp8", _c(block_n=64, num_warps=4, num_stages=3, align_hint=True, maxnreg=128)),
    ("fp8", _c(block_n=128, num_warps=4, num_stages=2, align_hint=True)),
    ("fp8", _c(block_n=128, num_warps=4, num_stages=2, align_hint=True, maxnreg=168)),
    ("fp8", _c(block_n=128, num_warps=8, num_stages=3, align_hint=True, maxnreg=128)),
    ("fp8", _c(block_n=64, num_warps=4, num_stages=3, variant="v2", fp8_mma=True, align_hint=True)),
    ("fp8", _c(block_n=128, num_warps=8, num_stages=3, variant="v2", fp8_mma=True, align_hint=True)),
    ("fp8", _c(block_n=128, num_warps=8, num_stages=3, variant="v2", fp8_mma=True, align_hint=True, maxnreg=128)),
    ("fp8", _c(block_n=128, num_warps=4, num_stages=3, variant="v2", fp8_mma=True, align_hint=True)),
    ("bf16", _c(block_n=64, num_warps=4, num_stages=1, prefetch=True)),
    ("bf16", _c(block_n=32, num_warps=4, num_stages=1, prefetch=True)),
    ("bf16", _c(block_n=128, num_warps=8, num_stages=1, prefetch=True)),
    ("fp4", _c(block_n=64, num_warps=4, num_stages=3)),
    ("fp4", _c(block_n=64, num_warps=8, num_stages=3)),
    ("fp4", _c(block_n=64, num_warps=4, num_stages=3, variant="v2")),
    ("fp4", _c(block_n=64, num_warps=8, num_stages=3, variant="v2")),
    ("fp4", _c(block_n=128, num_warps=4, num_stages=3, variant="v2")),
]


def label_of(kv_dtype: str, cfg: DecodeConfig) -> str:
    extra = (("+mma" if cfg.fp8_mma else "") + ("+fused" if cfg.fuse_combine else "") + ("+prefetch" if cfg.prefetch else "")
             + ("+align" if cfg.align_hint else "") + (f"+r{cfg.maxnreg}" if cfg.maxnreg else ""))
    return f"{kv_dtype} {cfg.variant}{extra} n{cfg.block_n} w{cfg.num_warps} s{cfg.num_stages}"


def main() -> None:
    as_json = "--json" in sys.argv
    dump = sys.argv[sys.argv.index("--dump") + 1] if "--dump" in sys.argv else None
    rows = []
    # e.g. SASS_ONLY="align prefetch": only builds whose label contains one of the words (device time)
    only = os.environ.get("SASS_ONLY", "").split()
    for kv_dtype, cfg in BUILDS:
        label = label_of(kv_dtype, cfg)
        if only and not any(w in label for w in only):
            continue
        try:
            k = compile_decode(kv_dtype, cfg)
        except Exception as e:  # noqa: BLE001 - a build that does not compile is a finding, not a crash
            rows.append({"build": label, "error": f"{type(e).__name__}: {str(e)[:300]}"})
            continue
        loop_bytes = cfg.block_n * 2 * bytes_per_token_head(kv_dtype, D)
        s = stats(k, loop_bytes, cfg.num_warps)
        s.update(resource_usage(k.asm["cubin"]))
        if dump:
            Path(dump).mkdir(parents=True, exist_ok=True)
            (Path(dump) / (label.replace(" ", "_").replace("+", "_") + ".sass")).write_text(s["sass"])
        del s["sass"]
        rows.append({"build": label, **s})
    if as_json:
        print(json.dumps(rows, indent=1))
        return
    for r in rows:
        if "error" in r:
            print(f"{r['build']:28s} ERROR {r['error']}")
            continue
        print(f"{r['build']:28s} regs {r['registers']:>3} stack {r['stack']} smem {r['shared']:>6} "
              f"loop {r['loop_instructions']:>5} instr  {r['warp_instr_per_byte']:.3f} warp-instr/B  {r['mix']}")


if __name__ == "__main__":
    main()
