"""All-reduce + residual add + RMSNorm in one kernel, for the tensor-parallel decoder.

    h        = residual + sum_over_ranks(x)          (fp32, rounded once to the I/O dtype)
    out      = h * rsqrt(mean(h^2) + eps) * weight   (computed from the rounded h, like an unfused
                                                      model whose residual stream is stored in bf16)
    residual_out = h

The all-reduce is the one-shot Lamport push (see allreduce_oneshot): a block owns whole rows, pushes
them to every peer, waits for the peers' rows, then normalises while the row is still in registers.
`hidden` must be a multiple of the packet width (8 for bf16/fp16, 4 for fp32) and at most
THREADS * ITEMS packets wide.
"""

from __future__ import annotations

from floorline.kernels.allreduce_lamport import PRELUDE

NAME = "allreduce_fused_rmsnorm"
THREADS_MAX = 512
ITEMS = 4  # packets per thread kept in registers: hidden up to 512 * 4 * 8 = 16384 in bf16

SOURCE = (
    PRELUDE
    + r"""
#define ITEMS 4

__device__ __forceinline__ float block_sum(float v, float* smem) {
  #pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = (blockDim.x + 31) / 32;
  __syncthreads();  // smem reused across rows
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  v = lane < nwarps ? smem[lane] : 0.f;
  #pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  return v;
}

template <int DT>
__device__ __forceinline__ void fused(const void* in, const void* residual, const void* weight, void* out,
                                      void* residual_out, u64 rows, u64 hidden, float eps, Peers peers, u32 rank,
                                      u32 world, u64 slot_bytes, u32* status, u64 timeout_ns) {
  __shared__ float smem[32];
  u32* ctrl = (u32*)peers.p[rank];
  constexpr int N = Ty<DT>::N;
  const u64 row_pk = hidden / N;
  const u64 npk = rows * row_pk;
  u32 epoch = 0, buf = 0, prev = 0, prev_dirty = 0;

  for (u64 row = blockIdx.x; row < rows; row += gridDim.x) {
    Pk mine[ITEMS], res[ITEMS], wt[ITEMS];
    // input, residual and weight do not depend on the peers: issue all loads first, so their latency
    // overlaps the epoch load and the packets' flight
    #pragma unroll
    for (int j = 0; j < ITEMS; ++j) {
      const u64 c = threadIdx.x + (u64)j * blockDim.x;
      if (c < row_pk) {
        mine[j] = load_packet<DT>(in, row * row_pk + c, npk * N);
        res[j] = load_packet<DT>(residual, row * row_pk + c, npk * N);
        wt[j] = load_packet<DT>(weight, c, row_pk * N);
      }
    }
    if (row == blockIdx.x) {
      epoch = read_epoch(ctrl);
      buf = epoch % N_BUFFERS;
      prev = (epoch + 2) % N_BUFFERS;
      prev_dirty = ctrl[CTRL_DIRTY + prev];
    }
    #pragma unroll
    for (int j = 0; j < ITEMS; ++j) {
      const u64 c = threadIdx.x + (u64)j * blockDim.x;
      if (c < row_pk) {
        const u64 p = row * row_pk + c;
        Ty<DT>::sanitize(mine[j]);
        for (u32 k = 1; k < world; ++k) {
          u32 dst = (rank + k) % world;
          st_volatile((Pk*)slot_ptr(peers.p[dst], buf, rank, world, slot_bytes) + p, mine[j]);
        }
      }
    }
    if (row == blockIdx.x)
      clear_previous(peers.p[rank], prev, world, slot_bytes, prev_dirty,
                     (u64)blockIdx.x * blockDim.x + threadIdx.x, (u64)gridDim.x * blockDim.x);
    Pk hk[ITEMS];  // h rounded to the I/O dtype is exact in it: keep packets, not floats, in registers
    float ss = 0.f;
    #pragma unroll
    for (int j = 0; j < ITEMS; ++j) {
      const u64 c = threadIdx.x + (u64)j * blockDim.x;
      if (c < row_pk) {
        const u64 p = row * row_pk + c;
        float acc[N];
        #pragma unroll
        for (int i = 0; i < N; ++i) acc[i] = 0.f;
        for (u32 s = 0; s < world; ++s) {
          Pk v = s == rank ? mine[j]
                           : wait_packet<DT>((const Pk*)slot_ptr(peers.p[rank], buf, s, world, slot_bytes) + p,
                                             ctrl, status, timeout_ns, 1u + s);
          #pragma unroll
          for (int i = 0; i < N; ++i) acc[i] += Ty<DT>::get(v, i);
        }
        #pragma unroll
        for (int i = 0; i < N; ++i) {
          float x = Ty<DT>::round(acc[i] + Ty<DT>::get(res[j], i));
          Ty<DT>::set(hk[j], i, x);
          ss += x * x;
        }
        store_packet<DT>(residual_out, p, npk * N, hk[j]);
      }
    }
    const float inv = rsqrtf(block_sum(ss, smem) / (float)hidden + eps);
    #pragma unroll
    for (int j = 0; j < ITEMS; ++j) {
      const u64 c = threadIdx.x + (u64)j * blockDim.x;
      if (c < row_pk) {
        Pk o;
        #pragma unroll
        for (int i = 0; i < N; ++i) Ty<DT>::set(o, i, Ty<DT>::get(hk[j], i) * inv * Ty<DT>::get(wt[j], i));
        store_packet<DT>(out, row * row_pk + c, npk * N, o);
      }
    }
  }
  // the epoch was read with the first row; a block without rows (never launched so: fused_grid gives
  // blocks <= rows) still needs the true epoch, since the last block to arrive writes epoch + 1
  if (blockIdx.x >= rows) epoch = read_epoch(ctrl);
  finish_epoch(ctrl, epoch, (u32)npk);
}

#define DEFINE(DT, SUFFIX)                                                                                    \
  extern "C" __global__ void __launch_bounds__(512) allreduce_fused_rmsnorm_##SUFFIX(                        \
      const void* in, const void* residual, const void* weight, void* out, void* residual_out, u64 rows,      \
      u64 hidden, float eps, Peers peers, u32 rank, u32 world, u64 slot_bytes, u32* status, u64 timeout_ns) { \
    fused<DT>(in, residual, weight, out, residual_out, rows, hidden, eps, peers, rank, world, slot_bytes,    \
              status, timeout_ns);                                                                             \
  }
DEFINE(0, f32)
DEFINE(1, f16)
DEFINE(2, bf16)
"""
)
