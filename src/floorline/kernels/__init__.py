"""Our kernels: one op per file (a @triton.jit kernel or NVRTC source plus a small launcher)."""
