"""floorline.comm: our own push all-reduce for tensor-parallel decode (see docs/allreduce.md).

    from floorline.comm import init_process, init_threads, CommConfig
    comm = init_process()                      # one process per GPU; torch.distributed already initialised
    comms = init_threads([0, 1])               # one process, one host thread, every GPU
    y = comm.all_reduce(x)
    out, residual = comm.all_reduce_residual_rmsnorm(x, residual, weight, eps)

NVLink multicast stays off in this process: the defaults below are set before any communicator (ours,
NCCL's or torch's symmetric memory) is created, and nothing here calls cuMulticastCreate.
"""

import os

for _k in ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS"):
    os.environ.setdefault(_k, "0" if _k == "NCCL_NVLS_ENABLE" else "1")

from floorline.comm.communicator import CommConfig, Communicator  # noqa: E402
from floorline.comm.errors import CommError, CommTimeout, CudaError, P2PUnavailable  # noqa: E402
from floorline.comm.process import init_process  # noqa: E402
from floorline.comm.thread import init_threads  # noqa: E402

__all__ = [
    "CommConfig",
    "CommError",
    "CommTimeout",
    "Communicator",
    "CudaError",
    "P2PUnavailable",
    "init_process",
    "init_threads",
]
