"""forbidden_op: a BLAS routine reached through ctypes, looked up by symbol name in the libraries already loaded
into the process (no import and no dlopen of a vendor file name to catch). The audit hook blocks the lookup."""

import ctypes

from torch import nn


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.sdot = ctypes.CDLL(None)["cblas_sdot"]  # BLAS dot product for the sum of squares

    def forward(self, x, weight):
        return x
