"""Clear refusals and timeouts: no peer access, stalled peers, bad calls (no GPU needed)."""

from __future__ import annotations

import pytest

from floorline.comm.communicator import describe_status
from floorline.comm.errors import P2PUnavailable
from floorline.comm.peer import require_peer_access


def test_missing_peer_access_is_refused_with_the_pair() -> None:
    with pytest.raises(P2PUnavailable, match=r"GPU 1 cannot access GPU 2.*refusing"):
        require_peer_access([0, 1, 2], lambda a, b: (a, b) != (1, 2))


def test_full_peer_access_passes() -> None:
    require_peer_access(list(range(8)), lambda a, b: True)


@pytest.mark.parametrize("code,needle", [(2, "rank 1's data"), (0x103, "rank 3's reduced chunk"),
                                         (0x200, "floor probe")])
def test_status_words_become_messages(code: int, needle: str) -> None:
    msg = describe_status(code, rank=0, timeout_s=2.0)
    assert needle in msg and "rank 0" in msg


def test_multicast_stays_off_in_process() -> None:
    import os

    import floorline.comm  # noqa: F401 - importing sets the defaults

    assert os.environ["NCCL_NVLS_ENABLE"] == "0"
    assert os.environ["TORCH_SYMM_MEM_DISABLE_MULTICAST"] == "1"
    assert os.environ["NVSHMEM_DISABLE_NVLS"] == "1"


def test_no_multicast_calls_in_our_sources() -> None:
    from pathlib import Path

    import floorline

    root = Path(floorline.__file__).parent
    for path in [*root.glob("comm/*.py"), *root.glob("kernels/allreduce_*.py"), root / "bench/allreduce.py"]:
        text = path.read_text()
        assert "cuMulticastCreate(" not in text and "multimem." not in text, path


def test_thread_nccl_availability_is_a_reason_or_none() -> None:
    """Thread mode's NCCL hand-off needs CuPy's NCCL binding; where it is missing the reason says so in
    one line (init_threads then keeps two-shot for large messages and puts the reason in nccl_note)."""
    from floorline.comm import thread_nccl

    reason = thread_nccl.unavailable_reason()
    try:
        import cupy  # noqa: F401
    except ImportError:
        assert reason is not None and "CuPy" in reason and "\n" not in reason
    else:
        assert reason is None or "\n" not in reason
