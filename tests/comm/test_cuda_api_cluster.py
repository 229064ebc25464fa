"""The cluster launch path's configuration (cuda_api.launch_cluster), built without a GPU: cuda.bindings
structs only, no driver call (skipped where cuda-bindings is not installed)."""

from __future__ import annotations

import pytest


def _driver():
    try:
        from cuda.bindings import driver
    except ImportError as e:  # pragma: no cover - depends on the machine
        pytest.skip(f"cuda-bindings not installed: {e}")
    return driver


def test_cluster_config_carries_the_grid_block_and_cluster_dimension() -> None:
    from floorline.comm import cuda_api

    driver = _driver()
    cfg = cuda_api._cluster_config(driver, 132, 4, 128, 0, 0)
    assert (cfg.gridDimX, cfg.gridDimY, cfg.gridDimZ) == (132, 1, 1)  # blocks, not clusters
    assert (cfg.blockDimX, cfg.blockDimY, cfg.blockDimZ) == (128, 1, 1)
    assert cfg.sharedMemBytes == 0 and cfg.numAttrs == 1
    attr = cfg.attrs[0]
    assert attr.id == driver.CUlaunchAttributeID.CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION
    assert (attr.value.clusterDim.x, attr.value.clusterDim.y, attr.value.clusterDim.z) == (4, 1, 1)


@pytest.mark.parametrize("grid,cluster", [(6, 4), (8, 0), (0, 4)])
def test_launch_cluster_refuses_a_grid_that_is_not_whole_clusters(grid: int, cluster: int) -> None:
    from floorline.comm import cuda_api

    _driver()
    with pytest.raises(ValueError, match="multiple of the cluster size"):
        cuda_api.launch_cluster(None, grid, cluster, 128, 0, [], "test")


def test_cluster_bound_by_threads_and_a_refused_shape_names_the_variant() -> None:
    """Communicator._max_clusters: shapes of <= 128 threads take the 128-thread bound, wider ones the
    1024-thread bound (both asked at creation); a shape whose query gave 0 or failed raises a CommError
    naming the variant. (Built without __init__: no GPU here.)"""
    from floorline.comm.communicator import Communicator
    from floorline.comm.errors import CommError

    c = Communicator.__new__(Communicator)
    c.rank, c.arch = 0, "sm_90"
    c._cluster_occupancy = {("bfloat16", 128): 33, ("bfloat16", 1024): 0}
    c._cluster_refused = {("bfloat16", 1024): "cuOccupancyMaxActiveClusters(...) failed: X (1)"}
    assert c._max_clusters("bfloat16", 4, 128) == 33
    with pytest.raises(CommError, match=r"fused variant 'cluster' cannot run clusters of 8 x 256 threads.*failed: X"):
        c._max_clusters("bfloat16", 8, 256)
