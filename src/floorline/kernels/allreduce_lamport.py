"""CUDA C shared by the all-reduce kernels: 16-byte packets, the Lamport sentinel, dtype access.

Not an op. The all-reduce kernels (`allreduce_oneshot`, `allreduce_twoshot`,
`allreduce_fused_rmsnorm`) paste this prelude in front of their own source before NVRTC compiles it.

The protocol (see docs/allreduce.md and floorline.comm.protocol, which holds the same arithmetic in
Python so CPU tests can check it):
- Every rank owns one registered region: a 256-byte control block, then 3 Lamport buffers, each
  `world` slots of `slot_bytes`. Peers write into it over NVLink; only its owner reads it.
- The data is the flag: a receive slot is pre-filled with an all-ones bit pattern (a NaN in every
  dtype, so one memset clears buffers for bf16, fp16 and fp32 alike). A sender replaces an all-ones
  element by the canonical NaN, so a real value never looks empty. A reader spins on 16-byte
  volatile loads until no element in the packet is all-ones.
- Epoch e uses buffer e % 3 and clears buffer (e + 2) % 3 (used at e - 1) off the critical path.
  A peer can only write buffer (e + 2) % 3 again at epoch e + 2, which needs our epoch e + 1 data,
  which we send after this kernel ends: three buffers make that clear race-free with no barrier.
- The epoch lives in device memory (ctrl word 0); the last block to finish bumps it, so graph
  replays and back-to-back calls advance it with no host involvement. (Opt-in replicated scheme,
  compiled with FL_EPOCH_REPLICAS: one copy per block index and no arrival ticket; see finish_epoch.) It is stored modulo 3: a plain
  u32 count would wrap after 2^32 calls (days of decode) onto a buffer index used the call before.
- No fences anywhere (a __threadfence after NVLink stores waits for their acknowledgements, a full round
  trip). What orders memory instead, and what the CPU model (tests/comm/lamport_sim.py, delayed-store
  mode) checks: (1) a reader accepts a packet only when none of its 32-bit words is all-ones; 32-bit
  words are single-copy atomic, so a half-landed 16-byte packet reads as not ready, never as torn data;
  (2) a kernel's stores (pushes to peers, clears of our own buffer) may land in any order while it runs,
  but all have landed when it ends, before the next kernel on that stream starts (the kernel boundary);
  (3) a peer writes buffer b again only two epochs after we cleared it, and only after seeing data we sent
  from a later kernel, so our clear has landed first. The epoch/dirty words are read only by the next
  kernel on the same GPU (kernel boundary); within a kernel, every block has consumed the epoch (its
  pushes use it) before its __syncthreads and arrival ticket, so the last block's bump is never seen by
  a block of the same kernel.
- A reader that waits longer than `timeout_ns` sets the abort word, writes a code into the
  host-mapped status word and gives up, so a stalled peer becomes an error instead of a hang.
"""

