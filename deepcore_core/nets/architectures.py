"""The built-in networks. Small inputs (under 64 pixels) get small-image stems."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from deepcore_core.nets.base import Network, NetworkInfo
from deepcore_core.nets.conv_pool import PhasedConvPool

SMALL = 64  # below this many pixels, use the small-image variants


def _mlp(ch: int, c: int, s: int) -> Network:
    body = nn.Sequential(
        nn.Flatten(),
        nn.Linear(ch * s * s, 128),
        nn.ReLU(inplace=True),
        nn.Linear(128, 128),
        nn.ReLU(inplace=True),
    )
    return Network("mlp", body, 128, c)


class MaxPool2x2(nn.MaxPool2d):
    """2 x 2 max pooling, stride 2, that is several times faster than ``nn.MaxPool2d`` when
    no gradient is needed (embedding and scoring passes): the maximum of four strided views.

    The values are the same; while a gradient is recorded it is ``nn.MaxPool2d`` itself, so
    training (including which element of a tied window gets the gradient) is unchanged.
    """

    def __init__(self, ceil_mode: bool = False) -> None:
        super().__init__(2, 2, ceil_mode=ceil_mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pool ``x`` (N x C x H x W)."""
        if x.requires_grad and torch.is_grad_enabled():
            return super().forward(x)
        h, w = x.shape[-2:]
        if self.ceil_mode and (h % 2 or w % 2):
            x = nn.functional.pad(x, (0, w % 2, 0, h % 2), value=float("-inf"))
        else:
            x = x[..., : h - h % 2, : w - w % 2]
        # pairs of rows first (whole contiguous rows), then pairs of columns of the half
        rows = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
        return torch.maximum(rows[..., 0::2], rows[..., 1::2])


class _LeNetFeatures(nn.Sequential):
    """LeNet's convolutional layers; in CPU inference the first stage (convolution, batch
    norm if any, ReLU, pooling) runs through :class:`PhasedConvPool` (the same values)."""

    def __init__(self, *mods: nn.Module, first_stage: int) -> None:
        super().__init__(*mods)
        stage = mods[:first_stage]
        self.phased = PhasedConvPool(stage) if PhasedConvPool.applies(stage) else None
        self.first_stage = first_stage  # 0: no phases (benchmarks compare the two)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The features of ``x`` (N x C x H x W)."""
        fast = not (self.training or torch.is_grad_enabled()) and x.device.type == "cpu"
        if not (fast and self.phased and self.first_stage):
            return super().forward(x)
        x = self.phased(x)
        for m in list(self)[self.first_stage :]:
            x = m(x)
        return x


def _flat_dim(body: nn.Module, ch: int, s: int) -> int:
    with torch.no_grad():
        return int(body(torch.zeros(1, ch, s, s)).shape[1])


def _lenet_body(ch: int, s: int, bn: bool) -> nn.Sequential:
    # Classic LeNet-5 (28 px: 16x5x5 features); padding keeps small inputs alive. With
    # ``bn``, batch norm follows both convolutions (not the linear layers: a last batch of
    # one sample must still train).
    def norm(k: int) -> list[nn.Module]:
        return [nn.BatchNorm2d(k)] if bn else []

    after_pool = (s + (4 if ch == 1 else 0) - 4) // 2
    pad2 = 0 if after_pool >= 10 else 2
    feats = _LeNetFeatures(
        nn.Conv2d(ch, 6, 5, padding=2 if ch == 1 else 0, bias=not bn),
        *norm(6),
        nn.ReLU(inplace=True),
        MaxPool2x2(),
        nn.Conv2d(6, 16, 5, padding=pad2, bias=not bn),
        *norm(16),
        nn.ReLU(inplace=True),
        MaxPool2x2(),
        nn.Flatten(),
        first_stage=4 if bn else 3,
    )
    d = _flat_dim(feats.eval(), ch, s)
    return nn.Sequential(
        feats,
        nn.Linear(d, 120),
        nn.ReLU(inplace=True),
        nn.Linear(120, 84),
        nn.ReLU(inplace=True),
    )


#: LeNet's embedding batch on a CPU: its activations are small, and at 128 the per-batch
#: overhead shows (``benchmarks/memory_and_batch.py``, part 1)
LENET_CPU_BATCH = 512


