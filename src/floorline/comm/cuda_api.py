"""The few CUDA driver and NVRTC calls the communicator needs, through cuda-python (cuda.bindings).

Kernels are compiled once per process by NVRTC and loaded once per device; every error becomes a
CudaError naming the call. Nothing here allocates through torch: registered regions are plain
cuMemAlloc allocations, so their IPC handles cover exactly the region.
"""

from __future__ import annotations

import ctypes
import hashlib
import threading
from dataclasses import dataclass
from typing import Any

from floorline.comm.errors import CudaError

_lock = threading.Lock()
_cubins: dict[tuple[str, str], bytes] = {}
_modules: dict[tuple[int, str], Any] = {}
_functions: dict[tuple[int, str, str], Any] = {}
_contexts: dict[int, Any] = {}


def _bindings():
    try:
        from cuda.bindings import driver, nvrtc
    except ImportError as e:  # pragma: no cover - depends on the machine
        raise CudaError(
            "cuda-python (cuda.bindings) is not installed: `pip install cuda-bindings` to use the push kernels"
        ) from e
    return driver, nvrtc


def check(result: Any, what: str) -> Any:
    """cuda.bindings calls return (status, *values): raise on a non-zero status, return the values."""
    if not isinstance(result, tuple):
        result = (result,)
    err, *vals = result
    code = int(getattr(err, "value", err))
    if code != 0:
        name = getattr(err, "name", str(code))
        raise CudaError(f"{what} failed: {name} ({code})")
    if not vals:
        return None
    return vals[0] if len(vals) == 1 else tuple(vals)


def compile_source(source: str, name: str, arch: str) -> bytes:
    """NVRTC: CUDA C -> cubin for `arch` (e.g. 'sm_90'). Cached per process."""
    key = (hashlib.sha256(source.encode()).hexdigest(), arch)
    with _lock:
        if key in _cubins:
            return _cubins[key]
    _, nvrtc = _bindings()
    prog = check(nvrtc.nvrtcCreateProgram(source.encode(), f"{name}.cu".encode(), 0, [], []), "nvrtcCreateProgram")
    opts = [f"--gpu-architecture={arch}".encode(), b"-std=c++17", b"--use_fast_math", b"-default-device"]
    res = nvrtc.nvrtcCompileProgram(prog, len(opts), opts)
    code = int(getattr(res[0], "value", res[0]))
    if code != 0:
        size = check(nvrtc.nvrtcGetProgramLogSize(prog), "nvrtcGetProgramLogSize")
        log = b" " * size
        check(nvrtc.nvrtcGetProgramLog(prog, log), "nvrtcGetProgramLog")
        raise CudaError(f"NVRTC could not compile {name}: {log.decode(errors='replace').strip()[:2000]}")
    size = check(nvrtc.nvrtcGetCUBINSize(prog), "nvrtcGetCUBINSize")
    cubin = b" " * size
    check(nvrtc.nvrtcGetCUBIN(prog, cubin), "nvrtcGetCUBIN")
    check(nvrtc.nvrtcDestroyProgram(prog), "nvrtcDestroyProgram")
    with _lock:
        _cubins[key] = cubin
    return cubin


def nvrtc_version() -> str:
    _, nvrtc = _bindings()
    major, minor = check(nvrtc.nvrtcVersion(), "nvrtcVersion")
    return f"{major}.{minor}"


