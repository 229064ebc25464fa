"""timeout: forward never returns."""

import time

from torch import nn


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()

    def forward(self, x, weight):
        while True:
            time.sleep(0.1)
