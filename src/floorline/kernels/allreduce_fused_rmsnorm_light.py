"""All-reduce + residual add + RMSNorm, light variant for decode rows (opt-in, not the default).

Same maths, protocol and outputs as `allreduce_fused_rmsnorm` (see there); what differs is only the
row reduction, which is what run 3 put on the critical path (fused 4.44 us vs plain 3.31 us, hidden 4096):
- one packet per thread, fixed at compile time (a row of up to 1024 packets: hidden <= 8192 bf16/fp16,
  4096 fp32), so the thread holds one input, residual, weight and h packet instead of four of each
  (the default keeps ITEMS = 4 arrays live: 119 registers);
- each warp folds its sum of squares with shuffles as soon as its own packets have arrived, inside the
  receive loop, and publishes one partial; then ONE __syncthreads (the default pays two: one before it
  reuses its shared scratch, one after), and every warp re-folds the <= 32 partials itself (no
  broadcast round through shared memory). The shared scratch is double-buffered by row parity, which
  is what makes the leading barrier unnecessary: a row writes half (row & 1) while the previous row's
  readers are done with the other half, and a row two later writes it again only after every thread
  passed the barrier of the row in between.
Launch through `Communicator.all_reduce_residual_rmsnorm(..., variant="light")`.
"""

from __future__ import annotations

from floorline.kernels.allreduce_lamport import PRELUDE

NAME = "allreduce_fused_rmsnorm_light"
THREADS_MAX = 1024  # one packet per thread: a row of at most 1024 packets

SOURCE = (
    PRELUDE
    + r"""
template <int DT>
__device__ __forceinline__ void fused_light(const void* in, const void* residual, const void* weight, void* out,
                                            void* residual_out, u64 rows, u64 hidden, float eps, Peers peers,
                                            u32 rank, u32 world, u64 slot_bytes, u32* status, u64 timeout_ns) {
  __shared__ float part[2][32];
  u32* ctrl = (u32*)peers.p[rank];
  constexpr int N = Ty<DT>::N;
  const u64 row_pk = hidden / N;
  const u64 npk = rows * row_pk;
  const u32 c = threadIdx.x;
  const bool has = c < row_pk;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = (blockDim.x + 31) / 32;
  Pk wt;
  if (has) wt = load_packet<DT>(weight, c, row_pk * N);
  u32 epoch = 0, buf = 0;
  for (u64 row = blockIdx.x, k = 0; row < rows; row += gridDim.x, ++k) {
    const u64 p = row * row_pk + c;
    Pk mine, res;
    if (has) {  // issued before the (volatile, ordering) epoch load so the latencies overlap
      mine = load_packet<DT>(in, p, npk * N);
      res = load_packet<DT>(residual, p, npk * N);
    }
    if (k == 0) {
      epoch = read_epoch(ctrl);
      buf = epoch % N_BUFFERS;
    }
    if (has) {
      Ty<DT>::sanitize(mine);
      push_packet(mine, p, peers, rank, world, buf, slot_bytes);
    }
    if (k == 0) {
      const u32 prev = (epoch + 2) % N_BUFFERS;
      clear_previous(peers.p[rank], prev, world, slot_bytes, ctrl[CTRL_DIRTY + prev],
                     (u64)blockIdx.x * blockDim.x + threadIdx.x, (u64)gridDim.x * blockDim.x);
    }
    Pk h;
    float ss = 0.f;
    if (has) {
      h = sum_ranks_plus_residual<DT>(mine, res, p, peers, rank, world, buf, slot_bytes, ctrl, status, timeout_ns, ss);
      store_packet<DT>(residual_out, p, npk * N, h);  // before the barrier: off the reduction's path
    }
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xFFFFFFFFu, ss, o);
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
      store_packet<DT>(out, p, npk * N, o);
    }
  }
  if (blockIdx.x >= rows) epoch = read_epoch(ctrl);  // never launched so (grid <= rows); kept for safety
  finish_epoch(ctrl, epoch, (u32)npk);
}

#define DEFINE(DT, SUFFIX)                                                                                    \
  extern "C" __global__ void __launch_bounds__(1024) allreduce_fused_rmsnorm_light_##SUFFIX(                  \
      const void* in, const void* residual, const void* weight, void* out, void* residual_out, u64 rows,      \
      u64 hidden, float eps, Peers peers, u32 rank, u32 world, u64 slot_bytes, u32* status, u64 timeout_ns) { \
    fused_light<DT>(in, residual, weight, out, residual_out, rows, hidden, eps, peers, rank, world,          \
                    slot_bytes, status, timeout_ns);                                                          \
  }
DEFINE(0, f32)
DEFINE(1, f16)
DEFINE(2, bf16)
"""
)
