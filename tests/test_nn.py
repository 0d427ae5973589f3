"""The plain-torch building blocks: activations, norms, init and the MLP backbone."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from zoo.errors import UnknownNameError, ZooError
from zoo.nn import MLP, MLPBlock, init_weights, make_activation, make_norm1d
from zoo.nn.layers import ACTIVATION_GAINS, activation_gain
from zoo.registry import ACTIVATIONS


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize(
    ("hidden", "out", "x_shape"),
    [([16, 8], 3, (5, 12)), ([], 1, (4, 12)), ([7], 10, (2, 3, 4)), ([4, 4, 4], 2, (1, 12))],
)
def test_mlp_output_shapes(hidden: list[int], out: int, x_shape: tuple[int, ...]) -> None:
    net = MLP(12, hidden, out)
    assert len(net.blocks) == len(hidden)
    y = net(torch.randn(*x_shape))  # extra dims are flattened
    assert y.shape == (x_shape[0], out)
    assert net.features(torch.randn(*x_shape)).shape == (x_shape[0], hidden[-1] if hidden else 12)


def test_mlp_layer_widths() -> None:
    net = MLP(10, [32, 16], 4, activation="gelu", norm="layer", dropout=0.2)
    widths = [(b.linear.in_features, b.linear.out_features) for b in net.blocks]
    assert widths == [(10, 32), (32, 16)]
    assert (net.head.in_features, net.head.out_features) == (16, 4)
    assert isinstance(net.blocks[0].act, nn.GELU)
    assert isinstance(net.blocks[0].drop, nn.Dropout) and net.blocks[0].drop.p == 0.2
    assert isinstance(MLP(10, [8], 2).blocks[0].drop, nn.Identity)


REFERENCES = {
    "relu": F.relu,
    "leaky_relu": F.leaky_relu,
    "elu": F.elu,
    "gelu": F.gelu,
    "silu": F.silu,
    "mish": F.mish,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "identity": lambda t: t,
    "softmax": lambda t: F.softmax(t, dim=-1),
}


def test_every_activation_has_a_reference() -> None:
    assert set(ACTIVATIONS.list()) == set(REFERENCES)


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_activation_matches_torch(name: str) -> None:
    x = torch.randn(4, 6) * 3
    act = make_activation(name)
    assert isinstance(act, nn.Module)
    torch.testing.assert_close(act(x), REFERENCES[name](x))
    assert make_activation(name) is not act  # a fresh module each time


def test_softmax_is_over_last_dim() -> None:
    x = torch.randn(3, 4, 5)
    p = make_activation("softmax")(x)
    torch.testing.assert_close(p.sum(-1), torch.ones(3, 4))
    assert not torch.allclose(p.sum(0), torch.ones(4, 5))
    assert (p > 0).all()


def test_unknown_activation() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'gelu'") as info:
        make_activation("gelus")
    assert isinstance(info.value, ZooError)
    assert "relu" in str(info.value)
    with pytest.raises(ZooError, match="Unknown activation 'swishy'"):
        MLP(4, [4], 2, activation="swishy")


def test_norms() -> None:
    assert isinstance(make_norm1d("none", 8), nn.Identity)
    bn = make_norm1d("batch", 8)
    assert isinstance(bn, nn.BatchNorm1d) and bn.num_features == 8
    ln = make_norm1d("layer", 8)
    assert isinstance(ln, nn.LayerNorm) and ln.normalized_shape == (8,)
    with pytest.raises(ZooError, match="Unknown norm 'group'. Valid norms: none, batch, layer"):
        make_norm1d("group", 8)
    with pytest.raises(ZooError, match="Unknown norm"):
        MLP(4, [4], 2, norm="instance")


def test_block_norm_and_bias() -> None:
    batch = MLPBlock(4, 6, norm="batch")
    assert isinstance(batch.norm, nn.BatchNorm1d)
    assert batch.linear.bias is None  # batch norm's shift replaces the bias
    layer = MLPBlock(4, 6, norm="layer")
    assert isinstance(layer.norm, nn.LayerNorm)
    assert layer.linear.bias is not None
    assert isinstance(MLPBlock(4, 6).norm, nn.Identity)
    # layer norm normalizes each example before the activation
    block = MLPBlock(4, 6, norm="layer", activation="identity")
    out = block(torch.randn(5, 4))
    torch.testing.assert_close(out.mean(-1), torch.zeros(5), atol=1e-5, rtol=0)


def test_block_without_residual() -> None:
    block = MLPBlock(5, 3, activation="tanh")
    assert block.skip is None
    x = torch.randn(4, 5)
    torch.testing.assert_close(block(x), torch.tanh(block.linear(x)))


def test_residual_same_width_is_identity_skip() -> None:
    block = MLPBlock(6, 6, activation="relu", residual=True)
    assert isinstance(block.skip, nn.Identity)
    x = torch.randn(4, 6)
    torch.testing.assert_close(block(x), x + F.relu(block.linear(x)))


def test_residual_projection_when_widths_differ() -> None:
    block = MLPBlock(5, 3, activation="tanh", residual=True)
    assert isinstance(block.skip, nn.Linear)
    assert block.skip.bias is None
    assert block.skip.weight.shape == (3, 5)
    x = torch.randn(4, 5)
    y = torch.tanh(x @ block.linear.weight.T + block.linear.bias)
    torch.testing.assert_close(block(x), y + x @ block.skip.weight.T)


def test_residual_mlp_runs() -> None:
    net = MLP(8, [8, 16, 16], 2, residual=True, norm="batch")
    kinds = [type(b.skip) for b in net.blocks]
    assert kinds == [nn.Identity, nn.Linear, nn.Identity]
    assert net(torch.randn(3, 8)).shape == (3, 2)


def test_kaiming_init_std() -> None:
    fan_in = 1024
    net = MLP(fan_in, [512], 2, init="kaiming", activation="relu")
    w = net.blocks[0].linear.weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.03)
    assert w.mean().item() == pytest.approx(0.0, abs=3e-3)
    assert torch.equal(net.blocks[0].linear.bias, torch.zeros(512))
    # tanh uses its own gain 5/3
    tanh_net = MLP(fan_in, [512], 2, init="kaiming", activation="tanh")
    assert tanh_net.blocks[0].linear.weight.std().item() == pytest.approx(5 / 3 / math.sqrt(fan_in), rel=0.03)


# the gain each registered activation's layers get: torch's own where torch knows the activation,
# the documented closest otherwise (zoo.nn.layers.ACTIVATION_GAINS)
GAIN = nn.init.calculate_gain
EXPECTED_GAINS = {
    "relu": GAIN("relu"),
    "leaky_relu": GAIN("leaky_relu", 0.01),  # nn.LeakyReLU's slope
    "tanh": GAIN("tanh"),
    "sigmoid": GAIN("sigmoid"),
    "identity": GAIN("linear"),
    "gelu": GAIN("relu"),
    "silu": GAIN("relu"),
    "mish": GAIN("relu"),
    "elu": GAIN("relu"),
    "softplus": GAIN("linear"),
    "softmax": GAIN("linear"),
}


def test_every_activation_has_a_chosen_gain() -> None:
    assert set(ACTIVATIONS.list()) == set(EXPECTED_GAINS)
    assert set(EXPECTED_GAINS) <= set(ACTIVATION_GAINS)
    for name, gain in EXPECTED_GAINS.items():
        assert activation_gain(name) == pytest.approx(gain), name
    assert activation_gain("selu") == GAIN("selu")  # torch knows it, should one be registered
    assert activation_gain("ReLU") == GAIN("relu")  # names are case-insensitive, as in the registry
    assert activation_gain("my_registered_activation") == 1.0


@pytest.mark.parametrize("scheme", ["kaiming", "xavier"])
@pytest.mark.parametrize("activation", sorted(EXPECTED_GAINS))
def test_init_std_follows_the_activation_and_the_head_is_linear(scheme: str, activation: str) -> None:
    """Hidden layers: the gain of their activation; the output layer (no activation follows it): 1.
    Were: identity kaiming 0.0447 (relu's gain) for 0.0316, and a tanh net's head 5/3/sqrt(fan_in)."""
    fan_in, hidden, out = 400, 800, 300

    def expected_std(gain: float, fan_in: int, fan_out: int) -> float:
        if scheme == "kaiming":
            return gain / math.sqrt(fan_in)
        return gain * math.sqrt(2.0 / (fan_in + fan_out))  # uniform(-b, b) has std b / sqrt(3)

    net = MLP(fan_in, [hidden], out, activation=activation, init=scheme)
    w = net.blocks[0].linear.weight
    gain = EXPECTED_GAINS[activation]
    assert w.std().item() == pytest.approx(expected_std(gain, fan_in, hidden), rel=0.02)
    assert net.head.weight.std().item() == pytest.approx(expected_std(1.0, hidden, out), rel=0.02)
    assert not net.blocks[0].linear.bias.any() and not net.head.bias.any()


def test_residual_projections_get_the_linear_gain() -> None:
    net = MLP(300, [600], 2, activation="tanh", residual=True, init="kaiming")
    skip = net.blocks[0].skip
    assert isinstance(skip, nn.Linear)
    assert skip.weight.std().item() == pytest.approx(1 / math.sqrt(300), rel=0.02)
    assert net.blocks[0].linear.weight.std().item() == pytest.approx(5 / 3 / math.sqrt(300), rel=0.02)


def test_softmax_stays_an_mlp_hidden_activation_over_features() -> None:
    net = MLP(6, [5], 2, activation="softmax")
    h = net.features(torch.randn(4, 6))
    torch.testing.assert_close(h.sum(-1), torch.ones(4))


def test_xavier_init_within_uniform_bound() -> None:
    fan_in, fan_out = 300, 200
    layer = nn.Linear(fan_in, fan_out)
    init_weights(layer, "xavier", activation="relu")
    bound = math.sqrt(2.0) * math.sqrt(6 / (fan_in + fan_out))
    w = layer.weight
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.95 * bound  # it fills the range
    assert w.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.03)  # uniform(-b, b) std
    assert torch.equal(layer.bias, torch.zeros(fan_out))


def test_default_init_untouched() -> None:
    layer = nn.Linear(20, 10)
    before = [p.detach().clone() for p in layer.parameters()]
    init_weights(layer, "default")
    assert all(torch.equal(a, b) for a, b in zip(before, layer.parameters(), strict=True))
    # MLP with init="default" keeps PyTorch's kaiming-uniform(a=sqrt(5)): |w| <= 1/sqrt(fan_in)
    net = MLP(400, [50], 2)
    assert net.blocks[0].linear.weight.abs().max().item() <= 1 / math.sqrt(400)
    assert net.blocks[0].linear.bias.abs().max().item() > 0


def test_init_reaches_conv_layers() -> None:
    model = nn.Sequential(nn.Conv2d(16, 32, 3), nn.Linear(4, 4, bias=False))
    init_weights(model, "kaiming")
    w = model[0].weight
    assert w.std().item() == pytest.approx(math.sqrt(2 / (16 * 9)), rel=0.05)
    assert torch.equal(model[0].bias, torch.zeros(32))


def test_unknown_init() -> None:
    with pytest.raises(ZooError, match="Unknown init 'orthogonal'. Valid inits: default, kaiming, xavier"):
        init_weights(nn.Linear(2, 2), "orthogonal")
    with pytest.raises(ZooError, match="Unknown init"):
        MLP(4, [4], 2, init="he")


def test_mlp_equals_its_layers_by_hand() -> None:
    torch.manual_seed(0)
    net = MLP(8, [8, 16, 16], 3, activation="tanh", norm="layer", residual=True).eval()
    x = torch.randn(4, 8)
    h = x
    with torch.no_grad():
        for block in net.blocks:
            lin, ln = block.linear, block.norm
            z = F.layer_norm(h @ lin.weight.T + lin.bias, (lin.out_features,), ln.weight, ln.bias, ln.eps)
            skip = h if lin.in_features == lin.out_features else h @ block.skip.weight.T
            h = skip + torch.tanh(z)
        torch.testing.assert_close(net(x), h @ net.head.weight.T + net.head.bias)
