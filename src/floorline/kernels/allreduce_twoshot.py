"""Two-shot push all-reduce (Lamport protocol), for messages where one-shot's (world - 1) x traffic
per rank costs more than a second round trip.

Rank j owns chunk j (`chunk` packets, the last one shorter). Shot 1 (reduce-scatter): every rank
pushes chunk j of its input into slot `rank`, packets [0, chunk), of rank j's current buffer. Rank j
waits for all `world` contributions, sums them in rank order in fp32, rounds once, and in shot 2
(all-gather) pushes the result into slot j, packets [chunk, 2 * chunk), of every peer's buffer. Each
rank then copies the other chunks out as they land. Each rank sends 2 * (world - 1) / world of the
message instead of world - 1 times it.
"""

from __future__ import annotations

from floorline.kernels.allreduce_lamport import PRELUDE

NAME = "allreduce_twoshot"
THREADS = 512

SOURCE = (
    PRELUDE
    + r"""
template <int DT>
__device__ __forceinline__ void twoshot(const void* in, void* out, u64 n, Peers peers, u32 rank, u32 world,
                                        u64 slot_bytes, u32* status, u64 timeout_ns) {
  u32* ctrl = (u32*)peers.p[rank];
  const u32 epoch = read_epoch(ctrl);
  const u32 buf = epoch % N_BUFFERS;
  const u32 prev = (epoch + 2) % N_BUFFERS;
  const u32 prev_dirty = ctrl[CTRL_DIRTY + prev];
  constexpr int N = Ty<DT>::N;
  const u64 npk = (n + N - 1) / N;
  const u64 chunk = (npk + world - 1) / world;
  const u64 tid = (u64)blockIdx.x * blockDim.x + threadIdx.x;
  const u64 nthreads = (u64)gridDim.x * blockDim.x;

  // shot 1: packet p goes to its owner's slot `rank`
  for (u64 p = tid; p < npk; p += nthreads) {
    Pk v = load_packet<DT>(in, p, n);
    Ty<DT>::sanitize(v);
    u32 owner = (u32)(p / chunk);
    st_volatile((Pk*)slot_ptr(peers.p[owner], buf, rank, world, slot_bytes) + (p - owner * chunk), v);
  }
  clear_previous(peers.p[rank], prev, world, slot_bytes, prev_dirty, tid, nthreads);
  // reduce our chunk and push it to everyone (shot 2)
  const u64 lo = (u64)rank * chunk;
  const u64 hi = lo + chunk < npk ? lo + chunk : npk;
  for (u64 p = lo + tid; p < hi; p += nthreads) {
    float acc[N];
    #pragma unroll
    for (int i = 0; i < N; ++i) acc[i] = 0.f;
    for (u32 s = 0; s < world; ++s) {
      Pk v = wait_packet<DT>((const Pk*)slot_ptr(peers.p[rank], buf, s, world, slot_bytes) + (p - lo), ctrl, status,
                             timeout_ns, 1u + s);
      #pragma unroll
      for (int i = 0; i < N; ++i) acc[i] += Ty<DT>::get(v, i);
    }
    Pk r;
    #pragma unroll
    for (int i = 0; i < N; ++i) Ty<DT>::set(r, i, acc[i]);
    Ty<DT>::sanitize(r);  // a sum can overflow to inf but never to all-ones; keep the invariant anyway
    for (u32 k = 1; k < world; ++k) {
      u32 dst = (rank + k) % world;
      st_volatile((Pk*)slot_ptr(peers.p[dst], buf, rank, world, slot_bytes) + chunk + (p - lo), r);
    }
    store_packet<DT>(out, p, n, r);
  }
  // gather: copy the other ranks' reduced chunks out as they arrive
  for (u64 p = tid; p < npk; p += nthreads) {
    u32 owner = (u32)(p / chunk);
    if (owner == rank) continue;
    Pk v = wait_packet<DT>((const Pk*)slot_ptr(peers.p[rank], buf, owner, world, slot_bytes) + chunk +
                               (p - owner * chunk),
                           ctrl, status, timeout_ns, 0x100u + owner);
    store_packet<DT>(out, p, n, v);
  }
  finish_epoch(ctrl, epoch, (u32)(2 * chunk));
}

#define DEFINE(DT, SUFFIX)                                                                                    \
  extern "C" __global__ void __launch_bounds__(512) allreduce_twoshot_##SUFFIX(                               \
      const void* in, void* out, u64 n, Peers peers, u32 rank, u32 world, u64 slot_bytes, u32* status,        \
      u64 timeout_ns) {                                                                                        \
    twoshot<DT>(in, out, n, peers, rank, world, slot_bytes, status, timeout_ns);                              \
  }
DEFINE(0, f32)
DEFINE(1, f16)
DEFINE(2, bf16)
"""
)
