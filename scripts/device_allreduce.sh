#!/usr/bin/env bash
# One device call for issue 5 (nvidia-h200-x2): smoke, GPU tests, the full all-reduce bench.
# Usage (device): source scripts/device_env.sh; FLOORLINE_GIT_COMMIT=<sha> bash scripts/device_allreduce.sh [quick]
# Short device slot: LIMIT_S=235 PYTEST_S=75 SUBSET=1 SKIP_SMOKE=1 (reduced GPU test set, then the full bench).
# Writes $OUT/{log.txt,pytest.txt,bench.json,results.tgz}. Every stage has its own time limit and the
# whole script stays under LIMIT_S, so a hung stage still leaves the others' evidence behind.
#
# `next` mode (the next measurement round: default kernels vs the opt-in variants, one call, <= 235 s):
#   source scripts/device_env.sh; FLOORLINE_GIT_COMMIT=<sha> bash scripts/device_allreduce.sh next
# GPU tests of the variants (tests/kernels/test_allreduce_variants.py), then one bench run of both modes
# with --variants all --tune-crossover at NEXT_SIZES, packets written OUTSIDE results/ (NEXT_DIR), so the
# committed run-3 packets are never overwritten; they come back as $OUT/next.tgz with
# $OUT/{pytest_variants.txt,bench.json,bench_stderr.txt,compare.txt,crossover-candidate.toml,log.txt}.
# PYTEST_K=<expr> narrows the variant tests (pytest -k), e.g. PYTEST_K=cluster for the cluster fused kernel alone;
# fused_cluster joins the bench only when that test run finished green (or through NEXT_VARIANTS).
#
# `round-a` mode (session 2 round A: the new defaults, <= 420 s, nvidia-h200-x2):
#   source scripts/device_env.sh; FLOORLINE_GIT_COMMIT=<sha> bash scripts/device_allreduce.sh round-a
# GPU tests of what changed (variants file: split/light/block fused kernels, both epoch schemes; the main
# file's reduced set on the new defaults; process mode), then the full bench of both modes (1 KB .. 64 MB,
# every power of two) with the new defaults, the old default (--variants ticket) and the other fused kernels
# timed next to them, --tune-crossover; packets written to results/nvidia-h200-x2 (to be committed), back
# as $OUT/results.tgz with $OUT/{log.txt,pytest_variants.txt,pytest.txt,bench.json,bench_stderr.txt,
# compare.txt,crossover-candidate.toml}.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
MODE=${1:-full}
if [ "$MODE" = next ]; then LIMIT_S=${LIMIT_S:-235}; elif [ "$MODE" = round-a ]; then LIMIT_S=${LIMIT_S:-380}; else LIMIT_S=${LIMIT_S:-540}; fi
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
exec > >(tee -a "$OUT/log.txt") 2>&1
t0=$(date +%s)
left() { echo $(( LIMIT_S - ($(date +%s) - t0) )); }
stage() { echo "=== $1 (t=$(( $(date +%s) - t0 ))s)"; }
stage env
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total,driver_version --format=csv
nvidia-smi topo -m
python3 -c "import torch, cuda.bindings as cb; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'nccl', torch.cuda.nccl.version(), 'cuda.bindings', cb.__version__, 'gpus', torch.cuda.device_count())"
python3 -c "from floorline.comm import thread_nccl as t; r = t.unavailable_reason(); print('thread-mode NCCL (CuPy):', r or 'available')" 2>&1 | tail -1
if [ "$MODE" = next ]; then
  NEXT_DIR=${NEXT_DIR:-/tmp/allreduce-next/nvidia-h200-x2}
  NEXT_SIZES=${NEXT_SIZES:-1K,2K,4K,8K,16K,32K,64K,256K,1M,2M,4M,16M,32M,64M}
  rm -rf "$NEXT_DIR"; mkdir -p "$NEXT_DIR"
  stage "pytest variants"
  timeout -k 5 $(( ${PYTEST_S:-70} < $(left) - 120 ? ${PYTEST_S:-70} : $(left) - 120 )) \
    python3 -m pytest -q -p no:cacheprovider -m gpu -rfEs ${PYTEST_K:+-k "$PYTEST_K"} \
    tests/kernels/test_allreduce_variants.py > "$OUT/pytest_variants.txt" 2>&1
  prc=$?; echo "pytest rc=$prc"; tail -15 "$OUT/pytest_variants.txt"
  # a variant that failed its tests stays out of the bench: a timed-out kernel would abort the whole
  # bench run, taking the defaults' packets with it
  V=${NEXT_VARIANTS:-}
  if [ -z "$V" ]; then
    grep -q "^FAILED.*\(replicated\|epoch_schemes\)" "$OUT/pytest_variants.txt" || V="replicated,replicated_t128"
    grep -q "^FAILED.*fused_light" "$OUT/pytest_variants.txt" || V="${V:+$V,}fused_light"
    # the cluster kernel (never run before) joins only after a complete, green test run: a hang in the bench
    # would take every variant's numbers with it
    [ "$prc" = 0 ] && ! grep -q "^FAILED.*cluster" "$OUT/pytest_variants.txt" && V="${V:+$V,}fused_cluster"
  fi
  echo "bench variants: ${V:-none}"
  stage "bench allreduce: defaults vs variants"
  b=$(( $(left) - ${PACK_S:-15} )); [ "$b" -gt 30 ] || b=30
  timeout -k 5 "$b" python3 -m floorline bench allreduce --world 2 --mode both --json ${V:+--variants "$V"} \
    --tune-crossover --sizes "$NEXT_SIZES" --out "$NEXT_DIR" > "$OUT/bench.json" 2> "$OUT/bench_stderr.txt"
  echo "bench rc=$?"; grep -v "^  " "$OUT/bench_stderr.txt" | tail -40
  stage compare
  timeout 20 python3 - "$NEXT_DIR" > "$OUT/compare.txt" 2>&1 <<'PY'
