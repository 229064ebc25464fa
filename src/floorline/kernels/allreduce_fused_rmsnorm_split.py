"""All-reduce + residual add + RMSNorm with each row spread over several blocks (the default fused kernel).

Same maths, protocol and outputs as `allreduce_fused_rmsnorm` (see there). Why another kernel: run 3 and
round 0 measured the one-block-per-row kernel at 4.45 us against 3.31 us for the plain one-shot (hidden
4096, bf16), and the light variant (one barrier, few registers) at exactly the same 4.45 us, so the cost
is not the reduction but the volume one SM handles: the plain one-shot itself went from 3.32 to 2.77 us at
8 KB when spread over 4 SMs (128-thread blocks) instead of 1.

Layout: a row of `row_pk` packets is spread over bpr = ceil(row_pk / T) blocks of T threads (the launcher,
protocol.fused_split_grid, picks T <= 256 so that bpr <= ITEMS: rows up to 1024 packets, hidden 8192 in
bf16/fp16 or 4096 in fp32; the communicator's default falls back to the one-block-per-row kernel for wider
rows). Block b of a row:
1. pushes only its slice, packets [b*T, (b+1)*T) (one per thread), to every peer, and copies its slice
   of the residual into its OWN region's slot `rank` (unused otherwise: a rank never pushes to itself);
2. waits for the WHOLE row in its own receive buffer (Lamport: data is the flag): first the residual
   copies (local, landed early), then each peer's slot, with every packet's load issued before any is
   checked;
3. computes the row's sum of squares from local memory, redundantly in every block of the row, with the
   same thread-to-packet mapping and fold order in every block, so every block (and every rank) gets the
   same bits: no cross-block reduction and no second barrier;
4. stores only its slice of residual_out and out.
Why the residual goes through the own slot: residual_out may be residual itself (a decoder updates its
residual stream in place), and block b stores its slice while block b' may not yet have read it. Each
block reads the residual only for its own slice (before storing it, in the same thread) and takes every
other slice from the copy, which no one overwrites within the epoch.
Launch through `Communicator.all_reduce_residual_rmsnorm(...)` (variant "default" or "split").
"""

from __future__ import annotations

from floorline.kernels.allreduce_lamport import PRELUDE

NAME = "allreduce_fused_rmsnorm_split"
THREADS_MAX = 256  # __launch_bounds__(256): room for 4 packets x 8 fp32 sums per thread without spills
ITEMS = 4  # packets per thread in the full-row pass = most blocks per row (protocol.FUSED_ITEMS)