def context(device: int) -> Any:
    """The device's primary context (the one torch uses), made current on this thread."""
    driver, _ = _bindings()
    with _lock:
        ctx = _contexts.get(device)
        if ctx is None:
            check(driver.cuInit(0), "cuInit")
            dev = check(driver.cuDeviceGet(device), "cuDeviceGet")
            ctx = check(driver.cuDevicePrimaryCtxRetain(dev), "cuDevicePrimaryCtxRetain")
            _contexts[device] = ctx
    check(driver.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")
    return ctx


def function(device: int, source: str, module_name: str, kernel: str, arch: str) -> Any:
    key = (device, module_name, kernel)
    fn = _functions.get(key)
    if fn is not None:
        return fn
    driver, _ = _bindings()
    cubin = compile_source(source, module_name, arch)
    context(device)
    mkey = (device, hashlib.sha256(cubin).hexdigest())
    with _lock:
        mod = _modules.get(mkey)
        if mod is None:
            mod = check(driver.cuModuleLoadData(cubin), f"cuModuleLoadData({module_name})")
            _modules[mkey] = mod
        fn = check(driver.cuModuleGetFunction(mod, kernel.encode()), f"cuModuleGetFunction({kernel})")
        _functions[key] = fn
    return fn


def function_attributes(fn: Any) -> dict[str, int]:
    driver, _ = _bindings()
    a = driver.CUfunction_attribute
    return {
        "registers": check(driver.cuFuncGetAttribute(a.CU_FUNC_ATTRIBUTE_NUM_REGS, fn), "cuFuncGetAttribute"),
        "local_bytes": check(driver.cuFuncGetAttribute(a.CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES, fn), "cuFuncGetAttribute"),
        "shared_bytes": check(driver.cuFuncGetAttribute(a.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES, fn), "cuFuncGetAttribute"),
    }


@dataclass(frozen=True)
class Arg:
    """A kernel argument with its C type: 'u64', 'u32', 'f32' or 'peers' (8 x u64 by value)."""

    kind: str
    value: Any


def _ctype(arg: Arg) -> Any:
    if arg.kind == "u64":
        return ctypes.c_uint64(int(arg.value))
    if arg.kind == "u32":
        return ctypes.c_uint32(int(arg.value))
    if arg.kind == "f32":
        return ctypes.c_float(float(arg.value))
    if arg.kind == "peers":
        vals = [int(v) for v in arg.value] + [0] * (8 - len(arg.value))
        return (ctypes.c_uint64 * 8)(*vals)
    raise ValueError(f"unknown kernel argument kind {arg.kind!r}")


def launch(fn: Any, grid: int, block: int, stream: int, args: list[Arg], shared_bytes: int = 0) -> None:
    """cuLaunchKernel on a raw stream handle (torch's current stream: capturable in a CUDA graph)."""
    driver, _ = _bindings()
    objs = [_ctype(a) for a in args]
    ptrs = (ctypes.c_void_p * len(objs))(*[ctypes.addressof(o) for o in objs])
    check(
        driver.cuLaunchKernel(fn, grid, 1, 1, block, 1, 1, shared_bytes, driver.CUstream(stream), ctypes.addressof(ptrs), 0),
        "cuLaunchKernel",
    )


def _cluster_config(driver: Any, grid: int, cluster: int, block: int, stream: int, shared_bytes: int) -> Any:
    """CUlaunchConfig for a 1-D grid of `grid` blocks in clusters of `cluster` blocks along x (the layout of
    cuda.core's LaunchConfig(cluster=...): attrs is a list of CUlaunchAttribute, numAttrs its length)."""
    cfg = driver.CUlaunchConfig()
    cfg.gridDimX, cfg.gridDimY, cfg.gridDimZ = grid, 1, 1
    cfg.blockDimX, cfg.blockDimY, cfg.blockDimZ = block, 1, 1
    cfg.sharedMemBytes = shared_bytes
    cfg.hStream = driver.CUstream(stream)
    attr = driver.CUlaunchAttribute()
    attr.id = driver.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION
    dim = attr.value.clusterDim
    dim.x, dim.y, dim.z = cluster, 1, 1
    cfg.attrs = [attr]
    cfg.numAttrs = 1
    return cfg


def launch_cluster(fn: Any, grid: int, cluster: int, block: int, stream: int, args: list[Arg], what: str,
                   shared_bytes: int = 0) -> None:
    """cuLaunchKernelEx with CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION = (cluster, 1, 1): `grid` counts blocks
    and must be a multiple of `cluster`. Same stream handling as launch(), so it is captured into a CUDA
    graph like any launch (the graph's kernel node keeps the cluster dimension). `what` names the caller in
    the error (a GPU without clusters, before sm_90, refuses the launch)."""
    if cluster < 1 or grid < 1 or grid % cluster:
        raise ValueError(f"grid ({grid} blocks) must be a positive multiple of the cluster size ({cluster})")
    driver, _ = _bindings()
    objs = [_ctype(a) for a in args]
    ptrs = (ctypes.c_void_p * len(objs))(*[ctypes.addressof(o) for o in objs])
    cfg = _cluster_config(driver, grid, cluster, block, stream, shared_bytes)
    check(driver.cuLaunchKernelEx(cfg, fn, ctypes.addressof(ptrs), 0), f"cuLaunchKernelEx({what})")


def max_active_clusters(fn: Any, cluster: int, block: int, what: str, shared_bytes: int = 0) -> int:
    """cuOccupancyMaxActiveClusters: how many clusters of `cluster` blocks x `block` threads of `fn` can be
    resident at once on the current context's GPU (0: none fits)."""
    driver, _ = _bindings()
    cfg = _cluster_config(driver, cluster, cluster, block, 0, shared_bytes)
    return int(check(driver.cuOccupancyMaxActiveClusters(fn, cfg), f"cuOccupancyMaxActiveClusters({what})"))


def mem_alloc(nbytes: int) -> int:
    driver, _ = _bindings()
    return int(check(driver.cuMemAlloc(nbytes), f"cuMemAlloc({nbytes})"))


def mem_free(ptr: int) -> None:
    driver, _ = _bindings()
    check(driver.cuMemFree(ptr), "cuMemFree")


def memset8(ptr: int, value: int, nbytes: int) -> None:
    driver, _ = _bindings()
    check(driver.cuMemsetD8(ptr, value, nbytes), "cuMemsetD8")


def host_alloc_mapped(nbytes: int) -> tuple[int, int]:
    """Pinned host memory every context can write: (host pointer, device pointer)."""
    driver, _ = _bindings()
    flags = int(driver.CU_MEMHOSTALLOC_PORTABLE) | int(driver.CU_MEMHOSTALLOC_DEVICEMAP)
    host = int(check(driver.cuMemHostAlloc(nbytes, flags), "cuMemHostAlloc"))
    ctypes.memset(host, 0, nbytes)
    dev = int(check(driver.cuMemHostGetDevicePointer(host, 0), "cuMemHostGetDevicePointer"))
    return host, dev


def host_free(ptr: int) -> None:
    driver, _ = _bindings()
    check(driver.cuMemFreeHost(ptr), "cuMemFreeHost")


def ipc_handle(ptr: int) -> bytes:
    driver, _ = _bindings()
    return bytes(check(driver.cuIpcGetMemHandle(ptr), "cuIpcGetMemHandle").reserved)


def ipc_open(handle: bytes) -> int:
    driver, _ = _bindings()
    h = driver.CUipcMemHandle()
    h.reserved = handle
    flags = int(driver.CUipcMem_flags.CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS)
    return int(check(driver.cuIpcOpenMemHandle(h, flags), "cuIpcOpenMemHandle"))


def ipc_close(ptr: int) -> None:
    driver, _ = _bindings()
    check(driver.cuIpcCloseMemHandle(ptr), "cuIpcCloseMemHandle")


def can_access_peer(device: int, peer: int) -> bool:
    driver, _ = _bindings()
    check(driver.cuInit(0), "cuInit")
    a = check(driver.cuDeviceGet(device), "cuDeviceGet")
    b = check(driver.cuDeviceGet(peer), "cuDeviceGet")
    return bool(check(driver.cuDeviceCanAccessPeer(a, b), "cuDeviceCanAccessPeer"))


def enable_peer_access(device: int, peer: int) -> None:
    """Map `peer`'s memory into `device`'s context; 'already enabled' (torch may have done it) is fine."""
    driver, _ = _bindings()
    peer_ctx = context(peer)
    context(device)
    err = driver.cuCtxEnablePeerAccess(peer_ctx, 0)[0]
    if err not in (driver.CUresult.CUDA_SUCCESS, driver.CUresult.CUDA_ERROR_PEER_ACCESS_ALREADY_ENABLED):
        check((err,), f"cuCtxEnablePeerAccess({device} -> {peer})")


def ctx_synchronize(device: int) -> None:
    driver, _ = _bindings()
    context(device)
    check(driver.cuCtxSynchronize(), "cuCtxSynchronize")