import glob, json, sys
rows = []
for f in sorted(glob.glob(sys.argv[1] + "/bench-allreduce-*.json"), key=lambda f: (json.load(open(f))["params"]["mode"], json.load(open(f))["params"]["size_bytes"])):
    p = json.load(open(f))["params"]
    a, fc = p["algorithms"], p["floor_composite_us"]
    g = lambda k: a.get(k, {}).get("graph_us")
    f2 = lambda v: "-" if v is None else f"{v:7.2f}"
    r = lambda v: "-" if v is None else f"{v / fc:5.2f}x"
    bad = [k for k, v in a.items() if v.get("err") is not None and v["err"] > 1]
    print(f"{p['mode']:7} {p['size_bytes']:>9} floor {fc:6.2f} | oneshot {f2(g('oneshot'))} ({r(g('oneshot'))}) "
          f"repl {f2(g('oneshot@replicated'))} ({r(g('oneshot@replicated'))}) "
          f"repl_t128 {f2(g('oneshot@replicated_t128'))} ({r(g('oneshot@replicated_t128'))}) | twoshot "
          f"{f2(g('twoshot'))} repl {f2(g('twoshot@replicated'))} | auto {p['algorithm']} | wrong {bad}")
    fu = p.get("fused_residual_rmsnorm")
    if fu:
        print(f"{p['mode']:7} fused hidden {fu['hidden']}: default {fu['fused_us']:.2f} us ({fu['fused_over_plain']:.3f}x plain) "
              f"light {fu.get('light_us') or float('nan'):.2f} us ({fu.get('light_over_plain') or float('nan'):.3f}x plain, "
              f"err {fu.get('light_err')}) cluster {fu.get('cluster_us') or float('nan'):.2f} us "
              f"({fu.get('cluster_over_plain') or float('nan'):.3f}x plain, err {fu.get('cluster_err')}) "
              f"plain {fu['plain_all_reduce_us']:.2f} us")
PY
  cat "$OUT/compare.txt"
  cp "$NEXT_DIR/crossover-candidate.toml" "$OUT/" 2>/dev/null || echo "no crossover candidate (bench cut short?)"
  python3 -m floorline evidence verify "$NEXT_DIR"/bench-allreduce-*.json 2>&1 | tail -3
  stage pack
  tar czf "$OUT/next.tgz" -C "$(dirname "$NEXT_DIR")" "$(basename "$NEXT_DIR")" 2>/dev/null
  ls -la "$OUT"
  stage done
  exit 0