PRELUDE = r"""
typedef unsigned int u32;
typedef unsigned short u16;
typedef unsigned long long u64;

#define MAX_WORLD 8
#ifndef CTRL_BYTES
#define CTRL_BYTES 256  // the replicated-epoch variant compiles with 1024 (room for its replicas)
#endif
#define N_BUFFERS 3
// ctrl block word offsets (u32 index)
#define CTRL_EPOCH 0
#define CTRL_ARRIVE 1
#define CTRL_ABORT 2
#define CTRL_DIRTY 4   // 3 words: dirty packets per slot, per buffer
#define CTRL_REPLICA 64  // replicated-epoch variant: words 64 .. 64 + MAX_REPLICAS, one epoch copy per block index
#define MAX_REPLICAS 192

struct __align__(16) Pk { u32 w[4]; };

struct Peers { u64 p[MAX_WORLD]; };

__device__ __forceinline__ Pk ld_volatile(const void* p) {
  Pk r;
  asm volatile("ld.volatile.global.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.w[0]), "=r"(r.w[1]), "=r"(r.w[2]), "=r"(r.w[3]) : "l"(p) : "memory");
  return r;
}
__device__ __forceinline__ void st_volatile(void* p, const Pk& v) {
  asm volatile("st.volatile.global.v4.u32 [%0], {%1,%2,%3,%4};"
               :: "l"(p), "r"(v.w[0]), "r"(v.w[1]), "r"(v.w[2]), "r"(v.w[3]) : "memory");
}
__device__ __forceinline__ u32 ld_volatile_u32(const u32* p) {
  u32 r;
  asm volatile("ld.volatile.global.u32 %0, [%1];" : "=r"(r) : "l"(p) : "memory");
  return r;
}
__device__ __forceinline__ void st_volatile_u32(u32* p, u32 v) {
  asm volatile("st.volatile.global.u32 [%0], %1;" :: "l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ void st_sys_u32(u32* p, u32 v) {
  // host-mapped status word: system scope so the host sees it without a device sync
  asm volatile("st.relaxed.sys.global.u32 [%0], %1;" :: "l"(p), "r"(v) : "memory");
}
__device__ __forceinline__ u64 globaltimer() {
  u64 t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__device__ __forceinline__ Pk empty_packet() { Pk p; p.w[0] = p.w[1] = p.w[2] = p.w[3] = 0xFFFFFFFFu; return p; }

// ---- dtype access: DT 0 = fp32, 1 = fp16, 2 = bf16 ----
template <int DT> struct Ty;

template <> struct Ty<0> {
  static constexpr int N = 4;
  static __device__ __forceinline__ float get(const Pk& p, int i) { return __uint_as_float(p.w[i]); }
  static __device__ __forceinline__ void set(Pk& p, int i, float v) { p.w[i] = __float_as_uint(v); }
  static __device__ __forceinline__ bool ready(const Pk& p) {
    return (p.w[0] != 0xFFFFFFFFu) & (p.w[1] != 0xFFFFFFFFu) & (p.w[2] != 0xFFFFFFFFu) & (p.w[3] != 0xFFFFFFFFu);
  }
  static __device__ __forceinline__ void sanitize(Pk& p) {
    #pragma unroll
    for (int i = 0; i < 4; ++i) if (p.w[i] == 0xFFFFFFFFu) p.w[i] = 0x7FC00000u;
  }
  static __device__ __forceinline__ float load_elem(const void* base, u64 i) { return ((const float*)base)[i]; }
  static __device__ __forceinline__ u32 load_bits(const void* base, u64 i) { return ((const u32*)base)[i]; }
  static __device__ __forceinline__ void store_elem(void* base, u64 i, float v) { ((float*)base)[i] = v; }
  static __device__ __forceinline__ void set_bits(Pk& p, int i, u32 b) { p.w[i] = b; }
  static __device__ __forceinline__ float round(float v) { return v; }
};

__device__ __forceinline__ float h2f(u16 h) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ u16 f2h(float f) { u16 h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }
__device__ __forceinline__ float b2f(u16 h) { return __uint_as_float(((u32)h) << 16); }
__device__ __forceinline__ u16 f2b(float f) { u16 h; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h; }

template <int DT> struct Half {
  static constexpr int N = 8;
  static __device__ __forceinline__ u16 bits(const Pk& p, int i) { return (u16)(p.w[i >> 1] >> ((i & 1) * 16)); }
  static __device__ __forceinline__ float cvt(u16 h) { return DT == 1 ? h2f(h) : b2f(h); }
  static __device__ __forceinline__ u16 back(float f) { return DT == 1 ? f2h(f) : f2b(f); }
  static __device__ __forceinline__ float get(const Pk& p, int i) { return cvt(bits(p, i)); }
  static __device__ __forceinline__ void set_bits(Pk& p, int i, u32 b) {
    u32 sh = (i & 1) * 16;
    p.w[i >> 1] = (p.w[i >> 1] & ~(0xFFFFu << sh)) | ((b & 0xFFFFu) << sh);
  }
  static __device__ __forceinline__ void set(Pk& p, int i, float v) { set_bits(p, i, back(v)); }
  static __device__ __forceinline__ bool ready(const Pk& p) {
    bool ok = true;
    #pragma unroll
    for (int i = 0; i < 4; ++i) ok &= ((p.w[i] & 0xFFFFu) != 0xFFFFu) & ((p.w[i] >> 16) != 0xFFFFu);
    return ok;
  }
  static __device__ __forceinline__ void sanitize(Pk& p) {
    const u32 nan = DT == 1 ? 0x7E00u : 0x7FC0u;
    #pragma unroll
    for (int i = 0; i < 4; ++i) {
      if ((p.w[i] & 0xFFFFu) == 0xFFFFu) p.w[i] = (p.w[i] & 0xFFFF0000u) | nan;
      if ((p.w[i] >> 16) == 0xFFFFu) p.w[i] = (p.w[i] & 0x0000FFFFu) | (nan << 16);
    }
  }
  static __device__ __forceinline__ float load_elem(const void* base, u64 i) { return cvt(((const u16*)base)[i]); }
  static __device__ __forceinline__ u32 load_bits(const void* base, u64 i) { return ((const u16*)base)[i]; }
  static __device__ __forceinline__ void store_elem(void* base, u64 i, float v) { ((u16*)base)[i] = back(v); }
  static __device__ __forceinline__ float round(float v) { return cvt(back(v)); }
};
template <> struct Ty<1> : Half<1> {};
template <> struct Ty<2> : Half<2> {};

// Packet p of an n-element array: a vector load when whole, element loads with zero padding at the tail.
template <int DT> __device__ __forceinline__ Pk load_packet(const void* base, u64 p, u64 n) {
  constexpr int N = Ty<DT>::N;
  Pk v;
  if ((p + 1) * N <= n) {
    uint4 q = ((const uint4*)base)[p];
    v.w[0] = q.x; v.w[1] = q.y; v.w[2] = q.z; v.w[3] = q.w;
  } else {
    v.w[0] = v.w[1] = v.w[2] = v.w[3] = 0u;
    for (int i = 0; i < N; ++i) if (p * N + i < n) Ty<DT>::set_bits(v, i, Ty<DT>::load_bits(base, p * N + i));
  }
  return v;
}
template <int DT> __device__ __forceinline__ void store_packet(void* base, u64 p, u64 n, const Pk& v) {
  constexpr int N = Ty<DT>::N;
  if ((p + 1) * N <= n) {
    ((uint4*)base)[p] = make_uint4(v.w[0], v.w[1], v.w[2], v.w[3]);
  } else {
    for (int i = 0; i < N; ++i) if (p * N + i < n) Ty<DT>::store_elem(base, p * N + i, Ty<DT>::get(v, i));
  }
}

__device__ __forceinline__ char* slot_ptr(u64 region_base, u32 buf, u32 slot, u32 world, u64 slot_bytes) {
  return (char*)region_base + CTRL_BYTES + ((u64)buf * world + slot) * slot_bytes;
}

// Spin until packet at p is no longer empty. On timeout: mark abort + status and return what was read.
template <int DT> __device__ __forceinline__ Pk wait_packet(const void* p, u32* ctrl, u32* status, u64 timeout_ns,
                                                           u32 code) {
  Pk v = ld_volatile(p);
  if (Ty<DT>::ready(v)) return v;
  u64 t0 = globaltimer();
  for (u32 spin = 1;; ++spin) {
    v = ld_volatile(p);
    if (Ty<DT>::ready(v)) return v;
    if (spin % 64) continue;  // the abort word and the clock are checked off the hot path
    if (ld_volatile_u32(ctrl + CTRL_ABORT)) return v;
    if (globaltimer() - t0 > timeout_ns) {
      st_volatile_u32(ctrl + CTRL_ABORT, 1u);
      st_sys_u32(status, code);
      return v;
    }
  }
}

// Push this rank's (sanitized) packet p into its slot of every peer's current buffer. Peers are visited
// starting after our own rank so the ranks do not all hit the same peer first.
__device__ __forceinline__ void push_packet(const Pk& mine, u64 p, const Peers& peers, u32 rank, u32 world,
                                            u32 buf, u64 slot_bytes) {
  for (u32 j = 1; j < world; ++j) {
    u32 dst = (rank + j) % world;
    st_volatile((Pk*)slot_ptr(peers.p[dst], buf, rank, world, slot_bytes) + p, mine);
  }
}

// The ranks' packets p summed in fp32 in rank order 0..w-1 into acc (every rank gets the same bits); our own
// packet comes from registers, the peers' from our receive slots once they have landed.
template <int DT>
__device__ __forceinline__ void sum_ranks(const Pk& mine, u64 p, const Peers& peers, u32 rank, u32 world, u32 buf,
                                          u64 slot_bytes, u32* ctrl, u32* status, u64 timeout_ns,
                                          float (&acc)[Ty<DT>::N]) {
  #pragma unroll
  for (int i = 0; i < Ty<DT>::N; ++i) acc[i] = 0.f;
  for (u32 s = 0; s < world; ++s) {
    Pk v = s == rank ? mine
                     : wait_packet<DT>((const Pk*)slot_ptr(peers.p[rank], buf, s, world, slot_bytes) + p, ctrl,
                                       status, timeout_ns, 1u + s);
    #pragma unroll
    for (int i = 0; i < Ty<DT>::N; ++i) acc[i] += Ty<DT>::get(v, i);
  }
}

// The fused kernels' new residual for packet p: the rank-ordered sum plus the residual, rounded to the I/O
// dtype; its squares are added to ss.
template <int DT>
__device__ __forceinline__ Pk sum_ranks_plus_residual(const Pk& mine, const Pk& res, u64 p, const Peers& peers,
                                                      u32 rank, u32 world, u32 buf, u64 slot_bytes, u32* ctrl,
                                                      u32* status, u64 timeout_ns, float& ss) {
  float acc[Ty<DT>::N];
  sum_ranks<DT>(mine, p, peers, rank, world, buf, slot_bytes, ctrl, status, timeout_ns, acc);
  Pk h;
  #pragma unroll
  for (int i = 0; i < Ty<DT>::N; ++i) {
    float x = Ty<DT>::round(acc[i] + Ty<DT>::get(res, i));
    Ty<DT>::set(h, i, x);
    ss += x * x;
  }
  return h;
}

// Clear the buffer used by the previous epoch: `dirty` packets in each of the world slots.
__device__ __forceinline__ void clear_previous(u64 own_base, u32 prev_buf, u32 world, u64 slot_bytes, u32 dirty,
                                               u64 tid, u64 nthreads) {
  const Pk e = empty_packet();
  const u64 total = (u64)dirty * world;
  for (u64 i = tid; i < total; i += nthreads) {
    u32 s = (u32)(i / dirty);
    u64 q = i - (u64)s * dirty;
    Pk* dst = (Pk*)slot_ptr(own_base, prev_buf, s, world, slot_bytes) + q;
    *dst = e;
  }
}

// The epoch this block works in. Default (ticket) scheme: one word, bumped by the last block to arrive.
// Replicated scheme (FL_EPOCH_REPLICAS): block b reads its own copy, word CTRL_REPLICA + b.
__device__ __forceinline__ u32 read_epoch(const u32* ctrl) {
#ifdef FL_EPOCH_REPLICAS
  return ld_volatile_u32(ctrl + CTRL_REPLICA + blockIdx.x);
#else
  return ld_volatile_u32(ctrl + CTRL_EPOCH);
#endif
}

#ifndef FL_EPOCH_REPLICAS
// Last block out advances the epoch and records how much of this epoch's buffer is dirty. No fences:
// only the next kernel reads these words and the kernel boundary orders them; a __threadfence here
// would also wait for the acknowledgements of this block's NVLink stores (a round trip) for nothing.
__device__ __forceinline__ void finish_epoch(u32* ctrl, u32 epoch, u32 dirty) {
  __syncthreads();  // every thread of the block has read the epoch
  if (threadIdx.x == 0) {
    const bool last = gridDim.x == 1 || atomicAdd(ctrl + CTRL_ARRIVE, 1u) == gridDim.x - 1;
    if (last) {
      ctrl[CTRL_DIRTY + epoch % N_BUFFERS] = dirty;
      if (gridDim.x > 1) ctrl[CTRL_ARRIVE] = 0u;
      st_volatile_u32(ctrl + CTRL_EPOCH, (epoch + 1u) % N_BUFFERS);  // kept mod 3: a u32 would wrap to a repeat
    }
  }
}
#else
// Replicated epochs: no grid-wide arrival ticket. Every launched block b advances the copies
// b, b + G, b + 2G, ... (G = gridDim.x) to epoch + 1, so all MAX_REPLICAS copies hold epoch + 1 when the
// kernel ends, whatever G the next kernel uses. Why no block of this kernel reads an advanced copy too
// early: block b's threads read only copy b (read_epoch), and copy b is written only by block b itself
// (the only writer i with i == b mod G and i < G is b), after its __syncthreads, i.e. after every thread
// of block b has read it. Copies b + kG (k >= 1) have index >= G: no block of this kernel reads them.
// Across kernels the kernel boundary orders these stores before the next kernel's reads (the same and
// only ordering the ticket scheme relied on). The dirty word of this epoch's buffer is written by block
// 0 alone: this kernel's blocks read only the dirty word of buffer (epoch + 2) % 3, a different word.
// Needs G <= MAX_REPLICAS (the communicator clamps its grids). The CPU model
// (tests/comm/lamport_sim.py, ReplicatedSim) checks this and catches the broken variants.
__device__ __forceinline__ void finish_epoch(u32* ctrl, u32 epoch, u32 dirty) {
  __syncthreads();  // every thread of this block has read copy blockIdx.x
  const u32 next = (epoch + 1u) % N_BUFFERS;
  if (blockIdx.x == 0 && threadIdx.x == 0) ctrl[CTRL_DIRTY + epoch % N_BUFFERS] = dirty;
  for (u32 i = blockIdx.x + gridDim.x * threadIdx.x; i < MAX_REPLICAS; i += gridDim.x * blockDim.x)
    st_volatile_u32(ctrl + CTRL_REPLICA + i, next);
}
#endif
"""
