r"""Feature maps for the transfer experiments: an MLP, a small CNN and WRN-28-k.

Every model here is a composition :math:`x \mapsto W f(x) + b` of a *feature map*
:math:`f` (the network up to its penultimate layer) and a linear *classifier* over the
source classes. The neural-collapse quantities of THEORY.md T0 (CDNV, NC1–NC2) are measured
on :math:`f(x)`, NC3 compares the rows of :math:`W` with the centred class means of
:math:`f`, and the few-shot heads of T1 are fitted on :math:`f(x)` of new classes
(Galanti, György & Hutter, ICLR 2022, §5: a network trained with cross-entropy on source
classes, its penultimate layer used as the representation). Each model exposes

- ``model.features(x)``: :math:`f(x)`, shape (N, ``model.feature_dim``);
- ``model.classifier``: the last ``torch.nn.Linear`` (its ``weight`` is :math:`W`, the NC3
  weights, row ``c`` the classifier of dense label ``c``);
- ``model(x)``: the logits ``classifier(features(x))``.

Models
------
:class:`MLP`
    ``depth`` hidden blocks Linear–BatchNorm–ReLU of ``width`` units (inputs of any shape
    are flattened); :math:`f(x)` is the last block's output, dimension ``width``.
:class:`SmallCNN`
    four blocks conv3×3–BatchNorm–ReLU with ``width``, 2·``width``, 4·``width``,
    8·``width`` channels, 2×2 max-pooling after the first three, global average pooling;
    :math:`f(x)` has dimension 8·``width``. (The "Conv-4" family of few-shot learning, with
    widening channels.)
:class:`WideResNet`
    WRN-``depth``-``widen`` of Zagoruyko & Komodakis (2016): a 3×3 stem of 16 channels,
    three groups of (depth − 4)/6 pre-activation basic blocks with 16k, 32k, 64k channels
    (strides 1, 2, 2), BatchNorm–ReLU and global average pooling; :math:`f(x)` has dimension
    64k. The paper's experiments use WRN-28-4 (Galanti et al. 2022, §5), 5.8 M parameters.

torch is imported when this module is imported: the module belongs to ``simulations``,
whose training code needs it anyway (DESIGN.md layers; ``ncbounds`` itself stays
torch-free).

>>> import torch
>>> net = SmallCNN(1, 10, width=4)
>>> x = torch.zeros(3, 1, 28, 28)
>>> net.features(x).shape, net(x).shape, net.classifier.weight.shape
(torch.Size([3, 32]), torch.Size([3, 10]), torch.Size([10, 32]))
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ncbounds._errors import NCBoundsError
from ncbounds._validation import check_positive_int, describe

__all__ = ["FeatureModel", "MLP", "SmallCNN", "WideResNet", "build_model", "MODELS"]

#: Model names understood by :func:`build_model`.
MODELS = ("mlp", "cnn", "wrn")


class FeatureModel(nn.Module):
    """Base class: ``forward(x) = classifier(features(x))``.

    Subclasses set ``self.body`` (a module mapping inputs to (N, feature_dim)) and
    ``self.classifier`` (an ``nn.Linear(feature_dim, num_classes)``).
    """

    body: nn.Module
    classifier: nn.Linear

    @property
    def feature_dim(self) -> int:
        """Dimension p of the penultimate features."""
        return int(self.classifier.in_features)

    @property
    def num_classes(self) -> int:
        return int(self.classifier.out_features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate features f(x), shape (N, feature_dim)."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


def _int(value: Any, name: str, minimum: int = 1) -> int:
    return check_positive_int(value, name, minimum=minimum)


class MLP(FeatureModel):
    """``depth`` blocks Linear(·, width)–BatchNorm1d–ReLU, then Linear(width, num_classes).

    Parameters
    ----------
    in_dim : int
        Number of input features; inputs of shape (N, *dims) are flattened, so for images
        pass C·H·W.
    num_classes : int
        Number of source classes (outputs of the classifier).
    width : int
        Units per hidden block; the feature dimension.
    depth : int
        Number of hidden blocks (≥ 1).

    >>> net = MLP(8, 3, width=16, depth=2)
    >>> net.features(torch.zeros(5, 8)).shape, net.feature_dim
    (torch.Size([5, 16]), 16)
    """

    def __init__(self, in_dim: int, num_classes: int, width: int = 256, depth: int = 2) -> None:
        super().__init__()
        in_dim = _int(in_dim, "in_dim")
        num_classes = _int(num_classes, "num_classes")
        width = _int(width, "width")
        depth = _int(depth, "depth")
        layers: list[nn.Module] = [nn.Flatten()]
        for i in range(depth):
            layers += [
                nn.Linear(in_dim if i == 0 else width, width, bias=False),
                nn.BatchNorm1d(width),
                nn.ReLU(inplace=True),
            ]
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes)


def _conv_bn_relu(c_in: int, c_out: int) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    ]


class SmallCNN(FeatureModel):
    """Four conv3×3–BatchNorm–ReLU blocks (width, 2w, 4w, 8w channels), max-pooling after
    the first three, global average pooling, then a linear classifier.

    Parameters
    ----------
    in_channels : int
        Image channels (1 for glyphs, 3 for CIFAR / mini-ImageNet).
    num_classes : int
        Number of source classes.
    width : int
        Channels of the first block; the feature dimension is 8·width.

    Any image side ≥ 8 works (the pooling is adaptive at the end).

    >>> SmallCNN(3, 5, width=2).features(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 16])
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 32) -> None:
        super().__init__()
        in_channels = _int(in_channels, "in_channels")
        num_classes = _int(num_classes, "num_classes")
        width = _int(width, "width")
        chans = [width, 2 * width, 4 * width, 8 * width]
        layers: list[nn.Module] = []
        c_in = in_channels
        for i, c_out in enumerate(chans):
            layers += _conv_bn_relu(c_in, c_out)
            if i < 3:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(chans[-1], num_classes)


