"""simulations.networks: shapes, the features/classifier decomposition, parameter counts.

Reference for the parameter counts: a count written out here layer by layer from the
architecture description (Zagoruyko & Komodakis 2016, Table 1: a 3×3 stem of 16 channels,
three groups of (d − 4)/6 pre-activation basic blocks with 16k, 32k, 64k channels), checked
in turn against the published size of WRN-28-10 on CIFAR-100 (36.5 M parameters).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ncbounds import NCBoundsError
from simulations.networks import MLP, SmallCNN, WideResNet, build_model


def wrn_param_count(depth: int, k: int, num_classes: int, in_channels: int) -> int:
    """Parameters of WRN-depth-k counted by hand (convs without bias, BN has 2 per channel)."""
    n = (depth - 4) // 6
    chans = [16, 16 * k, 32 * k, 64 * k]
    total = 9 * in_channels * 16  # stem
    for g in range(3):
        c_in, c_out = chans[g], chans[g + 1]
        for b in range(n):
            cin = c_in if b == 0 else c_out
            total += 2 * cin + 9 * cin * c_out + 2 * c_out + 9 * c_out * c_out
            if b == 0 and (cin != c_out or g > 0):
                total += cin * c_out  # 1×1 projection shortcut
    return total + 2 * chans[3] + chans[3] * num_classes + num_classes


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    "model, x, dim",
    [
        (MLP(12, 5, width=7, depth=3), torch.randn(4, 12), 7),
        (MLP(3 * 4 * 4, 5, width=6, depth=1), torch.randn(4, 3, 4, 4), 6),  # flattened
        (SmallCNN(1, 5, width=3), torch.randn(4, 1, 28, 28), 24),
        (SmallCNN(3, 5, width=2), torch.randn(4, 3, 84, 84), 16),  # mini-ImageNet size
        (WideResNet(depth=10, widen=2, num_classes=5, in_channels=3),
         torch.randn(4, 3, 32, 32), 128),
    ],
)
def test_features_and_classifier_compose_to_the_logits(model, x, dim):
    model.eval()
    with torch.no_grad():
        f = model.features(x)
        logits = model(x)
    assert f.shape == (4, dim) and model.feature_dim == dim
    assert isinstance(model.classifier, nn.Linear)
    assert model.classifier.weight.shape == (5, dim) and model.num_classes == 5
    # the logits are exactly the affine map W f + b of the penultimate features
    w, b = model.classifier.weight, model.classifier.bias
    torch.testing.assert_close(logits, f @ w.T + b)


def test_cnn_features_are_nonnegative_pooled_activations():
    # global average pooling of ReLU outputs: features are >= 0
    net = SmallCNN(1, 3, width=2).eval()
    with torch.no_grad():
        f = net.features(torch.randn(8, 1, 16, 16))
    assert bool((f >= 0).all())


@pytest.mark.parametrize("depth, k, classes, chans", [(10, 1, 5, 1), (16, 2, 7, 3), (28, 4, 64, 3)])
def test_wide_resnet_parameter_count(depth, k, classes, chans):
    net = WideResNet(depth=depth, widen=k, num_classes=classes, in_channels=chans)
    assert n_params(net) == wrn_param_count(depth, k, classes, chans)


def test_wrn_28_10_has_the_published_size():
    # Zagoruyko & Komodakis (2016), Table: WRN-28-10 has 36.5 M parameters (CIFAR-100)
    assert abs(wrn_param_count(28, 10, 100, 3) - 36.5e6) < 0.05e6
    # and the paper's network, WRN-28-4, about 5.8-5.9 M
    assert 5.8e6 < wrn_param_count(28, 4, 64, 3) < 5.9e6


def test_wrn_downsamples_twice():
    net = WideResNet(depth=10, widen=1, num_classes=2, in_channels=1).eval()
    shapes = []
    hooks = [blk.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[2:])))
             for blk in net.body if blk.__class__.__name__ == "_WideBlock"]
    with torch.no_grad():
        net(torch.randn(1, 1, 32, 32))
    for h in hooks:
        h.remove()
    assert shapes == [(32, 32), (16, 16), (8, 8)]


def test_gradients_reach_every_parameter():
    net = SmallCNN(1, 4, width=2)
    loss = nn.functional.cross_entropy(net(torch.randn(6, 1, 16, 16)), torch.arange(6) % 4)
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_build_model_dispatch():
    assert isinstance(build_model("mlp", input_shape=(5,), num_classes=3, width=4), MLP)
    flat = build_model("mlp", input_shape=(1, 4, 4), num_classes=3, width=4)
    assert flat.body[1].in_features == 16
    assert isinstance(build_model("cnn", input_shape=(1, 16, 16), num_classes=3, width=2), SmallCNN)
    wrn = build_model("wrn", input_shape=(3, 16, 16), num_classes=3, width=1, depth=10)
    assert isinstance(wrn, WideResNet) and wrn.feature_dim == 64


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: WideResNet(depth=27, widen=1, num_classes=2), "depth"),
        (lambda: WideResNet(depth=28, widen=0, num_classes=2), "widen"),
        (lambda: MLP(0, 2), "in_dim"),
        (lambda: MLP(4, 2, width=8, depth=0), "depth"),
        (lambda: SmallCNN(1, 0), "num_classes"),
        (lambda: build_model("resnet", input_shape=(3, 8, 8), num_classes=2, width=1), "model"),
        (lambda: build_model("cnn", input_shape=(10,), num_classes=2, width=1), "model"),
    ],
)
def test_bad_arguments_name_the_parameter(call, name):
    with pytest.raises(NCBoundsError, match=f"^{name}:"):
        call()
