"""Every network runs forward and backward on each input size it supports."""

from __future__ import annotations

import pytest
import torch

from deepcore_core import DeepcoreError, PluginHost

REG = PluginHost(load_entrypoints=False).networks
CASES = [(1, 8), (1, 28), (3, 32), (3, 64), (3, 224)]


def cases():
    for name in REG.names():
        info = REG.get(name)
        for ch, size in CASES:
            if info.min_size <= size <= info.max_size:
                marks = [pytest.mark.slow] if size == 224 else []
                yield pytest.param(name, ch, size, id=f"{name}-{ch}x{size}", marks=marks)


@pytest.mark.parametrize(("name", "ch", "size"), list(cases()))
def test_forward_backward(name, ch, size):
    torch.manual_seed(0)
    net = REG.build(name, ch, 7, size)
    x = torch.randn(2, ch, size, size)
    net.train()
    logits, feats = net.forward_with_features(x)
    assert logits.shape == (2, 7) and feats.shape == (2, net.feature_dim)
    logits.sum().backward()
    assert net.head.weight.grad is not None
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)
    net.eval()
    with torch.no_grad():
        assert torch.allclose(net(x), net.head(net.body(x)))


def test_bad_network_and_size():
    with pytest.raises(DeepcoreError, match="unknown network 'resnet19'; did you mean 'resnet18'"):
        REG.build("resnet19", 3, 10, 32)
    with pytest.raises(
        DeepcoreError, match="network 'lenet' takes images of 8 to 64 pixels, not 224"
    ):
        REG.build("lenet", 3, 10, 224)


def test_pretrained_from_local_file_only(tmp_path):
    from torchvision.models import resnet18

    src = resnet18(weights=None)
    torch.save(src.state_dict(), tmp_path / "r18.pt")
    net = REG.build("resnet18", 3, 5, 224, pretrained=tmp_path / "r18.pt")
    assert torch.equal(net.body.layer1[0].conv1.weight, src.layer1[0].conv1.weight)
    one = REG.build("resnet18", 1, 5, 224, pretrained=tmp_path / "r18.pt")
    assert torch.allclose(one.body.conv1.weight, src.conv1.weight.sum(1, keepdim=True))
    with pytest.raises(DeepcoreError, match="does not exist"):
        REG.build("resnet18", 3, 5, 224, pretrained=tmp_path / "missing.pt")
    with pytest.raises(DeepcoreError, match="has no torchvision weights"):
        REG.build("lenet", 1, 5, 28, pretrained=tmp_path / "r18.pt")


@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize(("h", "w"), [(28, 28), (7, 9), (3, 2), (10, 5)])
def test_fast_pooling_equals_max_pool(ceil_mode, h, w):
    from deepcore_core.nets.architectures import MaxPool2x2

    torch.manual_seed(0)
    x = torch.randn(3, 4, h, w)
    x[0, 0] = 0.0  # tied windows
    ref = torch.nn.functional.max_pool2d(x, 2, 2, ceil_mode=ceil_mode)
    pool = MaxPool2x2(ceil_mode=ceil_mode)
    with torch.no_grad():
        assert torch.equal(pool(x), ref)
        cl = x.contiguous(memory_format=torch.channels_last)
        assert torch.equal(pool(cl), ref)
    y = x.clone().requires_grad_(True)  # with a gradient: nn.MaxPool2d itself
    pool(y).sum().backward()
    z = x.clone().requires_grad_(True)
    torch.nn.functional.max_pool2d(z, 2, 2, ceil_mode=ceil_mode).sum().backward()
    assert torch.equal(y.grad, z.grad)


def _plain_features(feats, x):
    return torch.nn.Sequential.forward(feats, x)


@pytest.mark.parametrize("name", ["lenet", "lenet-bn"])
@pytest.mark.parametrize(("ch", "s"), [(1, 28), (1, 9), (3, 32), (3, 11), (1, 64)])
def test_phased_first_stage_equals_plain_modules(name, ch, s):
    torch.manual_seed(s)
    net = REG.build(name, ch, 10, s)
    for m in net.modules():  # batch norm with statistics of its own
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-1, 1)
    feats = net.body[0].eval()
    assert feats.first_stage in (3, 4)
    x = torch.randn(40, ch, s, s)
    with torch.inference_mode():
        first = feats(x)  # the checked call
        assert feats.phased._same
        assert torch.equal(feats(x), _plain_features(feats, x))
        assert torch.equal(first, _plain_features(feats, x))


