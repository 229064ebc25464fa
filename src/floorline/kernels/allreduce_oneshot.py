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
template <int DT>
__device__ __forceinline__ void oneshot(const void* in, void* out, u64 n, Peers peers, u32 rank, u32 world,
                                        u64 slot_bytes, u32* status, u64 timeout_ns) {
  u32* ctrl = (u32*)peers.p[rank];
  const u32 epoch = ld_volatile_u32(ctrl + CTRL_EPOCH);
  const u32 buf = epoch % N_BUFFERS;
  const u32 prev = (epoch + 2) % N_BUFFERS;
  const u32 prev_dirty = ctrl[CTRL_DIRTY + prev];
  constexpr int N = Ty<DT>::N;
  const u64 npk = (n + N - 1) / N;
  const u64 tid = (u64)blockIdx.x * blockDim.x + threadIdx.x;
  const u64 nthreads = (u64)gridDim.x * blockDim.x;

  // push: our packets into slot `rank` of every peer's current buffer
  for (u64 p = tid; p < npk; p += nthreads) {
    Pk v = load_packet<DT>(in, p, n);
    Ty<DT>::sanitize(v);
    for (u32 k = 1; k < world; ++k) {
      u32 dst = (rank + k) % world;  // stagger so ranks do not all hit the same peer first
      st_volatile((Pk*)slot_ptr(peers.p[dst], buf, rank, world, slot_bytes) + p, v);
    }
  }
  // clear the previous epoch's buffer while the peers' packets are in flight
  clear_previous(peers.p[rank], prev, world, slot_bytes, prev_dirty, tid, nthreads);
  // reduce: wait for every peer's packet, sum in rank order in fp32
  for (u64 p = tid; p < npk; p += nthreads) {
    Pk mine = load_packet<DT>(in, p, n);
    Ty<DT>::sanitize(mine);
    float acc[N];
    #pragma unroll
    for (int i = 0; i < N; ++i) acc[i] = 0.f;
    for (u32 s = 0; s < world; ++s) {
      Pk v = s == rank ? mine
                       : wait_packet<DT>((const Pk*)slot_ptr(peers.p[rank], buf, s, world, slot_bytes) + p, ctrl,
                                         status, timeout_ns, 1u + s);
      #pragma unroll
      for (int i = 0; i < N; ++i) acc[i] += Ty<DT>::get(v, i);
    }
    Pk r;
    #pragma unroll
    for (int i = 0; i < N; ++i) Ty<DT>::set(r, i, acc[i]);
    store_packet<DT>(out, p, n, r);
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