fi
if [ "$MODE" = round-a ]; then
  RES=results/nvidia-h200-x2
  BENCH_RESERVE=${BENCH_RESERVE:-190}  # what the bench and the packing keep, whatever the tests take
  cap() { local want=$1 room=$(( $(left) - BENCH_RESERVE )); [ "$room" -lt 10 ] && room=10; echo $(( want < room ? want : room )); }
  stage "pytest variants (fused split/light/block, both epoch schemes)"
  timeout -k 5 "$(cap ${PYTEST_VARIANTS_S:-75})" python3 -m pytest -q -p no:cacheprovider -m gpu -rfEs \
    tests/kernels/test_allreduce_variants.py > "$OUT/pytest_variants.txt" 2>&1
  echo "pytest variants rc=$?"; tail -12 "$OUT/pytest_variants.txt"
  stage "pytest main file, reduced set, new defaults"
  # every test but the eager 10^5 loop and the thread-mode NCCL hand-off (unchanged; its close() hung in
  # run 3); float64 sums at 1 element, odd sizes, 64 KB, 1 MB + 6 B and 64 MB, every dtype, both algorithms
  MAIN=$(python3 -m pytest --collect-only -q -m gpu tests/kernels/test_allreduce.py 2>/dev/null | python3 -c '
import sys
keep = []
for line in sys.stdin:
    i = line.strip()
    if "::" not in i or "1e5" in i and "eager" in i or "nccl_handoff" in i:
        continue
    if "test_matches_float64_sum[" in i:
        nb, alg, _ = i.split("[")[1].rstrip("]").split("-")
        if not (nb in ("2", "18", "1026", "65534", "1048582", "67108864") and alg != "auto" or nb == "8192"):
            continue
    keep.append(i)
print(" ".join(keep))')
  echo "main subset: $(echo $MAIN | wc -w) tests"
  timeout -k 5 "$(cap ${PYTEST_MAIN_S:-100})" python3 -m pytest -q -p no:cacheprovider -m gpu -rfEs $MAIN \
    > "$OUT/pytest.txt" 2>&1
  echo "pytest main rc=$?"; tail -8 "$OUT/pytest.txt"
  stage "pytest process mode"
  timeout -k 5 "$(cap ${PYTEST_PROCESS_S:-60})" python3 -m pytest -q -p no:cacheprovider -m gpu -rfEs \
    tests/kernels/test_allreduce_process.py >> "$OUT/pytest.txt" 2>&1
  echo "pytest process rc=$?"; tail -5 "$OUT/pytest.txt"
  V=${ROUND_A_VARIANTS:-ticket,fused_block,fused_light}
  grep -q "^FAILED.*fused_variants.*light" "$OUT/pytest_variants.txt" && V=$(echo "$V" | sed 's/,\?fused_light//')
  grep -q "^FAILED.*ticket" "$OUT/pytest_variants.txt" && V=$(echo "$V" | sed 's/ticket,\?//')
  echo "bench variants: ${V:-none}"
  stage "bench allreduce: new defaults, both modes, 1 KB .. 64 MB"
  # this machine's copy of the run-3 packets goes first, so what comes back is this run's alone (a bench cut
  # short returns fewer packets, never a mix of two runs)
  rm -f "$RES"/bench-allreduce-*.json "$RES"/allreduce-*.svg
  b=$(( $(left) - ${PACK_S:-15} )); [ "$b" -gt 30 ] || b=30
  timeout -k 5 "$b" python3 -m floorline bench allreduce --world 2 --mode both --json ${V:+--variants "$V"} \
    --tune-crossover --out "$RES" > "$OUT/bench.json" 2> "$OUT/bench_stderr.txt"
  echo "bench rc=$?"; grep -v "^  " "$OUT/bench_stderr.txt" | tail -45
  stage compare
  timeout 20 python3 - "$RES" > "$OUT/compare.txt" 2>&1 <<'PY'
import glob, json, sys
files = glob.glob(sys.argv[1] + "/bench-allreduce-*-w2-*.json")
for f in sorted(files, key=lambda f: (json.load(open(f))["params"]["mode"], json.load(open(f))["params"]["size_bytes"])):
    p = json.load(open(f))["params"]
    a, fc = p["algorithms"], p["floor_composite_us"]
    g = lambda k: a.get(k, {}).get("graph_us")
    f2 = lambda v: "-" if v is None else f"{v:7.2f}"
    r = lambda v: "-" if v is None else f"{v / fc:5.2f}x"
    bad = [k for k, v in a.items() if v.get("err") is not None and v["err"] > 1]
    nccl = json.load(open(f))["baselines"]
    nc = next((b for b in nccl if b["name"] == "nccl"), {})
    ncu = (nc.get("timing") or {}).get("median")
    print(f"{p['mode']:7} {p['size_bytes']:>9} floor {fc:6.2f} | oneshot {f2(g('oneshot'))} ({r(g('oneshot'))}) "
          f"ticket512 {f2(g('oneshot@ticket'))} | twoshot {f2(g('twoshot'))} ticket512 {f2(g('twoshot@ticket'))} "
          f"| auto {p['algorithm']} {f2(p.get('graph_us') or json.load(open(f))['timing']['median'])} nccl {f2(ncu)} | wrong {bad}")
    fu = p.get("fused_residual_rmsnorm")
    if fu:
        print(f"{p['mode']:7} fused hidden {fu['hidden']}: split {fu['fused_us']:.2f} us ({fu['fused_over_plain']:.3f}x plain, err {fu['err']:.3f}) "
              f"block {fu.get('block_us') or float('nan'):.2f} ({fu.get('block_over_plain') or float('nan'):.3f}x) "
              f"light {fu.get('light_us') or float('nan'):.2f} ({fu.get('light_over_plain') or float('nan'):.3f}x) "
              f"plain {fu['plain_all_reduce_us']:.2f} us; split kernel {fu.get('kernel_attributes')}")
PY
  cat "$OUT/compare.txt"
  mv "$RES/crossover-candidate.toml" "$OUT/" 2>/dev/null || echo "no crossover candidate (bench cut short?)"
  python3 -m floorline evidence verify "$RES"/bench-allreduce-*.json 2>&1 | tail -3
  stage pack
  tar czf "$OUT/results.tgz" "$RES"/bench-allreduce-* "$RES"/allreduce-*.svg 2>/dev/null
  ls -la "$OUT"
  stage done
  exit 0
fi
stage smoke
[ "${SKIP_SMOKE:-0}" = 1 ] && echo "skipped (SKIP_SMOKE=1: the GPU tests cover it)" || \
timeout 90 python3 - <<'PY' || { echo "SMOKE FAILED"; }
import torch
from floorline.comm import CommConfig, init_threads
cs = init_threads([0, 1], CommConfig(max_bytes=1 << 20, oneshot_max_bytes=1 << 20, timeout_s=5))
xs = [torch.randn(1001, device=f"cuda:{r}").to(torch.bfloat16) for r in range(2)]
for alg in ("oneshot", "twoshot"):
    outs = []
    for c in cs:
        with torch.cuda.device(c.device):
            outs.append(c.all_reduce(xs[c.rank], algorithm=alg))
    for c in cs:
        c.synchronize()
    ref = xs[0].double() + xs[1].double().to("cuda:0")
    print(alg, "max err", float((outs[0].double() - ref).abs().max()), float((outs[1].double().to("cuda:0") - ref).abs().max()))
print("kernel attrs", cs[0].kernel_attributes("oneshot"), cs[0].kernel_attributes("fused"))
for c in cs:
    c.close()
PY
stage pytest
if [ "$MODE" != bench-only ]; then
  if [ "${SUBSET:-0}" = 1 ]; then
    # a reduced but real set for a short device slot: every test except the eager 10^5 loop and the
    # process-mode file; float64 sums at 1 element, odd sizes, 64 KB, 1 MB + 6 B and 64 MB, every dtype,
    # one-shot and two-shot (and auto at 8 KB)
    PYTEST_TESTS=$(python3 -m pytest --collect-only -q -m gpu tests/kernels/test_allreduce.py 2>/dev/null | python3 -c '
import sys
keep = []
for line in sys.stdin:
    i = line.strip()
    if "::" not in i or "1e5" in i and "eager" in i:
        continue
    if "test_matches_float64_sum[" in i:
        nb, alg, _ = i.split("[")[1].rstrip("]").split("-")
        if not (nb in ("2", "18", "1026", "65534", "1048582", "67108864") and alg != "auto" or nb == "8192"):
            continue
    keep.append(i)
print(" ".join(keep))')
    echo "subset: $(echo $PYTEST_TESTS | wc -w) tests"
  fi
  # PYTEST_TESTS: node ids or files (default: every all-reduce GPU test)
  timeout ${PYTEST_S:-200} python3 -m pytest -q -p no:cacheprovider -m gpu -rs \
    ${PYTEST_TESTS:-tests/kernels/test_allreduce.py tests/kernels/test_allreduce_process.py} > "$OUT/pytest.txt" 2>&1
  echo "pytest rc=$?"; tail -30 "$OUT/pytest.txt"
fi
stage "bench allreduce"
b=$(( $(left) - ${PACK_S:-10} )); [ "$b" -gt 30 ] || b=30
timeout "$b" python3 -m floorline bench allreduce --world 2 --mode both --json $([ "$MODE" = quick ] && echo --quick) \
  --out results/nvidia-h200-x2 > "$OUT/bench.json" 2> "$OUT/bench_stderr.txt"
echo "bench rc=$?"; grep -v "^  " "$OUT/bench_stderr.txt" | tail -60
python3 -m floorline evidence verify results/nvidia-h200-x2/bench-allreduce-*.json 2>&1 | tail -3
stage pack
tar czf "$OUT/results.tgz" results/nvidia-h200-x2/bench-allreduce-* results/nvidia-h200-x2/allreduce-*.svg 2>/dev/null
ls -la "$OUT"
stage done
