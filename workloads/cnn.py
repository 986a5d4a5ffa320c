"""``cnn``: a ResNet-50-shaped image classifier, written in torch (no download).

Bottleneck residual blocks (1x1, 3x3, 1x1 convolutions with batch norm) in
four stages of [3, 4, 6, 3] blocks, widths 64-128-256-512 expanded 4x, a 7x7
stem and a 1000-way classifier: the shapes of torchvision's ``resnet50``
(25.6M parameters). Weights are seeded random. Unit: images.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.contract.interface import TENSOR_BYTES, WEIGHT_BYTES, Param, Workload, torch_dtype
from workloads._seeding import random_tensor, seeded


@dataclass(frozen=True)
class ResNetShape:
    blocks: tuple[int, int, int, int]
    base_width: int
    classes: int
    image_size: int
    source: str

    def parameter_count(self) -> int:
        """Weights and batch-norm parameters and buffers of :func:`build_resnet`, without building it."""
        def bn(channels: int) -> int:  # weight, bias, running mean and variance
            return 4 * channels

        width = self.base_width
        count = 3 * width * 49 + bn(width)  # 7x7 stem
        inplanes = width
        for stage, blocks in enumerate(self.blocks):
            planes = width * 2**stage
            out = planes * EXPANSION
            for index in range(blocks):
                count += inplanes * planes + bn(planes) + planes * planes * 9 + bn(planes) + planes * out + bn(out)
                if (index == 0 and stage > 0) or inplanes != out:
                    count += inplanes * out + bn(out)
                inplanes = out
        return count + inplanes * self.classes + self.classes


PRESETS = {
    "tiny": ResNetShape((1, 1, 1, 1), 8, 10, 32, "bakeoff test shape"),
    "resnet50": ResNetShape((3, 4, 6, 3), 64, 1000, 224, "torchvision resnet50 / He et al. 2015, table 1"),
}
EXPANSION = 4


def build_resnet(shape: ResNetShape):
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, inplanes: int, planes: int, stride: int) -> None:
            super().__init__()
            out = planes * EXPANSION
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, out, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(out)
            self.shortcut = None
            if stride != 1 or inplanes != out:
                self.shortcut = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False),
                                              nn.BatchNorm2d(out))

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = torch.relu(self.bn2(self.conv2(y)))
            y = self.bn3(self.conv3(y))
            return torch.relu(y + (x if self.shortcut is None else self.shortcut(x)))

    width = shape.base_width
    layers: list[nn.Module] = [nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(width),
                               nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1)]
    inplanes = width
    for stage, count in enumerate(shape.blocks):
        planes = width * 2**stage
        for index in range(count):
            layers.append(Bottleneck(inplanes, planes, stride=2 if index == 0 and stage > 0 else 1))
            inplanes = planes * EXPANSION
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(inplanes, shape.classes)]
    return nn.Sequential(*layers)


class Cnn(Workload):
    reference_cacheable = True  # a function of this code and the parameters (harness/engine/cache.py)
    name = "cnn"
    description = "ResNet-50-shaped image classifier (bottleneck blocks [3,4,6,3]); images/s."
    unit = "image"
    params = (Param("preset", str, "resnet50", "network shape", choices=tuple(PRESETS)),)
    input_names = ("images",)
    output_names = ("logits",)

    @property
    def shape(self) -> ResNetShape:
        return PRESETS[self.values["preset"]]

    def build_module(self, dtype: str):
        with seeded(self.seed):
            module = build_resnet(self.shape)
        return module.to(torch_dtype(dtype)).eval()

    def example_inputs(self, batch_size: int, dtype: str):
        size = self.shape.image_size
        return (random_tensor((batch_size, 3, size, size), dtype, self.seed + 1),)

    def work_per_step(self, batch_size: int) -> float:
        return float(batch_size)

    def materialised_bytes(self, batch_size: int, dtype: str) -> int:
        """The images, the logits and the weights (activations are not counted)."""
        shape = self.shape
        images = batch_size * (3 * shape.image_size**2 + shape.classes) * TENSOR_BYTES[dtype]
        return images + shape.parameter_count() * WEIGHT_BYTES[dtype]
