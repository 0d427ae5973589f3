"""The convolutional blocks, backbones and LightningModules."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import zoo
from zoo.errors import ZooError
from zoo.models import ConvNet, FastCifarNet, ResNet
from zoo.nn import conv as zconv

SHAPES = [(1, 8, 8), (3, 32, 32)]
SMALL = {
    "convnet": {"widths": (8, 16)},
    "resnet": {"widths": (4, 8, 16)},
    "fast_cifar": {"widths": (8, 16, 16, 16)},
}
MODELS = {"convnet": ConvNet, "resnet": ResNet, "fast_cifar": FastCifarNet}


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("net_cls", [zconv.ConvNet, zconv.ResNet, zconv.FastCifarNet])
def test_backbone_output_shape(net_cls, shape):
    net = net_cls(shape[0], 7)
    assert net(torch.randn(3, *shape)).shape == (3, 7)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", list(MODELS))
def test_model_output_shape(name, shape):
    model = MODELS[name](task="multiclass", num_classes=5, input_shape=list(shape), **SMALL[name])
    assert model(torch.randn(2, *shape)).shape == (2, 5)
    # flat rows are reshaped to input_shape
    assert model(torch.randn(2, shape[0] * shape[1] * shape[2])).shape == (2, 5)


def test_convnet_skips_pooling_below_one_pixel():
    net = zconv.ConvNet(1, 3, widths=(4, 4, 4, 4, 4), input_size=8)
    pools = [b.pool for b in net.features]
    assert sum(isinstance(p, nn.MaxPool2d) for p in pools) == 3
    assert net(torch.randn(2, 1, 8, 8)).shape == (2, 3)


@pytest.mark.parametrize(("cin", "cout", "stride"), [(4, 8, 1), (4, 4, 2), (4, 8, 2)])
def test_conv_block_projection_skip(cin, cout, stride):
    torch.manual_seed(0)
    block = zconv.ConvBlock(cin, cout, stride=stride, residual=True).eval()
    proj = block.skip[0]
    assert isinstance(proj, nn.Conv2d) and proj.kernel_size == (1, 1) and proj.stride == (stride, stride)
    assert isinstance(block.skip[1], nn.BatchNorm2d)
    x = torch.randn(2, cin, 8, 8)
    with torch.no_grad():
        main = block.act(block.norm(block.conv(x)))
        skip = block.skip[1](nn.functional.conv2d(x, proj.weight, stride=stride))
        torch.testing.assert_close(block(x), main + skip)
    assert block(x).shape == (2, cout, 8 // stride, 8 // stride)


def test_conv_block_identity_skip_and_pool_after_skip():
    block = zconv.ConvBlock(4, 4, residual=True, pool="avg").eval()
    assert isinstance(block.skip, nn.Identity)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        expected = nn.functional.avg_pool2d(block.main(x) + x, 2)
        torch.testing.assert_close(block(x), expected)
    assert zconv.ConvBlock(4, 4).skip is None


def test_conv_block_bias_only_without_norm():
    assert zconv.ConvBlock(3, 4, norm="none").conv.bias is not None
    assert zconv.ConvBlock(3, 4, norm="batch").conv.bias is None


def test_norm_kinds():
    assert isinstance(zconv.make_norm2d("batch", 16), nn.BatchNorm2d)
    assert isinstance(zconv.make_norm2d("none", 16), nn.Identity)
    gn = zconv.make_norm2d("group", 16)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 8
    assert zconv.make_norm2d("group", 6).num_groups == 6
    assert zconv.make_norm2d("group", 12).num_groups == 6
    assert zconv.make_norm2d("group", 12, groups=5).num_groups == 4
    for kind, cls in [("batch", nn.BatchNorm2d), ("group", nn.GroupNorm), ("none", nn.Identity)]:
        assert isinstance(zconv.ConvBlock(3, 8, norm=kind).norm, cls)


def test_unknown_names_raise():
    with pytest.raises(ZooError, match="batch, group"):
        zconv.make_norm2d("layer", 4)
    with pytest.raises(ZooError, match="max, avg"):
        zconv.ConvBlock(3, 4, pool="sum")
    with pytest.raises(ZooError, match="model.norm"):
        ConvNet(task="multiclass", num_classes=3, input_shape=[1, 8, 8], norm="instance")
    with pytest.raises(ZooError, match="model.input_shape"):
        ResNet(task="multiclass", num_classes=3, input_shape=[64])
    with pytest.raises(ZooError, match="model.activation"):
        FastCifarNet(task="multiclass", num_classes=3, input_shape=[1, 8, 8], activation="nope")


@pytest.mark.parametrize("name", list(MODELS))
def test_channels_last_matches(name):
    torch.manual_seed(0)
    kw = {"task": "multiclass", "num_classes": 4, "input_shape": [3, 16, 16], **SMALL[name]}
    plain = MODELS[name](**kw).eval()
    fast = MODELS[name](channels_last=True, **kw).eval()
    fast.load_state_dict(plain.state_dict())
    convs = [m.weight for m in fast.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fast(x), plain(x), atol=1e-5, rtol=1e-5)


def test_convnet_learns_quadrants():
    torch.manual_seed(0)
    n = 64
    y = torch.arange(n) % 4
    x = 0.1 * torch.randn(n, 1, 8, 8)
    for i, q in enumerate(y.tolist()):
        r, c = divmod(q, 2)
        x[i, 0, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 1.0
    model = ConvNet(task="multiclass", num_classes=4, input_shape=[1, 8, 8], widths=(8, 16))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = model.compute_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("name", list(MODELS))
def test_bf16_autocast(name):
    model = MODELS[name](task="multiclass", num_classes=3, input_shape=[3, 16, 16], **SMALL[name]).eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert out.shape == (2, 3) and out.dtype == torch.bfloat16
    # bf16 keeps ~3 significant digits: within 2% of the output scale of the fp32 pass (0.3-0.5% seen)
    torch.testing.assert_close(out.float(), reference, atol=0.02 * reference.abs().max().item(), rtol=0)


def test_registry_presets():
    model = zoo.create_model("resnet8", task="multiclass", num_classes=10, input_shape=[3, 32, 32])
    assert isinstance(model, ResNet)
    assert model.hparams.blocks_per_stage == 1
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    convs = sum(isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) for m in model.modules())
    assert convs == 7  # 6n + 1 convs + the final Linear = ResNet-8
    r20 = zoo.create_model(
        "resnet20", task="multiclass", num_classes=10, input_shape=[3, 32, 32], widths=[4, 8, 16]
    )
    assert r20.hparams.blocks_per_stage == 3 and list(r20.hparams.widths) == [4, 8, 16]
    assert {"resnet", "resnet8", "resnet20"} <= set(zoo.list_models("resnet*"))
    assert {"convnet", "fast_cifar"} <= set(zoo.list_models())


def _randomize_norms(net: nn.Module) -> nn.Module:
    """Non-trivial batch-norm statistics and affine terms, so a wrong order of ops shows."""
    torch.manual_seed(1)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    return net.eval()


def _block_reference(block: zconv.ConvBlock, x: torch.Tensor, act=torch.relu) -> torch.Tensor:
    """conv -> batch norm (eval) -> activation, written with torch.nn.functional."""
    conv, bn = block.conv, block.norm
    y = nn.functional.conv2d(x, conv.weight, conv.bias, stride=conv.stride, padding=conv.padding)
    y = nn.functional.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, eps=bn.eps)
    return act(y)


@pytest.mark.parametrize("head", ["avg", "flatten"])
def test_convnet_equals_a_functional_reference(head):
    torch.manual_seed(0)
    net = _randomize_norms(
        zconv.ConvNet(2, 5, widths=(4, 8), head=head, hidden=(16,), head_dropout=0.5, input_size=(12, 10))
    )
    x = torch.randn(3, 2, 12, 10)
    y = x
    for block in net.features:  # one block per stage, each ending in 2x2 max pooling
        y = nn.functional.max_pool2d(_block_reference(block, y), 2)
    assert y.shape == (3, 8, 3, 2)
    y = y.flatten(1) if head == "flatten" else y.mean(dim=(2, 3))
    linears = [m for m in net.head if isinstance(m, nn.Linear)]
    assert [m.in_features for m in linears] == [8 * 3 * 2 if head == "flatten" else 8, 16]
    expected = nn.functional.linear(torch.relu(nn.functional.linear(y, *_wb(linears[0]))), *_wb(linears[1]))
    with torch.no_grad():
        torch.testing.assert_close(net(x), expected)


def _wb(linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    return linear.weight, linear.bias


def test_resnet_basic_block_and_fast_cifar_head_equal_their_formulas():
    torch.manual_seed(0)
    block = _randomize_norms(zconv.BasicBlock(4, 8, stride=2))
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        inner = _block_reference(block.block2, _block_reference(block.block1, x), act=lambda t: t)
        proj, bn = block.skip
        skip = nn.functional.batch_norm(
            nn.functional.conv2d(x, proj.weight, stride=2),
            bn.running_mean,
            bn.running_var,
            bn.weight,
            bn.bias,
        )
        torch.testing.assert_close(block(x), torch.relu(inner + skip))

    net = _randomize_norms(zconv.FastCifarNet(3, 4, widths=(4, 8), activation="relu", input_size=8))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        y = _block_reference(net.features[0], x)
        y = nn.functional.max_pool2d(_block_reference(net.features[1], y), 2)
        expected = nn.functional.linear(y.amax(dim=(2, 3)), *_wb(net.head[-1])) * net.logit_scale
        torch.testing.assert_close(net(x), expected)


def test_flatten_head_needs_the_input_size_and_checks_its_options():
    with pytest.raises(ZooError, match="head='flatten' needs input_size"):
        zconv.ConvNet(1, 3, head="flatten")
    with pytest.raises(ZooError, match="model.head must be one of avg, flatten; got 'gap'"):
        ConvNet(task="multiclass", num_classes=3, input_shape=[1, 8, 8], head="gap")
    with pytest.raises(ZooError, match=r"model.hidden must be a list of positive ints; got \[0\]"):
        ConvNet(task="multiclass", num_classes=3, input_shape=[1, 8, 8], hidden=[0])
    model = ConvNet(task="multiclass", num_classes=3, input_shape=[1, 28, 20], head="flatten", hidden=[32])
    assert model.net.head[1].in_features == 64 * 7 * 5  # the non-square map, flattened
    assert model(torch.randn(2, 560)).shape == (2, 3)


INIT_CASES = {
    # widths large enough that each model pools thousands of conv weights
    "convnet": {"widths": (32, 48), "residual": True, "hidden": (64,)},
    "resnet": {"widths": (16, 32)},
    "fast_cifar": {"widths": (32, 48, 48)},
}


def _expected_std(scheme: str, weight: torch.Tensor, gain: float) -> float:
    fan_in = weight[0].numel()
    fan_out = weight.shape[0] * weight[0, 0].numel()
    if scheme == "kaiming":
        return gain / fan_in**0.5
    return gain * (2.0 / (fan_in + fan_out)) ** 0.5  # uniform(-b, b), b = gain * sqrt(6 / (in + out))


@pytest.mark.parametrize("scheme", ["kaiming", "xavier"])
@pytest.mark.parametrize("name", list(MODELS))
def test_conv_models_take_init_with_the_activations_gain(name, scheme):
    """Every conv (and hidden Linear) gets the gain of the activation its output reaches next, the
    output layer and ConvBlock skip projections (added after the activation) gain 1; biases 0.
    Was: "ConvNet has no option 'init'"."""
    torch.manual_seed(0)
    model = MODELS[name](
        task="multiclass",
        num_classes=50,
        input_shape=[3, 16, 16],
        activation="tanh",
        init=scheme,
        **INIT_CASES[name],
    )
    assert model.hparams.init == scheme
    tanh = nn.init.calculate_gain("tanh")
    net = model.net
    linear_gain = set()
    if name == "convnet":
        linear_gain = {id(b.skip[0]) for b in net.features if isinstance(b.skip, nn.Sequential)}
        assert linear_gain  # the 3 -> 32 and 32 -> 48 projections
    head = [m for m in net.head.modules() if isinstance(m, nn.Linear)]
    linear_gain.add(id(head[-1]))
    layers = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert not any(m.bias is not None and m.bias.any() for m in layers)
    for gain_one in (False, True):
        picked = [m for m in layers if (id(m) in linear_gain) == gain_one]
        normalized = torch.cat(
            [m.weight.flatten() / _expected_std(scheme, m.weight, 1.0 if gain_one else tanh) for m in picked]
        )
        # std 1 for the right gain, 5/3 or 3/5 for the wrong one; fewer weights have gain 1: a looser bound
        assert normalized.std().item() == pytest.approx(1.0, rel=0.02 if not gain_one else 0.06)


def test_conv_init_is_checked_and_defaults_to_pytorchs():
    with pytest.raises(ZooError, match=r"^model.init must be one of default, kaiming, xavier; got 'he'.$"):
        ResNet(task="multiclass", num_classes=3, input_shape=[1, 8, 8], init="he")
    with pytest.raises(ZooError, match=r"^Unknown init 'he'. Valid inits: default, kaiming, xavier.$"):
        zconv.ConvNet(1, 3, init="he")
    torch.manual_seed(0)
    default = zconv.FastCifarNet(3, 4, widths=(4, 8), init="default")
    torch.manual_seed(0)
    plain = zconv.FastCifarNet(3, 4, widths=(4, 8))
    pairs = zip(default.state_dict().values(), plain.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


CONV_SOFTMAX = (
    "model.activation 'softmax' is not elementwise (it mixes the values along the last dimension, an "
    "image's width in a conv net); valid choices for a conv net: elu, gelu, identity, leaky_relu, mish, "
    "relu, sigmoid, silu, softplus, tanh."
)


@pytest.mark.parametrize("name", list(MODELS))
def test_conv_models_refuse_softmax_as_their_activation(name):
    """softmax over the last dimension of (N, C, H, W) made every image row sum to 1 (was accepted)."""
    with pytest.raises(ZooError) as info:
        MODELS[name](task="multiclass", num_classes=3, input_shape=[1, 8, 8], activation="softmax")
    assert str(info.value) == CONV_SOFTMAX
    with pytest.raises(ZooError) as info:
        zconv.ConvBlock(3, 4, activation="softmax")
    assert str(info.value) == CONV_SOFTMAX.removeprefix("model.")
    with pytest.raises(ZooError, match="^activation 'softmax' is not elementwise"):
        zconv.BasicBlock(3, 4, activation="softmax")
