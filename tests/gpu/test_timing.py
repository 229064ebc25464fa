import pytest

from floorline.gpu.timing import TimingConfig, TimingResult, time_cuda, time_wall


def test_quantiles_and_model():
    r = TimingResult([5.0, 1.0, 3.0, 2.0, 4.0], "cuda_events", 3)
    assert r.median == 3.0
    assert r.quantile(0.0) == 1.0 and r.quantile(1.0) == 5.0
    assert r.quantile(0.1) == pytest.approx(1.4)
    m = r.to_model()
    assert (m.min, m.max, m.iterations, m.unit) == (1.0, 5.0, 5, "us")


def test_wall_clock_marked_cpu():
    calls = []
    r = time_wall(lambda i: calls.append(i), warmup=2, iters=5)
    assert r.method == "wall_clock_cpu" and len(r.samples_us) == 5 and calls == [0, 1, 0, 1, 2, 3, 4]


@pytest.mark.gpu
def test_cuda_events_and_graph_agree_on_a_copy():
    import torch

    a = torch.randn(1 << 24, device="cuda")
    b = torch.empty_like(a)
    eager = time_cuda(lambda i: b.copy_(a), TimingConfig(warmup=3, iters=20))
    graph = time_cuda(lambda i: b.copy_(a), TimingConfig(warmup=3, iters=20, graph=True, ops_per_graph=5))
    assert torch.equal(a, b)
    assert 0.5 < graph.median / eager.median < 1.5  # a 128 MB copy is far past launch overhead
