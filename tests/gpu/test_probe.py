import pytest


@pytest.mark.gpu
def test_probe_reports_every_gpu():
    import torch

    from floorline.gpu.probe import device_slug, hardware_record, probe

    info = probe()
    assert len(info["gpus"]) == torch.cuda.device_count()
    g = info["gpus"][0]
    assert g["sm_count"] > 0 and g["memory_bytes"] > 1 << 30
    hw = hardware_record()
    assert hw.gpu_count == len(hw.gpus) and len(hw.p2p) == hw.gpu_count
    assert device_slug().startswith("nvidia-")


def test_slug_on_cpu(monkeypatch):
    from floorline.gpu import probe

    monkeypatch.setattr(probe, "cuda_available", lambda: False)
    assert probe.device_slug() == "cpu"
