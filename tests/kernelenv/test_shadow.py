"""The shadow memory's bookkeeping on its own: tags follow the writer, values must still match, loads of untraced
bytes are counted (the harness-level behaviour is in test_adversarial.py)."""

from __future__ import annotations

import numpy as np
import torch

from floorline.kernelenv.shadow import FOREIGN, OWN, SOURCE, Shadow


def _reader():
    from triton._C.libtriton import interpreter as lib

    def read(addrs):
        return lib.load(addrs, np.ones(addrs.shape, bool), np.zeros(addrs.shape, np.uint8), np.dtype(np.uint8))

    return read


def _elems(t):
    return np.uint64(t.data_ptr()) + np.arange(t.numel(), dtype=np.uint64) * np.uint64(t.element_size())


def test_kernel_written_output_is_covered_and_a_host_overwrite_is_not():
    sh = Shadow(_reader())
    x = torch.randn(5, 7)
    sh.seed(x)
    y = torch.empty(5, 7)
    sh.fresh(y)
    assert sh.coverage(y)["unwritten"] == y.numel() * 4
    y.copy_(x * 2)  # the "kernel" writes, then the hook records what landed
    sh.kernel_store(_elems(y), 4, own=True)
    assert sh.coverage(y)["own"] == y.numel() * 4
    y.numpy()[0, 0] = 123.0  # host code writes behind the shadow's back
    c = sh.coverage(y)
    assert c["changed"] == 4 and c["own"] == y.numel() * 4 - 4


def test_loads_of_inputs_pass_and_loads_of_host_memory_do_not():
    sh = Shadow(_reader())
    x = torch.randn(9)
    sh.seed(x)
    sh.kernel_load(_elems(x), 4, x.numpy())
    assert sh.untraced_loads == 0 and sh.own_loads == 36
    host = torch.from_numpy(np.random.default_rng(3).standard_normal(9).astype(np.float32))  # never seen by torch ops
    sh.kernel_load(_elems(host), 4, host.numpy())
    assert sh.untraced_loads == 36 and "no traced writer" in sh.first_untraced


def test_tags_follow_sources_through_dispatcher_ops():
    sh = Shadow(_reader())
    x = torch.randn(6)
    sh.seed(x)
    k = torch.empty(6)
    sh.fresh(k)
    k.copy_(x + 1)
    sh.kernel_store(_elems(k), 4, own=True)
    assert sh.source_tag([x]) == SOURCE
    assert sh.source_tag([x, k]) == OWN
    assert sh.source_tag([]) == FOREIGN  # a Python scalar: host data
    k.numpy()[3] = 0.5
    assert sh.source_tag([k]) == FOREIGN  # changed behind the shadow
    z = torch.zeros(6)
    sh.mark([z], SOURCE)
    assert sh.coverage(z)["own"] == 24  # a zero fill is traced, not host data