def _lenet(ch: int, c: int, s: int) -> Network:
    return Network("lenet", _lenet_body(ch, s, bn=False), 84, c, cpu_batch=LENET_CPU_BATCH)


def _lenet_bn(ch: int, c: int, s: int) -> Network:
    return Network("lenet-bn", _lenet_body(ch, s, bn=True), 84, c, cpu_batch=LENET_CPU_BATCH)


class _BasicBlock(nn.Module):
    """The 3x3 + 3x3 residual block of the CIFAR ResNets (He et al. 2016, section 4.2)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.short(x))


def _resnet20(ch: int, c: int, s: int) -> Network:
    # CIFAR ResNet-20: three stages of 16/32/64 channels, 3 blocks each, 0.27M parameters.
    layers: list[nn.Module] = [
        nn.Conv2d(ch, 16, 3, 1, 1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(inplace=True),
    ]
    cin = 16
    for cout, stride in ((16, 1), (32, 2), (64, 2)):
        for b in range(3):
            layers.append(_BasicBlock(cin, cout, stride if b == 0 else 1))
            cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return Network("resnet20", nn.Sequential(*layers), 64, c)


def _adapt_first_conv(
    conv: nn.Conv2d,
    ch: int,
    kernel: int | None = None,
    stride: int | None = None,
    padding: int | None = None,
) -> nn.Conv2d:
    return nn.Conv2d(
        ch,
        conv.out_channels,
        cast(Any, kernel or conv.kernel_size),
        cast(Any, stride or conv.stride),
        cast(Any, conv.padding if padding is None else padding),
        bias=conv.bias is not None,
    )


def _alexnet(ch: int, c: int, s: int) -> Network:
    if s < SMALL:
        body = nn.Sequential(
            nn.Conv2d(ch, 64, 5, padding=2),
            nn.ReLU(inplace=True),
            MaxPool2x2(ceil_mode=True),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(inplace=True),
            MaxPool2x2(ceil_mode=True),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 192, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
        )
        return Network("alexnet", body, 192 * 16, c)
    from torchvision.models import alexnet

    m = alexnet(weights=None)
    if ch != 3:
        m.features[0] = _adapt_first_conv(m.features[0], ch)
    body = nn.Sequential(m.features, m.avgpool, nn.Flatten(), *list(m.classifier)[:-1])
    return Network("alexnet", body, 4096, c)


_VGG_CFG: dict[int, list[int | str]] = {
    11: [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    13: [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    16: [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    19: [
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    ],
}


def _vgg_features(depth: int, ch: int, s: int) -> nn.Sequential:
    """torchvision's VGG-BN layer layout (so its weights load), with only as many 2x
    poolings as the input allows (5 for 32 px and more, 3 for 8 px)."""
    layers: list[nn.Module] = []
    cin, size = ch, s
    for v in _VGG_CFG[depth]:
        if v == "M":
            layers.append(MaxPool2x2() if size >= 2 else nn.Identity())
            size //= 2 if size >= 2 else 1
        else:
            layers += [
                nn.Conv2d(cin, int(v), 3, padding=1),
                nn.BatchNorm2d(int(v)),
                nn.ReLU(inplace=True),
            ]
            cin = int(v)
    return nn.Sequential(*layers)


def _vgg(depth: int):
    def build(ch: int, c: int, s: int) -> Network:
        feats = _vgg_features(depth, ch, s)
        if s < SMALL:
            body = nn.Sequential(feats, nn.AdaptiveAvgPool2d(1), nn.Flatten())
            return Network(f"vgg{depth}", body, 512, c)
        from torchvision import models

        m = getattr(models, f"vgg{depth}_bn")(weights=None)
        m.features = feats
        body = nn.Sequential(m.features, m.avgpool, nn.Flatten(), *list(m.classifier)[:-1])
        return Network(f"vgg{depth}", body, 4096, c)

    return build


def _resnet(depth: int):
    def build(ch: int, c: int, s: int) -> Network:
        from torchvision import models

        m = getattr(models, f"resnet{depth}")(weights=None)
        if s < SMALL:  # CIFAR-style stem: 3x3 stride-1 convolution and no max-pool
            m.conv1 = nn.Conv2d(ch, 64, 3, 1, 1, bias=False)
            m.maxpool = nn.Identity()
        elif ch != 3:
            m.conv1 = _adapt_first_conv(m.conv1, ch)
        d = m.fc.in_features
        m.fc = nn.Identity()
        return Network(f"resnet{depth}", m, d, c)

    return build


class _WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.short = (
            nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = torch.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(self.drop(torch.relu(self.bn2(y))))
        return y + (self.short(o) if self.short is not None else x)


def _wrn(depth: int, widen: int):
    def build(ch: int, c: int, s: int) -> Network:
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        layers: list[nn.Module] = [nn.Conv2d(ch, widths[0], 3, 1, 1, bias=False)]
        cin = widths[0]
        for stage, w in enumerate(widths[1:]):
            for i in range(n):
                layers.append(_WideBlock(cin, w, 2 if (i == 0 and stage > 0) else 1, 0.0))
                cin = w
        layers += [
            nn.BatchNorm2d(cin),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        ]
        return Network(f"wrn-{depth}-{widen}", nn.Sequential(*layers), cin, c)

    return build


def _mobilenet(size: str):
    def build(ch: int, c: int, s: int) -> Network:
        from torchvision import models

        m = getattr(models, f"mobilenet_v3_{size}")(weights=None)
        first = m.features[0][0]
        if ch != 3 or s < SMALL:
            m.features[0][0] = _adapt_first_conv(first, ch, stride=1 if s < SMALL else None)
        d = m.classifier[-1].in_features
        body = nn.Sequential(m.features, m.avgpool, nn.Flatten(), *list(m.classifier)[:-1])
        return Network(f"mobilenetv3-{size}", body, d, c)

    return build


class _Upsample(nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] >= self.size and x.shape[-2] >= self.size:
            return x
        return nn.functional.interpolate(
            x, size=(self.size, self.size), mode="bilinear", align_corners=False
        )


def _inception(ch: int, c: int, s: int) -> Network:
    from torchvision.models import inception_v3

    m = inception_v3(weights=None, aux_logits=False, init_weights=True)
    if ch != 3:
        m.Conv2d_1a_3x3.conv = _adapt_first_conv(m.Conv2d_1a_3x3.conv, ch)
    m.fc = nn.Identity()
    # torchvision's Inception-v3 needs at least 75 px: smaller inputs are upsampled first.
    return Network("inception-v3", nn.Sequential(_Upsample(75), m), 2048, c)


BUILTIN_NETWORKS = [
    NetworkInfo("mlp", _mlp, "2-layer perceptron, 128 units (D=128)", max_size=64),
    NetworkInfo("lenet", _lenet, "LeNet-5 (D=84)", max_size=64),
    NetworkInfo(
        "lenet-bn", _lenet_bn, "LeNet-5 with batch norm after each convolution (D=84)", max_size=64
    ),
    NetworkInfo("resnet20", _resnet20, "CIFAR ResNet-20, 0.27M parameters (D=64)", 8, 64),
    NetworkInfo("alexnet", _alexnet, "AlexNet; small-image variant under 64 px", 8, 256, "alexnet"),
    *[
        NetworkInfo(f"vgg{d}", _vgg(d), f"VGG-{d} with batch norm", 8, 256, f"vgg{d}_bn")
        for d in (11, 13, 16, 19)
    ],
    *[
        NetworkInfo(
            f"resnet{d}", _resnet(d), f"ResNet-{d}; CIFAR stem under 64 px", 8, 256, f"resnet{d}"
        )
        for d in (18, 34, 50, 101, 152)
    ],
    NetworkInfo("wrn-16-8", _wrn(16, 8), "WideResNet-16-8, CIFAR-style (D=512)", max_size=64),
    NetworkInfo("wrn-28-10", _wrn(28, 10), "WideResNet-28-10, CIFAR-style (D=640)", max_size=64),
    NetworkInfo(
        "mobilenetv3-small",
        _mobilenet("small"),
        "MobileNetV3-Small (D=1024)",
        8,
        256,
        "mobilenet_v3_small",
    ),
    NetworkInfo(
        "mobilenetv3-large",
        _mobilenet("large"),
        "MobileNetV3-Large (D=1280)",
        8,
        256,
        "mobilenet_v3_large",
    ),
    NetworkInfo(
        "inception-v3",
        _inception,
        "Inception-v3 (D=2048); upsamples under 75 px",
        8,
        320,
        "inception_v3",
    ),
]
