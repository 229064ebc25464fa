"""All-reduce + residual add + RMSNorm with each row on one thread-block cluster (opt-in, sm_90+).

NOT YET RUN ON A GPU: compiled for sm_90 only (nvcc/ptxas, docs/notes/allreduce.md session 7); the GPU
tests in tests/kernels/test_allreduce_variants.py and the bench variant `fused_cluster` are written but
have not run.

Same maths, protocol and outputs as `allreduce_fused_rmsnorm` (see there). Why another kernel: on
nvidia-h200-x2 (hidden 4096 bf16, 1 token, graph) the plain one-shot with 4 blocks x 128 threads took
2.72 us, the one-block-per-row kernels 4.22-4.40 us (one SM carries the whole 8 KB row) and the split
kernel 5.22 us (every block waited for the WHOLE row and re-read the residual copies). This kernel keeps the
plain one-shot's data path exactly and adds only the row reduction, done on chip:

Layout (protocol.fused_cluster_grid): a row of `row_pk` packets is spread over the C blocks of one cluster
(C = ceil(row_pk / T) <= 8, the portable cluster size; T = 128 threads up to 1024 packets, wider rows take
T up to 1024 with C = 8); block b of the cluster (its %cluster_ctarank) owns packets [b*T, (b+1)*T), one per
thread, exactly like the plain one-shot's 128-thread grid. Several rows: several clusters, each looping
over rows with the cluster count as stride. Block b of a row:
1. loads its input, residual and weight packets before the (volatile, ordering) epoch load;
2. pushes its input packet to every peer's receive slot (Lamport, data is the flag; same buffers, epochs
   and slot indexing as the one-shot) and clears its share of the previous buffer;
3. waits only for ITS OWN packet from each peer, sums ranks 0..w-1 in fp32, adds the residual and rounds
   to the I/O dtype (h: the same bits as every other fused kernel), stores residual_out for its slice;
4. folds its sum of squares (warp shuffles, one __syncthreads through shared memory), writes the block's
   partial into its own shared memory, and meets its siblings at a cluster barrier (arrive.release /
   wait.acquire);
5. reads the C partials through distributed shared memory (mapa + ld.shared::cluster) and sums them in the
   fixed order block 0, 1, ..., C-1, so every block of the row, and every rank, gets the same bits;
6. stores out = h * rsqrt(sum / hidden + eps) * weight for its slice.
DSMEM rule: a block's shared memory must outlive every sibling's read of it. After its reads a thread
arrives (release) at a second cluster barrier and waits on it only at the end of the kernel (or before the
next row's publish), so the `out` store overlaps that barrier and no block exits while a sibling may still
read its partial. The partials are double-buffered by row parity: a block can write row k+2's partial
only after passing row k+1's publish barrier, which every sibling reaches only after its row-k reads.

In-place residual (residual_out is residual) is safe with no copies: every residual packet is read and
written by the same thread (read before the wait, written after), and no block reads another block's
slice of x, residual or residual_out. (The split kernel needed its own-slot residual copies only because
each of its blocks read the whole row.)

Launch through `Communicator.all_reduce_residual_rmsnorm(..., variant="cluster")`: the communicator
launches it with cuLaunchKernelEx and CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION (cuda_api.launch_cluster) and
bounds the cluster count by cuOccupancyMaxActiveClusters, because every block must be resident at once
(each waits on a peer's block). The kernel traps if launched with clusters too small for the row.
"""

from __future__ import annotations

from floorline.kernels.allreduce_lamport import PRELUDE

NAME = "allreduce_fused_rmsnorm_cluster"
THREADS_MAX = 1024  # __launch_bounds__(1024): one packet per thread, a row of up to 8 x 1024 packets
CLUSTER_MAX = 8  # portable thread-block cluster size (protocol.FUSED_CLUSTER_MAX)

