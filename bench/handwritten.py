"""The benchmark nets written by hand in plain PyTorch, the way one would without Caffe.

Modules are declared in the prototxt's layer order so that ``load_caffe_params`` can hand
them the converted net's param blobs in caffemodel order: Conv2d / Linear take (weight,
bias), a BatchNorm2d with affine takes Caffe's BatchNorm (mean, variance, scale factor)
plus the following Scale layer's (scale, bias).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def load_caffe_params(module: nn.Module, blobs: Sequence[torch.Tensor]) -> None:
    """Copy ``blobs`` (a converted net's params, flattened in net order) into ``module``."""
    it = iter(blobs)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                m.weight.copy_(next(it).reshape(m.weight.shape))
                if m.bias is not None:
                    m.bias.copy_(next(it))
            elif isinstance(m, nn.BatchNorm2d):
                mean, var, factor = next(it), next(it), next(it)
                f = 0.0 if float(factor) == 0 else 1.0 / float(factor)
                m.running_mean.copy_(mean * f)
                m.running_var.copy_(var * f)
                if m.affine:
                    m.weight.copy_(next(it))
                    m.bias.copy_(next(it))
    rest = list(it)
    if rest:
        raise ValueError(f"{len(rest)} param blobs left over")


# --------------------------------------------------------------------------- LeNet


class LeNet(nn.Module):
    """BVLC examples/mnist/lenet.prototxt (deploy): output 'prob'."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.ip1 = nn.Linear(800, 500)
        self.ip2 = nn.Linear(500, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.conv1(x), 2, 2, ceil_mode=True)
        x = F.max_pool2d(self.conv2(x), 2, 2, ceil_mode=True)
        x = F.relu(self.ip1(x.flatten(1)), inplace=True)
        return F.softmax(self.ip2(x), dim=1)


# --------------------------------------------------------------------------- Siamese AlexNet


class AlexTower(nn.Module):
    """One tower of the seed's Siamese AlexNet (fc7 has 2 outputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 96, 11, stride=4)
        self.conv2 = nn.Conv2d(96, 256, 5, padding=2, groups=2)
        self.conv3 = nn.Conv2d(256, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 384, 3, padding=1, groups=2)
        self.conv5 = nn.Conv2d(384, 256, 3, padding=1, groups=2)
        self.fc6 = nn.Linear(256 * 6 * 6, 4096)
        self.fc7 = nn.Linear(4096, 2)
        self.norm = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.drop = nn.Dropout(0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(F.max_pool2d(F.relu(self.conv1(x), inplace=True), 3, 2, ceil_mode=True))
        x = self.norm(F.max_pool2d(F.relu(self.conv2(x), inplace=True), 3, 2, ceil_mode=True))
        x = F.relu(self.conv3(x), inplace=True)
        x = F.relu(self.conv4(x), inplace=True)
        x = F.max_pool2d(F.relu(self.conv5(x), inplace=True), 3, 2, ceil_mode=True)
        x = self.drop(F.relu(self.fc6(x.flatten(1)), inplace=True))
        return self.drop(F.relu(self.fc7(x), inplace=True))


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, sim: torch.Tensor,
                     margin: float = 1.0) -> torch.Tensor:
    """Caffe's ContrastiveLoss (legacy_version false): mean over pairs / 2."""
    dist_sq = (a - b).pow(2).sum(1)
    dist = torch.sqrt(dist_sq)
    dissimilar = torch.clamp(margin - dist, min=0).pow(2)
    per_pair = torch.where(sim != 0, dist_sq, dissimilar)
    return per_pair.sum() / (2 * a.shape[0])


class SiameseAlexNet(nn.Module):
    """/work/shared/seeds/siamese_imagenet_v1.prototxt: two unshared towers + contrastive."""

    def __init__(self) -> None:
        super().__init__()
        self.tower = AlexTower()
        self.tower_p = AlexTower()

    def forward(self, data: torch.Tensor, data_p: torch.Tensor,
                label: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(self.tower(data), self.tower_p(data_p), label)


# --------------------------------------------------------------------------- GoogLeNet


class Inception(nn.Module):
    def __init__(self, c_in: int, c1: int, c3r: int, c3: int, c5r: int, c5: int,
                 pp: int) -> None:
        super().__init__()
        self.b1 = nn.Conv2d(c_in, c1, 1)
        self.b3r = nn.Conv2d(c_in, c3r, 1)
        self.b3 = nn.Conv2d(c3r, c3, 3, padding=1)
        self.b5r = nn.Conv2d(c_in, c5r, 1)
        self.b5 = nn.Conv2d(c5r, c5, 5, padding=2)
        self.pool_proj = nn.Conv2d(c_in, pp, 1)
        self.out_channels = c1 + c3 + c5 + pp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        relu = F.relu
        y1 = relu(self.b1(x), inplace=True)
        y3 = relu(self.b3(relu(self.b3r(x), inplace=True)), inplace=True)
        y5 = relu(self.b5(relu(self.b5r(x), inplace=True)), inplace=True)
        yp = relu(self.pool_proj(F.max_pool2d(x, 3, 1, 1, ceil_mode=True)), inplace=True)
        return torch.cat([y1, y3, y5, yp], 1)


_GOOGLENET = {
    "3a": (64, 96, 128, 16, 32, 32), "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64), "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64), "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128), "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


class GoogLeNet(nn.Module):
    """BVLC models/bvlc_googlenet/deploy.prototxt: output 'prob'."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3)
        self.conv2_reduce = nn.Conv2d(64, 64, 1)
        self.conv2 = nn.Conv2d(64, 192, 3, padding=1)
        c = 192
        blocks = {}
        for name, cfg in _GOOGLENET.items():
            blocks[name] = Inception(c, *cfg)
            c = blocks[name].out_channels
        self.inception = nn.ModuleDict(blocks)
        self.classifier = nn.Linear(1024, 1000)
        self.norm = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.drop = nn.Dropout(0.4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv1(x), inplace=True)
        x = self.norm(F.max_pool2d(x, 3, 2, ceil_mode=True))
        x = F.relu(self.conv2_reduce(x), inplace=True)
        x = self.norm(F.relu(self.conv2(x), inplace=True))
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        for name, block in self.inception.items():
            x = block(x)
            if name in ("3b", "4e"):
                x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        x = F.avg_pool2d(x, 7, 1)
        x = self.classifier(self.drop(x).flatten(1))
        return F.softmax(x, dim=1)


# --------------------------------------------------------------------------- ResNet-50


class Bottleneck(nn.Module):
    """KaimingHe's Caffe bottleneck: the stride sits on branch2a (1x1)."""

    def __init__(self, c_in: int, width: int, stride: int, project: bool) -> None:
        super().__init__()
        c_out = 4 * width
        if project:
            self.branch1 = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            self.bn1 = nn.BatchNorm2d(c_out)
        else:
            self.branch1 = None
        self.conv_a = nn.Conv2d(c_in, width, 1, stride=stride, bias=False)
        self.bn_a = nn.BatchNorm2d(width)
        self.conv_b = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn_b = nn.BatchNorm2d(width)
        self.conv_c = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn_c = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.branch1 is None else self.bn1(self.branch1(x))
        y = F.relu(self.bn_a(self.conv_a(x)), inplace=True)
        y = F.relu(self.bn_b(self.conv_b(y)), inplace=True)
        y = self.bn_c(self.conv_c(y))
        return F.relu(y + shortcut, inplace=True)


class ResNet50(nn.Module):
    """KaimingHe deep-residual-networks ResNet-50-deploy.prototxt: output 'prob'."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=True)
        self.bn1 = nn.BatchNorm2d(64)
        blocks = []
        c = 64
        for stage, (n, width) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)]):
            for i in range(n):
                stride = 2 if (i == 0 and stage > 0) else 1
                blocks.append(Bottleneck(c, width, stride, project=(i == 0)))
                c = 4 * width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(2048, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)), inplace=True)
        x = F.max_pool2d(x, 3, 2, ceil_mode=True)
        x = self.blocks(x)
        x = F.avg_pool2d(x, 7, 1)
        return F.softmax(self.fc(x.flatten(1)), dim=1)


# --------------------------------------------------------------------------- MNIST Siamese


class MnistTower(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.ip1 = nn.Linear(800, 500)
        self.ip2 = nn.Linear(500, 10)
        self.feat = nn.Linear(10, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.conv1(x), 2, 2, ceil_mode=True)
        x = F.max_pool2d(self.conv2(x), 2, 2, ceil_mode=True)
        x = F.relu(self.ip1(x.flatten(1)), inplace=True)
        return self.feat(self.ip2(x))


class MnistSiamese(nn.Module):
    """caffe2torch/examples/mnist_siamese/train_test.prototxt: one tower applied to both
    inputs (the prototxt shares every param by name)."""

    def __init__(self) -> None:
        super().__init__()
        self.tower = MnistTower()

    def forward(self, data: torch.Tensor, data_p: torch.Tensor,
                sim: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(self.tower(data), self.tower(data_p), sim)
