"""What the GPUs say about themselves: torch's device properties, NVML, and the link topology."""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from floorline.evidence.schema import GpuInfo, HardwareInfo


def _nvml() -> Any | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml
    except Exception:  # noqa: BLE001 - no driver, no NVML: fall back to torch only
        return None


def _nvidia_smi_topology() -> str | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "topo", "-m"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def gpu_records() -> list[dict[str, Any]]:
    """One dict per GPU, with every field the driver gives us (None where it says nothing)."""
    import torch

    nvml = _nvml()
    driver = None
    if nvml:
        try:
            driver = nvml.nvmlSystemGetDriverVersion()
        except Exception:  # noqa: BLE001
            driver = None
    records = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        rec: dict[str, Any] = {
            "index": i,
            "name": p.name,
            "compute_capability": f"{p.major}.{p.minor}",
            "sm_count": p.multi_processor_count,
            "memory_bytes": p.total_memory,
            "l2_bytes": getattr(p, "L2_cache_size", None),
            "max_sm_clock_mhz": None,
            "max_mem_clock_mhz": None,
            "driver": driver,
            "copy_engines": getattr(p, "async_engine_count", None),
            "max_shared_memory_per_block_optin": getattr(p, "shared_memory_per_block_optin", None),
            "regs_per_multiprocessor": getattr(p, "regs_per_multiprocessor", None),
        }
        if nvml:
            try:
                h = nvml.nvmlDeviceGetHandleByIndex(i)
                rec["max_sm_clock_mhz"] = nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_SM)
                rec["max_mem_clock_mhz"] = nvml.nvmlDeviceGetMaxClockInfo(h, nvml.NVML_CLOCK_MEM)
                rec["power_limit_w"] = nvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000.0
                rec["memory_bus_width_bits"] = nvml.nvmlDeviceGetMemoryBusWidth(h)
            except Exception:  # noqa: BLE001 - fields a VM's driver hides stay None
                pass
        records.append(rec)
    return records


def p2p_matrix() -> list[list[bool]]:
    import torch

    n = torch.cuda.device_count()
    return [[i == j or bool(torch.cuda.can_device_access_peer(i, j)) for j in range(n)] for i in range(n)]


def hardware_record() -> HardwareInfo:
    recs = gpu_records()
    gpus = [GpuInfo(**{k: r[k] for k in GpuInfo.model_fields}) for r in recs]
    return HardwareInfo(gpu_count=len(gpus), gpus=gpus, topology=_nvidia_smi_topology(), p2p=p2p_matrix())


def device_slug() -> str:
    """results/<slug>/: 'nvidia-h200', 'nvidia-h200-x2', or 'cpu'."""
    if not cuda_available():
        return "cpu"
    import torch

    from floorline.evidence.store import slug

    n = torch.cuda.device_count()
    base = slug(torch.cuda.get_device_name(0))
    base = base.replace("-80gb-hbm3", "").replace("-nvl", "")
    return base if n == 1 else f"{base}-x{n}"


def probe() -> dict[str, Any]:
    """Everything `floorline device` shows, as plain data."""
    import torch

    out: dict[str, Any] = {
        "cuda_available": torch.cuda.is_available(),
        "torch": torch.__version__,
        "cuda_runtime": torch.version.cuda,
    }
    if not torch.cuda.is_available():
        out["reason"] = "torch.cuda.is_available() is False (no GPU or no driver)"
        return out
    out["gpus"] = gpu_records()
    out["p2p"] = p2p_matrix()
    out["topology"] = _nvidia_smi_topology()
    try:
        out["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
    except Exception:  # noqa: BLE001
        out["nccl"] = None
    return out