SOURCE = (
    PRELUDE
    + r"""
// ---- thread-block cluster access (sm_90): raw PTX, so NVRTC needs no cooperative_groups header ----
__device__ __forceinline__ u32 cluster_ctarank() { u32 r; asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r)); return r; }
__device__ __forceinline__ u32 cluster_nctarank() { u32 r; asm volatile("mov.u32 %0, %%cluster_nctarank;" : "=r"(r)); return r; }
__device__ __forceinline__ u32 cluster_id_x() { u32 r; asm volatile("mov.u32 %0, %%clusterid.x;" : "=r"(r)); return r; }
__device__ __forceinline__ u32 cluster_count_x() { u32 r; asm volatile("mov.u32 %0, %%nclusterid.x;" : "=r"(r)); return r; }
// release: this thread's shared-memory writes (the block partial) are visible to every sibling after its wait
__device__ __forceinline__ void cluster_arrive() { asm volatile("barrier.cluster.arrive.release.aligned;" ::: "memory"); }
__device__ __forceinline__ void cluster_wait() { asm volatile("barrier.cluster.wait.acquire.aligned;" ::: "memory"); }
// the float at `local` (this block's shared memory) in the shared memory of cluster block `block`
__device__ __forceinline__ float ld_dsmem_f32(const float* local, u32 block) {
  u32 a, r;
  float v;
  asm volatile("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(local));
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(block));
  asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(r) : "memory");
  return v;
}

template <int DT>
__device__ __forceinline__ void fused_cluster(const void* in, const void* residual, const void* weight, void* out,
                                              void* residual_out, u64 rows, u64 hidden, float eps, Peers peers,
                                              u32 rank, u32 world, u64 slot_bytes, u32* status, u64 timeout_ns) {
  __shared__ float wpart[2][32];  // warp partials of the sum of squares, by row parity
  __shared__ float bpart[2];      // this block's partial, read by every block of the cluster, by row parity
  u32* ctrl = (u32*)peers.p[rank];
  constexpr int N = Ty<DT>::N;
  const u64 row_pk = hidden / N;
  const u64 npk = rows * row_pk;
  const u32 C = cluster_nctarank(), slice = cluster_ctarank();
  const u32 T = blockDim.x;
  if ((u64)C * T < row_pk) __trap();  // launched without (large enough) clusters: packets would be skipped
  const u64 c = (u64)slice * T + threadIdx.x;  // this thread's packet of the row
  const bool has = c < row_pk;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = (T + 31) / 32;
  Pk wt;
  if (has) wt = load_packet<DT>(weight, c, row_pk * N);
  u32 epoch = 0, buf = 0;
  u64 k = 0;
  for (u64 row = cluster_id_x(); row < rows; row += cluster_count_x(), ++k) {
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
      Ty<DT>::sanitize(mine);  // the value every rank sums for us (peers get the same bits)
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
      store_packet<DT>(residual_out, p, npk * N, h);  // before the barriers: off the reduction's path
    }
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xFFFFFFFFu, ss, o);
    if (lane == 0) wpart[k & 1][warp] = ss;
    __syncthreads();
    if (warp == 0) {
      float t = lane < nwarps ? wpart[k & 1][lane] : 0.f;
      #pragma unroll
      for (int o = 16; o > 0; o >>= 1) t += __shfl_xor_sync(0xFFFFFFFFu, t, o);
      if (lane == 0) bpart[k & 1] = t;
    }
    if (k > 0) cluster_wait();  // completes the previous row's after-read phase (arrive below)
    cluster_arrive();
    cluster_wait();  // every block of the cluster has published this row's partial
    // lane j reads block j's partial (C <= 8 <= 32 lanes); summed in block order 0..C-1 by every thread
    const float v = (u32)lane < C ? ld_dsmem_f32(&bpart[k & 1], (u32)lane) : 0.f;
    float t = 0.f;
    for (u32 j = 0; j < C; ++j) t += __shfl_sync(0xFFFFFFFFu, v, (int)j);
    cluster_arrive();  // this thread is done reading its siblings' shared memory for this row
    const float inv = rsqrtf(t / (float)hidden + eps);
    if (has) {
      Pk o;
      #pragma unroll
      for (int i = 0; i < N; ++i) Ty<DT>::set(o, i, Ty<DT>::get(h, i) * inv * Ty<DT>::get(wt, i));
      store_packet<DT>(out, p, npk * N, o);
    }
  }
  if (k == 0) epoch = read_epoch(ctrl);  // a cluster without rows: never launched so (clusters <= rows)
  finish_epoch(ctrl, epoch, (u32)npk);
  if (k > 0) cluster_wait();  // no block exits while a sibling may still read its partial (DSMEM rule)
}

#define DEFINE(DT, SUFFIX)                                                                                    \
  extern "C" __global__ void __launch_bounds__(1024) allreduce_fused_rmsnorm_cluster_##SUFFIX(                \
      const void* in, const void* residual, const void* weight, void* out, void* residual_out, u64 rows,      \
      u64 hidden, float eps, Peers peers, u32 rank, u32 world, u64 slot_bytes, u32* status, u64 timeout_ns) { \
    fused_cluster<DT>(in, residual, weight, out, residual_out, rows, hidden, eps, peers, rank, world,        \
                      slot_bytes, status, timeout_ns);                                                        \
  }
DEFINE(0, f32)
DEFINE(1, f16)
DEFINE(2, bf16)
"""
)