SOURCE = (
    PRELUDE
    + r"""
#define ITEMS 4

// Wait for packets src[j * stride], j < count: every load is issued before any result is checked, and only
// the packets not yet landed are loaded again, so a landed row costs one memory latency, not `count`.
template <int DT>
__device__ __forceinline__ void wait_packets(Pk (&v)[ITEMS], const Pk* src, u32 stride, u32 count, u32* ctrl,
                                             u32* status, u64 timeout_ns, u32 code) {
  #pragma unroll
  for (int j = 0; j < ITEMS; ++j)
    if (j < count) v[j] = ld_volatile(src + (u64)j * stride);
  u64 t0 = 0;
  for (u32 spin = 0;; ++spin) {
    bool all = true;
    #pragma unroll
    for (int j = 0; j < ITEMS; ++j) {
      if (j < count && !Ty<DT>::ready(v[j])) {
        all = false;
        v[j] = ld_volatile(src + (u64)j * stride);
      }
    }
    if (all) return;
    if (spin == 0) t0 = globaltimer();
    if (spin % 64) continue;  // the abort word and the clock are checked off the hot path
    if (ld_volatile_u32(ctrl + CTRL_ABORT)) return;
    if (globaltimer() - t0 > timeout_ns) {
      st_volatile_u32(ctrl + CTRL_ABORT, 1u);
      st_sys_u32(status, code);
      return;
    }
  }
}

template <int DT>
__device__ __forceinline__ void fused_split(const void* in, const void* residual, const void* weight, void* out,
                                            void* residual_out, u64 rows, u64 hidden, float eps, Peers peers,
                                            u32 rank, u32 world, u64 slot_bytes, u32* status, u64 timeout_ns) {
  __shared__ float part[2][32];
  u32* ctrl = (u32*)peers.p[rank];
  constexpr int N = Ty<DT>::N;
  const u64 row_pk = hidden / N;
  const u64 npk = rows * row_pk;
  const u32 T = blockDim.x;
  const u32 bpr = (u32)((row_pk + T - 1) / T);  // blocks per row (<= ITEMS, from the launcher)
  const u32 slice = blockIdx.x % bpr;
  const u64 groups = gridDim.x / bpr;
  const u32 c = slice * T + threadIdx.x;  // this thread's packet of the row (its slice)
  const bool has = c < row_pk;
  // full-row pass: packets threadIdx.x + j * T, j < cnt (the same in every block of the row)
  const u32 cnt = threadIdx.x < row_pk ? (u32)((row_pk - threadIdx.x + T - 1) / T) : 0u;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = (blockDim.x + 31) / 32;
  Pk wt;
  if (has) wt = load_packet<DT>(weight, c, row_pk * N);
  u32 epoch = 0, buf = 0;
  for (u64 row = blockIdx.x / bpr, k = 0; row < rows; row += groups, ++k) {
    const u64 base = row * row_pk;
    Pk xin[ITEMS], res;
    // own input (the whole row: the sum needs it) and the residual of our slice do not depend on the
    // peers: issued before the (volatile, ordering) epoch load so the latencies overlap
    #pragma unroll
    for (int j = 0; j < ITEMS; ++j)
      if (j < cnt) xin[j] = load_packet<DT>(in, base + threadIdx.x + (u64)j * T, npk * N);
    if (has) res = load_packet<DT>(residual, base + c, npk * N);
    if (k == 0) {
      epoch = read_epoch(ctrl);
      buf = epoch % N_BUFFERS;
    }
    #pragma unroll
    for (int j = 0; j < ITEMS; ++j)
      if (j < cnt) Ty<DT>::sanitize(xin[j]);  // the value every rank sums for us (peers get the same bits)
    if (has) {
      Pk mine = xin[0];
      #pragma unroll
      for (int j = 1; j < ITEMS; ++j)
        if (j == (int)slice) mine = xin[j];
      for (u32 q = 1; q < world; ++q) {
        u32 dst = (rank + q) % world;
        st_volatile((Pk*)slot_ptr(peers.p[dst], buf, rank, world, slot_bytes) + base + c, mine);
      }
      Ty<DT>::sanitize(res);
      st_volatile((Pk*)slot_ptr(peers.p[rank], buf, rank, world, slot_bytes) + base + c, res);
    }
    if (k == 0) {
      const u32 prev = (epoch + 2) % N_BUFFERS;
      clear_previous(peers.p[rank], prev, world, slot_bytes, ctrl[CTRL_DIRTY + prev],
                     (u64)blockIdx.x * blockDim.x + threadIdx.x, (u64)gridDim.x * blockDim.x);
    }
    // the residual of the whole row, from the copies every block of the row made (ours included): local
    // stores, so they land while the peers' packets are still crossing the fabric; waited for first, off
    // the critical path
    Pk rc[ITEMS];
    wait_packets<DT>(rc, (const Pk*)slot_ptr(peers.p[rank], buf, rank, world, slot_bytes) + base + threadIdx.x, T,
                     cnt, ctrl, status, timeout_ns, 1u + rank);
    // sum over ranks in rank order (fp32), every packet of the row this thread covers
    float acc[ITEMS][N];
    #pragma unroll
    for (int j = 0; j < ITEMS; ++j)
      #pragma unroll
      for (int i = 0; i < N; ++i) acc[j][i] = 0.f;
    Pk v[ITEMS];
    for (u32 s = 0; s < world; ++s) {
      if (s == rank) {
        #pragma unroll
        for (int j = 0; j < ITEMS; ++j) v[j] = xin[j];
      } else {
        wait_packets<DT>(v, (const Pk*)slot_ptr(peers.p[rank], buf, s, world, slot_bytes) + base + threadIdx.x,
                         T, cnt, ctrl, status, timeout_ns, 1u + s);
      }
      #pragma unroll
      for (int j = 0; j < ITEMS; ++j)
        if (j < cnt) {
          #pragma unroll
          for (int i = 0; i < N; ++i) acc[j][i] += Ty<DT>::get(v[j], i);
        }
    }
    Pk h;
    float ss = 0.f;
    #pragma unroll
    for (int j = 0; j < ITEMS; ++j)
      if (j < cnt) {
        #pragma unroll
        for (int i = 0; i < N; ++i) {
          float x = Ty<DT>::round(acc[j][i] + Ty<DT>::get(rc[j], i));
          ss += x * x;
          if (j == (int)slice) Ty<DT>::set(h, i, x);
        }
      }
    if (has) store_packet<DT>(residual_out, base + c, npk * N, h);  // before the barrier: off its path
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xFFFFFFFFu, ss, o);
    // shared scratch double-buffered by row parity: one barrier per row (see allreduce_fused_rmsnorm_light)
    if (lane == 0) part[k & 1][warp] = ss;
    __syncthreads();
    float t = lane < nwarps ? part[k & 1][lane] : 0.f;
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xFFFFFFFFu, t, o);
    const float inv = rsqrtf(t / (float)hidden + eps);
    if (has) {
      Pk o;
      #pragma unroll
      for (int i = 0; i < N; ++i) Ty<DT>::set(o, i, Ty<DT>::get(h, i) * inv * Ty<DT>::get(wt, i));
      store_packet<DT>(out, base + c, npk * N, o);
    }
  }
  if (blockIdx.x / bpr >= rows) epoch = read_epoch(ctrl);  // never launched so (groups <= rows); for safety
  finish_epoch(ctrl, epoch, (u32)npk);
}

#define DEFINE(DT, SUFFIX)                                                                                    \
  extern "C" __global__ void __launch_bounds__(256) allreduce_fused_rmsnorm_split_##SUFFIX(                  \
      const void* in, const void* residual, const void* weight, void* out, void* residual_out, u64 rows,      \
      u64 hidden, float eps, Peers peers, u32 rank, u32 world, u64 slot_bytes, u32* status, u64 timeout_ns) { \
    fused_split<DT>(in, residual, weight, out, residual_out, rows, hidden, eps, peers, rank, world,          \
                    slot_bytes, status, timeout_ns);                                                          \
  }
DEFINE(0, f32)
DEFINE(1, f16)
DEFINE(2, bf16)
"""
)
