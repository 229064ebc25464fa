"""Capture what ran and on what: git, host, hardware, software. No host or user names."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

from floorline import __version__
from floorline.evidence.schema import GitInfo, HardwareInfo, HostInfo, SoftwareInfo

_ENV_PREFIXES = ("NCCL_", "TORCH_", "TRITON_", "NVSHMEM_", "CUDA_VISIBLE_DEVICES")


def _run(argv: list[str], cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / ".git").exists() or (parent / "pyproject.toml").exists() and (parent / "src").exists():
            return parent
    return Path.cwd()


@lru_cache(maxsize=1)
def git_info() -> GitInfo:
    # The environment wins where it is set: the device machine runs a copy of the working tree whose
    # .git can be stale (sessions 4-5 recorded an older HEAD, "dirty", for runs of a clean newer tree),
    # so the caller that knows the commit it shipped says so.
    root = repo_root()
    commit = os.environ.get("FLOORLINE_GIT_COMMIT") or _run(["git", "rev-parse", "HEAD"], cwd=root)
    if os.environ.get("FLOORLINE_GIT_DIRTY"):
        return GitInfo(commit=commit, dirty=os.environ["FLOORLINE_GIT_DIRTY"] == "1")
    status = _run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root)
    return GitInfo(commit=commit, dirty=None if status is None else bool(status))


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


@lru_cache(maxsize=1)
def host_info() -> HostInfo:
    return HostInfo(
        os=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count(),
    )


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def software_info() -> SoftwareInfo:
    """Versions of torch/triton (from their metadata if not imported: never imports torch itself)."""
    torch = sys.modules.get("torch")
    triton = sys.modules.get("triton")
    cuda = nccl = None
    if torch is not None:
        cuda = getattr(torch.version, "cuda", None)
        try:
            if torch.cuda.is_available() and hasattr(torch.cuda, "nccl"):
                v = torch.cuda.nccl.version()
                nccl = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
        except Exception:  # noqa: BLE001 - NCCL absent on CPU builds
            nccl = None
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith(_ENV_PREFIXES)}
    return SoftwareInfo(
        floorline=__version__,
        torch=getattr(torch, "__version__", None) if torch else _dist_version("torch"),
        triton=getattr(triton, "__version__", None) if triton else _dist_version("triton"),
        cuda=cuda,
        nccl=nccl,
        env=env,
    )


def hardware_info() -> HardwareInfo:
    """GPU facts if torch is already loaded with CUDA; an empty record otherwise."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return HardwareInfo()
    from floorline.gpu.probe import hardware_record

    return hardware_record()
