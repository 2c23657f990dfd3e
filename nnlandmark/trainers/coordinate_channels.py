"""A network wrapper that appends the voxel position (three channels from -1 to 1) to its input.

Why: in a whole-volume patch the position of a structure tells look-alikes apart (the front and the back tip of a
ventricle, left and right nuclei). A convolution alone only learns it through padding effects and a large receptive
field; on a CPU budget the whole-volume model kept confusing such pairs (benchmarks/learning_efficiency.py). The
channels are made inside ``forward``, so nnU-Net's loaders, augmentation and sliding-window predictor need no change.
Only meaningful where the patch is the whole volume (``3d_whole``): elsewhere it would be the position in the tile.
"""
import torch
from torch import nn


class WithCoordinateChannels(nn.Module):
    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network

    @property
    def decoder(self):  # nnU-Net switches deep supervision through network.decoder
        return self.network.decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spatial = x.shape[2:]
        axes = [torch.linspace(-1, 1, s, device=x.device, dtype=x.dtype) for s in spatial]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (D, *spatial)
        return self.network(torch.cat([x, grid.expand(x.shape[0], *grid.shape)], 1))