class _WideBlock(nn.Module):
    """Pre-activation basic block: BN–ReLU–conv3×3(stride)–BN–ReLU–conv3×3, plus a 1×1
    projection shortcut (taken from the pre-activated input) when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.shortcut = (
            nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            if stride != 1 or c_in != c_out
            else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.bn1(x))
        out = self.conv2(torch.relu(self.bn2(self.conv1(a))))
        return out + (x if self.shortcut is None else self.shortcut(a))


class WideResNet(FeatureModel):
    """WRN-depth-widen (Zagoruyko & Komodakis 2016), pre-activation, no dropout.

    Parameters
    ----------
    depth : int
        Total depth, with (depth − 4) divisible by 6 (28 gives 4 blocks per group).
    widen : int
        Widening factor k: the groups have 16k, 32k and 64k channels; features are 64k.
    num_classes : int
        Number of source classes.
    in_channels : int
        Image channels.

    WRN-28-4 (the paper's network) has about 5.8 M parameters and 256-dimensional
    features.

    >>> net = WideResNet(depth=10, widen=1, num_classes=4, in_channels=1)
    >>> net.features(torch.zeros(2, 1, 16, 16)).shape
    torch.Size([2, 64])
    """

    def __init__(
        self, depth: int = 28, widen: int = 4, num_classes: int = 64, in_channels: int = 3
    ) -> None:
        super().__init__()
        depth = _int(depth, "depth", minimum=10)
        if (depth - 4) % 6:
            raise NCBoundsError(
                f"depth: expected 6·n + 4 (10, 16, 22, 28, ...) for a wide ResNet, got {depth}"
            )
        widen = _int(widen, "widen")
        num_classes = _int(num_classes, "num_classes")
        in_channels = _int(in_channels, "in_channels")
        n = (depth - 4) // 6
        chans = [16, 16 * widen, 32 * widen, 64 * widen]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, chans[0], 3, padding=1, bias=False)]
        for g, stride in enumerate((1, 2, 2)):
            for b in range(n):
                layers.append(
                    _WideBlock(chans[g] if b == 0 else chans[g + 1], chans[g + 1],
                               stride if b == 0 else 1)
                )
        layers += [
            nn.BatchNorm2d(chans[3]),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        ]
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(chans[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def build_model(
    name: str,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    width: int,
    depth: int | None = None,
) -> FeatureModel:
    """The model ``name`` ("mlp", "cnn" or "wrn") for inputs of ``input_shape`` (one sample:
    (d,) for vectors, (C, H, W) for images).

    ``width`` is the MLP's units, the CNN's first-block channels or the WRN's widening
    factor k; ``depth`` the MLP's hidden blocks (default 2) or the WRN's depth (default 28);
    the CNN ignores it. Convolutional models need image inputs.

    >>> build_model("mlp", input_shape=(1, 4, 4), num_classes=3, width=8).feature_dim
    8
    """
    if not isinstance(name, str) or name not in MODELS:
        raise NCBoundsError(f"model: expected one of {MODELS}, got {describe(name)}")
    shape = tuple(int(s) for s in input_shape)
    if name == "mlp":
        in_dim = 1
        for s in shape:
            in_dim *= s
        return MLP(in_dim, num_classes, width=width, depth=2 if depth is None else depth)
    if len(shape) != 3:
        raise NCBoundsError(
            f"model: {name!r} needs images (C, H, W), got samples of shape {shape}; "
            "use model='mlp' for vectors"
        )
    if name == "cnn":
        return SmallCNN(shape[0], num_classes, width=width)
    return WideResNet(28 if depth is None else depth, width, num_classes, shape[0])
