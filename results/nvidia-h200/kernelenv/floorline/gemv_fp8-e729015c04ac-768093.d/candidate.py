"""gemv_fp8 through floorline.kernels.gemv.gemv with its per-row scale."""

import torch
from torch import nn

from floorline.kernels.gemv import gemv


class ModelNew(nn.Module):
    def forward(self, x, w, w_scale):
        out = torch.empty(x.shape[0], w.shape[0], dtype=x.dtype, device=x.device)
        return gemv(x.float(), w, out, scale=w_scale)
