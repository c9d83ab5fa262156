"""Export-time rewrites that write a net's static sizes into its layer modules.

An exported graph keeps only the batch axis symbolic: every other size is fixed by the
prototxt. Layer modules that read a size from ``x.shape`` at run time would have the
tracer record that read as a Shape op; behind a symbolic batch axis ONNX shape inference
then loses the sizes computed from it (a Slice's last part gets an unknown channel count,
and a BatchNorm after it cannot be exported). These rewrites give such modules the
numbers the builder already knows.
"""

from __future__ import annotations

import torch
from torch import nn

from caffe2torch.graph import CaffeNet


class StaticSlice(nn.Module):
    """Caffe's Slice with its part sizes fixed (``torch.split`` with constants)."""

    def __init__(self, axis: int, sizes: list[int]) -> None:
        super().__init__()
        self.axis = axis
        self.sizes = list(sizes)
        self.blobs = nn.ParameterList()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.split(x, self.sizes, dim=self.axis))

    def extra_repr(self) -> str:
        return f"axis={self.axis}, sizes={self.sizes}"


def replace_module(net: CaffeNet, position: int, module: nn.Module) -> None:
    """Run ``module`` for the layer at ``position`` (graphs already made are dropped)."""
    setattr(net.layers, net._attrs[position], module)
    net._modules_in_order[position] = module
    net._graphs.clear()


def freeze_spatial_sizes(net: CaffeNet) -> None:
    """Global pooling takes its kernel from the input's H x W at run time: write it in."""
    from caffe2torch.layers.bvlc.vision import CaffePooling

    shapes = net._version_shapes
    for layer, module in zip(net.ir.layers, net._modules_in_order):
        if isinstance(module, CaffePooling) and module.kernel is None:
            shape = shapes[layer.bottoms[0]]
            module.kernel = (int(shape[2]), int(shape[3]))


def freeze_slice_sizes(net: CaffeNet) -> None:
    """Slice computes its last part from the bottom's size: give it every part's size
    (not along the batch axis, whose size is the one left free)."""
    from caffe2torch.layers.bvlc.blob_ops import CaffeSlice

    shapes = net._version_shapes
    for pos, (layer, module) in enumerate(zip(net.ir.layers, net._modules_in_order)):
        if isinstance(module, CaffeSlice) and module.num_tops > 1 and module.axis != 0:
            dim = int(shapes[layer.bottoms[0]][module.axis])
            replace_module(net, pos, StaticSlice(module.axis, module.sizes(dim)))


class StaticSPP(nn.Module):
    """Caffe's SPP with its bottom's H x W written in (each level's kernel and pad are
    computed from it: SPPLayer::GetPoolingParam)."""

    def __init__(self, pyramid_height: int, method: int, size: tuple[int, int],
                 training: bool) -> None:
        super().__init__()
        self.pyramid_height = pyramid_height
        self.method = method
        self.size = size
        self.train(training)
        self.blobs = nn.ParameterList()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from caffe2torch.layers.bvlc.vision import caffe_pool, spp_level_geometry

        levels = []
        for level in range(self.pyramid_height):
            kernel, pad = spp_level_geometry(self.size, level)
            top = caffe_pool(x, self.method, kernel, kernel, pad, train=self.training)[0]
            if self.pyramid_height == 1:
                return top
            levels.append(top.flatten(1))
        return torch.cat(levels, dim=1)


def freeze_spp_sizes(net: CaffeNet) -> None:
    """SPP reads H and W from its input at run time: give it the builder's numbers."""
    from caffe2torch.layers.bvlc.vision import CaffeSPP

    shapes = net._version_shapes
    for pos, (layer, module) in enumerate(zip(net.ir.layers, net._modules_in_order)):
        if isinstance(module, CaffeSPP) and len(shapes[layer.bottoms[0]]) == 4:
            shape = shapes[layer.bottoms[0]]
            replace_module(net, pos, StaticSPP(module.pyramid_height, module.method,
                                               (int(shape[2]), int(shape[3])), module.training))


def freeze_static_sizes(net: CaffeNet) -> None:
    """Every rewrite above, in place (the net is a deploy view made for the export)."""
    freeze_spatial_sizes(net)
    freeze_slice_sizes(net)
    freeze_spp_sizes(net)
