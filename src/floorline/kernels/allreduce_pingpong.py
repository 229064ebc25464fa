"""The fabric floor probe: a GPU<->GPU flag ping-pong over NVLink, one thread on each side.

The initiator writes round i into the responder's flag word with a system-scope release store and
spins (acquire) until the responder echoes i back into its own flag word. round trips / 2 is the
one-way latency that any all-reduce pays at least once. Flag values continue from `base`, so the
words never need resetting and a stale value from an earlier probe can never satisfy a wait.
"""

from __future__ import annotations

from floorline.kernels.allreduce_lamport import PRELUDE

NAME = "allreduce_pingpong"
FLAG_OFFSET = 128  # bytes into a rank's control block

SOURCE = (
    PRELUDE
    + r"""
#define FLAG_OFFSET 128

__device__ __forceinline__ void st_release_sys_u64(u64* p, u64 v) {
  asm volatile("st.release.sys.global.u64 [%0], %1;" :: "l"(p), "l"(v) : "memory");
}
__device__ __forceinline__ u64 ld_acquire_sys_u64(const u64* p) {
  u64 v;
  asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}

// role 0 initiates, role 1 answers; own/peer are region bases (control block first).
extern "C" __global__ void allreduce_pingpong(u64 own, u64 peer, u32 role, u64 base, u32 rounds, u32* status,
                                              u64 timeout_ns) {
  if (threadIdx.x != 0 || blockIdx.x != 0) return;
  u64* mine = (u64*)(own + FLAG_OFFSET);
  u64* theirs = (u64*)(peer + FLAG_OFFSET);
  const u64 t0 = globaltimer();
  for (u32 i = 1; i <= rounds; ++i) {
    const u64 v = base + i;
    if (role == 0) st_release_sys_u64(theirs, v);
    for (u32 spin = 1; ld_acquire_sys_u64(mine) < v; ++spin) {
      if (spin % 256 == 0 && globaltimer() - t0 > timeout_ns) { st_sys_u32(status, 0x200u); return; }
    }
    if (role == 1) st_release_sys_u64(theirs, v);
  }
}
"""
)
