"""One-shot push all-reduce (Lamport protocol): each rank writes its whole input into every peer's
receive slot over NVLink, then sums the `world` contributions locally in rank order (fp32), so every
rank gets bit-identical results. One round of communication, no barrier, no flag: the data is the flag.

Floor: one NVLink one-way latency + one kernel slot + (world - 1) * bytes / link bandwidth.
Launch through `floorline.comm.Communicator.all_reduce(x, algorithm="oneshot")`.
"""

from __future__ import annotations

from floorline.kernels.allreduce_lamport import PRELUDE

NAME = "allreduce_oneshot"
THREADS = 512

SOURCE = (
    PRELUDE
    + r"""
// wait for every peer's packet p, sum in rank order in fp32 (identical on every rank), store
template <int DT>
__device__ __forceinline__ void reduce_packet(const Pk& mine, void* out, u64 p, u64 n, const Peers& peers, u32 rank,
                                              u32 world, u32 buf, u64 slot_bytes, u32* ctrl, u32* status,
                                              u64 timeout_ns) {
  constexpr int N = Ty<DT>::N;
  float acc[N];
  sum_ranks<DT>(mine, p, peers, rank, world, buf, slot_bytes, ctrl, status, timeout_ns, acc);
  Pk r;
  #pragma unroll
  for (int i = 0; i < N; ++i) Ty<DT>::set(r, i, acc[i]);
  store_packet<DT>(out, p, n, r);
}

template <int DT>
__device__ __forceinline__ void oneshot(const void* in, void* out, u64 n, Peers peers, u32 rank, u32 world,
                                        u64 slot_bytes, u32* status, u64 timeout_ns) {
  u32* ctrl = (u32*)peers.p[rank];
  constexpr int N = Ty<DT>::N;
  const u64 npk = (n + N - 1) / N;
  const u64 tid = (u64)blockIdx.x * blockDim.x + threadIdx.x;
  const u64 nthreads = (u64)gridDim.x * blockDim.x;
  Pk mine;
  const bool one = npk <= nthreads, has = tid < npk;
  // the input load is issued before the epoch load (which is volatile and orders what follows), so
  // the two memory latencies overlap instead of adding up
  if (one && has) mine = load_packet<DT>(in, tid, n);
  const u32 epoch = read_epoch(ctrl);
  const u32 buf = epoch % N_BUFFERS;
  const u32 prev = (epoch + 2) % N_BUFFERS;
  const u32 prev_dirty = ctrl[CTRL_DIRTY + prev];

  if (one) {
    // at most one packet per thread (every decode-sized message): it stays in registers from the push
    // to the sum, and the clear runs while the packet crosses the fabric
    if (has) {
      Ty<DT>::sanitize(mine);
      for (u32 k = 1; k < world; ++k) {
        u32 dst = (rank + k) % world;  // stagger so ranks do not all hit the same peer first
        st_volatile((Pk*)slot_ptr(peers.p[dst], buf, rank, world, slot_bytes) + tid, mine);
      }
    }
    clear_previous(peers.p[rank], prev, world, slot_bytes, prev_dirty, tid, nthreads);
    if (has) reduce_packet<DT>(mine, out, tid, n, peers, rank, world, buf, slot_bytes, ctrl, status, timeout_ns);
  } else {
    // push: our packets into slot `rank` of every peer's current buffer
    for (u64 p = tid; p < npk; p += nthreads) {
      Pk v = load_packet<DT>(in, p, n);
      Ty<DT>::sanitize(v);
      for (u32 k = 1; k < world; ++k) {
        u32 dst = (rank + k) % world;
        st_volatile((Pk*)slot_ptr(peers.p[dst], buf, rank, world, slot_bytes) + p, v);
      }
    }
    clear_previous(peers.p[rank], prev, world, slot_bytes, prev_dirty, tid, nthreads);
    for (u64 p = tid; p < npk; p += nthreads) {
      Pk mine = load_packet<DT>(in, p, n);
      Ty<DT>::sanitize(mine);
      reduce_packet<DT>(mine, out, p, n, peers, rank, world, buf, slot_bytes, ctrl, status, timeout_ns);
    }
  }
  finish_epoch(ctrl, epoch, (u32)npk);
}

#define DEFINE(DT, SUFFIX)                                                                                    \
  extern "C" __global__ void __launch_bounds__(512) allreduce_oneshot_##SUFFIX(                               \
      const void* in, void* out, u64 n, Peers peers, u32 rank, u32 world, u64 slot_bytes, u32* status,        \
      u64 timeout_ns) {                                                                                        \
    oneshot<DT>(in, out, n, peers, rank, world, slot_bytes, status, timeout_ns);                              \
  }
DEFINE(0, f32)
DEFINE(1, f16)
DEFINE(2, bf16)
"""
)
