"""unsynchronized_work (a thread that outlives the call only briefly): the output is right at return, and
a background thread keeps going for a few milliseconds, ending before any settle-time check. The harness
must see it at return: under load (session 10, 16 test workers on one GPU) the thread injection of
unsynchronized_work.py can also end before the check, and only the at-return view catches both."""

import threading
import time

import torch
from torch import nn

from floorline.kernelenv.candidates.rmsnorm import _rmsnorm_kernel


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, weight):
        y = torch.empty_like(x)
        _rmsnorm_kernel[(x.shape[0],)](x, weight, y, x.shape[1], x.stride(0), y.stride(0), self.eps,
                                       BLOCK=128 if x.shape[1] <= 128 else 256)
        threading.Thread(target=time.sleep, args=(0.005,)).start()
        return y