def test_phased_stage_follows_the_weights_and_keeps_the_state_dict():
    torch.manual_seed(0)
    net = REG.build("lenet", 1, 10, 28)
    keys = [k for k in net.state_dict() if k.startswith("body.0.")]
    assert keys == ["body.0.0.weight", "body.0.0.bias", "body.0.3.weight", "body.0.3.bias"]
    feats, x = net.body[0].eval(), torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        before = feats(x)
        feats[0].weight.mul_(2.0)  # as an optimiser step would
        after = feats(x)
        assert not torch.equal(before, after)
        assert torch.equal(after, _plain_features(feats, x))
        feats[0].bias.data.add_(1.0)  # through .data: no version change, still seen
        assert torch.equal(feats(x), _plain_features(feats, x))
    feats.train()  # training and gradients: the plain modules, gradients as before
    y = x.clone().requires_grad_(True)
    feats(y).sum().backward()
    z = x.clone().requires_grad_(True)
    _plain_features(feats, z).sum().backward()
    assert torch.equal(y.grad, z.grad)


def test_phased_stage_falls_back_when_the_values_differ(monkeypatch):
    from deepcore_core.nets.conv_pool import PhasedConvPool

    torch.manual_seed(0)
    feats = REG.build("lenet", 1, 10, 28).body[0].eval()
    real = PhasedConvPool.phased
    monkeypatch.setattr(PhasedConvPool, "phased", lambda self, x: real(self, x) + 1e-6)
    x = torch.randn(8, 1, 28, 28)
    with torch.no_grad():
        feats[0].weight.add_(1.0)  # new weights: the next call checks again
        assert torch.equal(feats(x), _plain_features(feats, x))
        assert not feats.phased._same
        assert torch.equal(feats(x), _plain_features(feats, x))


def test_phased_stage_checked_on_a_batch_with_nan_stays_on():
    torch.manual_seed(0)
    feats = REG.build("lenet", 1, 10, 28).body[0].eval()
    x = torch.randn(8, 1, 28, 28)
    x[3, 0, 5, 7] = float("nan")
    with torch.no_grad():
        out = feats(x)  # the checked call
        assert feats.phased._same
        ref = _plain_features(feats, x)
        assert torch.equal(out.isnan(), ref.isnan()) and out[3].isnan().any()
        assert torch.equal(out.nan_to_num(), ref.nan_to_num())


def test_phased_stage_applies_only_to_its_shape():
    from deepcore_core.nets.conv_pool import PhasedConvPool

    conv, relu = torch.nn.Conv2d(1, 6, 5), torch.nn.ReLU()
    assert PhasedConvPool.applies([conv, relu, torch.nn.MaxPool2d(2)])
    assert not PhasedConvPool.applies([conv, relu, torch.nn.MaxPool2d(2, ceil_mode=True)])
    assert not PhasedConvPool.applies([conv, relu, torch.nn.MaxPool2d(3)])
    strided = torch.nn.Conv2d(1, 6, 5, stride=2)
    assert not PhasedConvPool.applies([strided, relu, torch.nn.MaxPool2d(2)])
    no_stats = torch.nn.BatchNorm2d(6, track_running_stats=False)
    assert not PhasedConvPool.applies([conv, no_stats, relu, torch.nn.MaxPool2d(2)])


def test_phased_stage_of_a_copied_network_reads_the_copy():
    import copy

    torch.manual_seed(0)
    net = REG.build("lenet", 1, 10, 28).eval()
    twin = copy.deepcopy(net)  # as DeepFool copies the selection model
    assert twin.body[0].phased.stage[0] is twin.body[0][0]
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        twin.body[0][0].weight.add_(1.0)
        assert torch.equal(twin.body[0](x), _plain_features(twin.body[0], x))
        assert not torch.equal(net.body[0](x), twin.body[0](x))
