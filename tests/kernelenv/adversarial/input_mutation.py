"""input_mutation: correct output, then the input is scribbled on (e.g. used as scratch space)."""

from torch import nn

from floorline.kernelenv.candidates.rmsnorm import rmsnorm


class ModelNew(nn.Module):
    def __init__(self, eps=1e-6):
        super().__init__()
        self.eps = eps

    def forward(self, x, weight):
        y = rmsnorm(x, weight, self.eps)
        x.zero_()
        return y
