"""Parameter groups, optimizers by name and the learning-rate schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from zoo.errors import UnknownNameError, ZooError
from zoo.optim import (
    CosineAnnealing,
    OneCycle,
    WarmupCosineLR,
    create_optimizer,
    create_scheduler,
    param_groups,
    scheduler_interval,
    training_horizon,
)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(3, 8)
        self.norm = nn.LayerNorm(8)
        self.fc2 = nn.Linear(8, 1)
        self.pos_embed = nn.Parameter(torch.zeros(4, 8))  # a matrix, exempted by name
        self.frozen = nn.Parameter(torch.ones(2, 2), requires_grad=False)

    def no_weight_decay(self) -> list[str]:
        return ["pos_embed"]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.norm(self.fc1(x))))


def ids(params) -> set[int]:
    return {id(p) for p in params}


def test_param_groups_split_decay_and_no_decay() -> None:
    net = Net()
    groups = param_groups(net)
    assert len(groups) == 2
    assert "weight_decay" not in groups[0]
    assert groups[1]["weight_decay"] == 0.0
    assert ids(groups[0]["params"]) == ids([net.fc1.weight, net.fc2.weight])
    assert ids(groups[1]["params"]) == ids(
        [net.fc1.bias, net.fc2.bias, net.norm.weight, net.norm.bias, net.pos_embed]
    )
    # frozen parameters are in neither group
    assert id(net.frozen) not in ids(groups[0]["params"]) | ids(groups[1]["params"])


def test_param_groups_decay_biases_and_norms_but_not_named_exemptions() -> None:
    net = Net()
    groups = param_groups(net, decay_bias_and_norm=True)
    assert len(groups) == 2 and "weight_decay" not in groups[0]
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert ids(groups[0]["params"]) == ids(p for p in trainable if p is not net.pos_embed)
    assert ids(groups[1]["params"]) == ids([net.pos_embed])  # no_weight_decay() wins over the flag
    assert len(param_groups(nn.Linear(3, 3), decay_bias_and_norm=True)) == 1


def test_param_groups_without_exempt_parameters_is_one_group() -> None:
    groups = param_groups(nn.Linear(3, 3, bias=False))
    assert len(groups) == 1


def test_optimizer_groups_get_their_weight_decay() -> None:
    net = Net()
    opt = create_optimizer(net, "adamw", lr=1e-3, weight_decay=0.3)
    assert isinstance(opt, torch.optim.AdamW)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.3, 0.0]
    assert all(g["lr"] == 1e-3 for g in opt.param_groups)


def _regression_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
    return model, x, y


@pytest.mark.parametrize(
    ("name", "kwargs", "cls"),
    [
        ("sgd", {"lr": 0.05, "momentum": 0.9, "nesterov": True}, torch.optim.SGD),
        ("adam", {"lr": 0.01}, torch.optim.Adam),
        ("adamw", {"lr": 0.01, "weight_decay": 0.01}, torch.optim.AdamW),
        ("adafactor", {"lr": 0.05}, torch.optim.Adafactor),
        ("rmsprop", {"lr": 0.005}, torch.optim.RMSprop),
        ("adagrad", {"lr": 0.1}, torch.optim.Adagrad),
    ],
)
def test_each_optimizer_reduces_loss(name: str, kwargs: dict, cls: type) -> None:
    model, x, y = _regression_problem()
    opt = create_optimizer(model, name, **kwargs)
    assert isinstance(opt, cls)
    if name == "sgd":
        assert opt.param_groups[0]["nesterov"] is True
        assert opt.param_groups[0]["momentum"] == 0.9
    start = nn.functional.mse_loss(model(x), y).item()
    for _ in range(30):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
    end = nn.functional.mse_loss(model(x), y).item()
    assert end < 0.7 * start


def test_create_optimizer_drops_none_and_rejects_unknown() -> None:
    model, _, _ = _regression_problem()
    opt = create_optimizer(model, "sgd", lr=0.1, momentum=None)
    assert opt.param_groups[0]["momentum"] == 0
    with pytest.raises(UnknownNameError, match="Did you mean 'adamw'"):
        create_optimizer(model, "adamww")


@pytest.mark.parametrize("decay_bias_and_norm", [False, True])
def test_weight_decay_leaves_bias_untouched(decay_bias_and_norm: bool) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    with torch.no_grad():
        model[1].weight.fill_(2.0)
        model[1].bias.fill_(1.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = create_optimizer(model, "adamw", lr=0.1, weight_decay=5.0, decay_bias_and_norm=decay_bias_and_norm)
    for _ in range(3):
        opt.zero_grad()
        (model(torch.randn(2, 4)) * 0.0).sum().backward()  # zero gradient: only decay can move weights
        opt.step()
    after = dict(model.named_parameters())
    shrink = (1 - 0.1 * 5.0) ** 3
    torch.testing.assert_close(after["0.weight"].detach(), before["0.weight"] * shrink)
    for name in ("0.bias", "1.weight", "1.bias"):
        if decay_bias_and_norm:
            torch.testing.assert_close(after[name].detach(), before[name] * shrink)
        else:
            assert torch.equal(after[name].detach(), before[name]), name


# ----------------------------------------------------------------------------- schedules


def _opt(lr: float = 1.0, n_groups: int = 1) -> torch.optim.Optimizer:
    groups = [{"params": [nn.Parameter(torch.zeros(1))], "lr": lr * (i + 1)} for i in range(n_groups)]
    return torch.optim.SGD(groups, lr=lr, momentum=0.9)


def _lrs(opt: torch.optim.Optimizer, sched, steps: int, group: int = 0) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[group]["lr"])
        opt.step()
        sched.step()
    return out


def warmup_cosine_reference(step: int, warmup: int, total: int, min_ratio: float) -> float:
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / (total - warmup))
    return min_ratio + (1 - min_ratio) * (1 + math.cos(math.pi * t)) / 2


@pytest.mark.parametrize(("warmup", "total", "min_ratio"), [(5, 30, 0.1), (0, 20, 0.0), (3, 10, 0.5)])
def test_warmup_cosine_matches_closed_form(warmup: int, total: int, min_ratio: float) -> None:
    base = 0.4
    opt = _opt(base, n_groups=2)
    sched = create_scheduler(
        opt, "warmup_cosine", warmup_steps=warmup, total_steps=total, min_lr_ratio=min_ratio
    )
    assert isinstance(sched, WarmupCosineLR)
    assert scheduler_interval(sched) == "step"
    steps = total + 5  # flat after the end
    got0 = _lrs(opt, sched, steps)
    for step, lr in enumerate(got0):
        assert lr == pytest.approx(
            base * warmup_cosine_reference(step, warmup, total, min_ratio), rel=1e-9
        ), step
    # the second group has its own base lr (2 * base) and follows the same multiplier
    assert opt.param_groups[1]["lr"] == pytest.approx(2 * base * min_ratio)
    assert got0[-1] == pytest.approx(base * min_ratio)
    if warmup:
        assert got0[0] == pytest.approx(base / warmup)
        assert got0[warmup] == pytest.approx(base)


def test_warmup_cosine_bad_warmup() -> None:
    with pytest.raises(ZooError) as info:
        WarmupCosineLR(_opt(), warmup_steps=11, total_steps=10)
    assert str(info.value) == (
        "model.lr_scheduler.warmup_steps must be in [0, 10], the run's optimizer steps (given); got 11. "
        "A fraction below 1 (0.05) scales with the run."
    )
    with (
        training_horizon(120),
        pytest.raises(ZooError, match=r"in \[0, 120\], the run's optimizer steps \(the "),
    ):
        WarmupCosineLR(_opt(), warmup_steps=500)
    with pytest.raises(ZooError, match="warmup_steps"):
        WarmupCosineLR(_opt(), warmup_steps=-1, total_steps=10)


@pytest.mark.parametrize(
    ("schedule", "kwargs", "message"),
    [
        (
            WarmupCosineLR,
            {"min_lr_ratio": -1.0},
            "model.lr_scheduler.min_lr_ratio must be in [0, 1]; got -1.0.",
        ),
        (
            WarmupCosineLR,
            {"min_lr_ratio": 2.0},
            "model.lr_scheduler.min_lr_ratio must be in [0, 1]; got 2.0.",
        ),
        (CosineAnnealing, {"min_lr": -1.0}, "model.lr_scheduler.min_lr must be >= 0; got -1.0."),
    ],
    ids=["negative ratio", "ratio above 1", "negative floor"],
)
def test_a_schedule_whose_end_rate_is_negative_is_refused(schedule: type, kwargs: dict, message: str) -> None:
    """A negative final rate made the optimizer climb the loss for the end of the run (rc 0)."""
    with pytest.raises(ZooError) as info:
        schedule(_opt(), total_steps=10, **kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize("estimate", [0, -1])  # limit_train_batches 0; an unsized loader, no max_steps
def test_a_schedule_from_a_trainer_that_plans_no_steps_says_why(estimate: int) -> None:
    expected = (
        r"^warmup_cosine takes its length from the Trainer, which plans no training steps "
        rf"\(estimated_stepping_batches {estimate}\): trainer.limit_train_batches 0 trains none"
    )
    with training_horizon(estimate), pytest.raises(ZooError, match=expected):
        WarmupCosineLR(_opt())
    with pytest.raises(ZooError, match="^warmup_cosine needs total_steps"):  # outside a Trainer
        WarmupCosineLR(_opt())


@pytest.mark.parametrize("eta_min", [0.0, 0.01])
def test_cosine_matches_closed_form(eta_min: float) -> None:
    base, total = 0.5, 12
    opt = _opt(base)
    sched = create_scheduler(opt, "cosine", total_steps=total, min_lr=eta_min)
    assert isinstance(sched, CosineAnnealing)
    assert scheduler_interval(sched) == "step"
    for t, lr in enumerate(_lrs(opt, sched, total + 1)):
        expected = eta_min + (base - eta_min) * (1 + math.cos(math.pi * t / total)) / 2
        assert lr == pytest.approx(expected, rel=1e-6, abs=1e-9), t


def test_cosine_holds_min_lr_after_total_steps() -> None:
    # torch's cosine is periodic: at step 11 of a 10-step run it had climbed back to 0.122
    base, total, floor = 1.0, 10, 0.1
    opt = _opt(base, n_groups=2)
    sched = CosineAnnealing(opt, total_steps=total, min_lr=floor)
    got = _lrs(opt, sched, total + 5)
    expected = [
        floor + (base - floor) * (1 + math.cos(math.pi * min(t, total) / total)) / 2 for t in range(total + 5)
    ]
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert got[total:] == [floor] * 5
    assert opt.param_groups[1]["lr"] == floor  # every group ends at min_lr


def test_onecycle_matches_torch() -> None:
    kwargs = {"total_steps": 25, "pct_start": 0.4, "div_factor": 10.0, "final_div_factor": 100.0}
    opt_zoo, opt_torch = _opt(0.3), _opt(0.3)
    zoo_sched = create_scheduler(opt_zoo, "onecycle", **kwargs)  # max_lr defaults to the optimizer's lr
    assert isinstance(zoo_sched, OneCycle)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt_torch, max_lr=0.3, **kwargs)
    got, expected = _lrs(opt_zoo, zoo_sched, 25), _lrs(opt_torch, ref, 25)
    assert got == pytest.approx(expected, rel=1e-12)
    assert max(got) == pytest.approx(0.3)
    assert got[0] == pytest.approx(0.03)


def test_onecycle_explicit_max_lr_and_three_phase() -> None:
    kwargs = {"total_steps": 20, "three_phase": True, "anneal_strategy": "linear"}
    opt_zoo, opt_torch = _opt(0.01), _opt(0.01)
    zoo_sched = OneCycle(opt_zoo, max_lr=1.0, **kwargs)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt_torch, max_lr=1.0, **kwargs)
    assert _lrs(opt_zoo, zoo_sched, 20) == pytest.approx(_lrs(opt_torch, ref, 20), rel=1e-12)


def test_step_lr_halves() -> None:
    opt = _opt(0.8)
    sched = create_scheduler(opt, "step", step_size=3, gamma=0.5)
    assert isinstance(sched, torch.optim.lr_scheduler.StepLR)
    assert scheduler_interval(sched) == "epoch"
    assert _lrs(opt, sched, 9) == pytest.approx([0.8] * 3 + [0.4] * 3 + [0.2] * 3)


def test_exponential() -> None:
    opt = _opt(1.0)
    sched = create_scheduler(opt, "exponential", gamma=0.9)
    assert _lrs(opt, sched, 4) == pytest.approx([1.0, 0.9, 0.81, 0.729])


def test_plateau_reduces_after_patience() -> None:
    opt = _opt(1.0)
    sched = create_scheduler(opt, "plateau", patience=2, factor=0.1)
    assert isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau)
    lrs = []
    for metric in [1.0, 0.5, 0.6, 0.6, 0.6, 0.6]:
        sched.step(metric)
        lrs.append(opt.param_groups[0]["lr"])
    # best 0.5 at the 2nd step; 3 bad epochs (> patience=2) at the 5th step
    assert lrs == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.1, 0.1])


def test_none_schedule_returns_none() -> None:
    assert create_scheduler(_opt(), "none") is None
    assert create_scheduler(_opt()) is None


def test_unknown_scheduler() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'cosine'"):
        create_scheduler(_opt(), "cosin")


@pytest.mark.parametrize("name", ["warmup_cosine", "cosine", "onecycle"])
def test_total_steps_needed_outside_horizon(name: str) -> None:
    with pytest.raises(ZooError, match=f"{name} needs total_steps"):
        create_scheduler(_opt(), name)
    with pytest.raises(ZooError, match=f"{name}: total_steps must be an integer >= 1"):
        create_scheduler(_opt(), name, total_steps=0)


@pytest.mark.parametrize("name", ["warmup_cosine", "cosine", "onecycle"])
def test_total_steps_from_horizon(name: str) -> None:
    with training_horizon(17):
        sched = create_scheduler(_opt(), name)
    assert sched.total_steps == 17 if name != "cosine" else sched.T_max == 17
    # the horizon is gone after the block, and an explicit value wins inside it
    with pytest.raises(ZooError):
        create_scheduler(_opt(), name)
    with training_horizon(17):
        sched = create_scheduler(_opt(), name, total_steps=5)
    assert (sched.T_max if name == "cosine" else sched.total_steps) == 5


def test_warmup_cosine_from_horizon_follows_formula() -> None:
    opt = _opt(1.0)
    with training_horizon(8):
        sched = create_scheduler(opt, "warmup_cosine", warmup_steps=2)
    got = _lrs(opt, sched, 8)
    assert got == pytest.approx([warmup_cosine_reference(s, 2, 8, 0.0) for s in range(8)])


def test_warmup_larger_than_horizon_raises() -> None:
    with training_horizon(4), pytest.raises(ZooError, match=r"in \[0, 4\], the run.s optimizer steps"):
        create_scheduler(_opt(), "warmup_cosine", warmup_steps=5)


def test_infinite_horizon_is_a_zoo_error() -> None:
    # a Trainer with max_epochs=-1 and no max_steps estimates float("inf") stepping batches
    wanted = r"cosine spans the whole run, and this run has no set length \(trainer.max_epochs -1 and no"
    with training_horizon(float("inf")), pytest.raises(ZooError, match=wanted):
        create_scheduler(_opt(), "cosine")


def test_warmup_fraction_of_total_steps() -> None:
    opt = _opt(1.0)
    sched = WarmupCosineLR(opt, warmup_steps=0.25, total_steps=20)
    assert sched.warmup_steps == 5
    assert _lrs(opt, sched, 20) == pytest.approx([warmup_cosine_reference(s, 5, 20, 0.0) for s in range(20)])
    with training_horizon(10):
        assert WarmupCosineLR(_opt(), warmup_steps=0.01).warmup_steps == 1  # at least one step
    with pytest.raises(ZooError, match="warmup_steps must be a step count or a fraction below 1; got 2.5"):
        WarmupCosineLR(_opt(), warmup_steps=2.5, total_steps=10)


# ----------------------------------------------------------------------------- torch's per-step schedules


def _cyclic(opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.CyclicLR:
    return torch.optim.lr_scheduler.CyclicLR(opt, base_lr=0.01, max_lr=0.1, step_size_up=3)


def test_torchs_per_step_schedules_are_stepped_every_optimizer_step() -> None:
    # OneCycleLR and CyclicLR were stepped once per epoch: flat within epochs, the cycle never done
    lr_scheduler = torch.optim.lr_scheduler
    opt = _opt()
    assert scheduler_interval(lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=10)) == "step"
    assert scheduler_interval(_cyclic(_opt())) == "step"
    assert scheduler_interval(lr_scheduler.StepLR(_opt(), step_size=2)) == "epoch"
    assert scheduler_interval(lr_scheduler.CosineAnnealingLR(_opt(), T_max=5)) == "epoch"
    opt = _opt()
    parts = [WarmupCosineLR(opt, warmup_steps=2, total_steps=4), CosineAnnealing(opt, total_steps=6)]
    assert scheduler_interval(lr_scheduler.SequentialLR(opt, parts, milestones=[4])) == "step"
    opt = _opt()
    mixed = [WarmupCosineLR(opt, total_steps=4), lr_scheduler.StepLR(opt, step_size=2)]
    assert scheduler_interval(lr_scheduler.ChainedScheduler(mixed)) == "epoch"


def test_torchs_onecycle_follows_every_step_of_a_fit() -> None:
    from functools import partial

    import lightning.pytorch as pl

    from tests.conftest import quiet_trainer
    from zoo.data import ArrayDataModule
    from zoo.models import MLP

    pl.seed_everything(0, verbose=False)
    schedule = partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.1, total_steps=6)
    model = MLP(hidden_sizes=[8], num_classes=3, input_shape=[4], lr_scheduler=schedule)
    data = ArrayDataModule(
        np.random.default_rng(0).normal(size=(120, 4)), np.tile([0, 1, 2], 40), batch_size=8
    )
    quiet_trainer(max_steps=4, limit_val_batches=0).fit(model, data)
    assert model.trainer.num_training_batches > 4  # the 4 steps are within the first epoch
    reference = _opt()
    expected = _lrs(reference, schedule(reference), 5)[-1]  # the rate after 4 steps
    assert model.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(expected, rel=1e-12)
    assert expected != pytest.approx(0.1 / 25)  # per epoch it would still be the first step's rate


def test_torchs_onecycle_without_its_length_names_the_schedule_that_takes_it() -> None:
    from functools import partial
    from types import SimpleNamespace

    from zoo.models import MLP

    schedule = partial(torch.optim.lr_scheduler.OneCycleLR, max_lr=0.1)
    model = MLP(hidden_sizes=[8], num_classes=3, input_shape=[4], lr_scheduler=schedule)
    model._trainer = SimpleNamespace(estimated_stepping_batches=40)
    with pytest.raises(ZooError) as info:
        model.configure_optimizers()
    assert str(info.value) == (
        "model.lr_scheduler: You must define either total_steps OR (epochs AND steps_per_epoch); or use "
        "zoo.optim.OneCycle, which takes the run's length from the Trainer (--model.lr_scheduler "
        "zoo.optim.OneCycle --model.lr_scheduler.max_lr 0.01)."
    )
    model.lr_scheduler = partial(_cyclic)  # CyclicLR, also per step
    assert model.configure_optimizers()["lr_scheduler"]["interval"] == "step"


# ----------------------------------------------------------------------------- clipping, fused


def _clipped_run(fused: bool, clip: float | None, **trainer) -> torch.Tensor:
    from functools import partial

    import lightning.pytorch as pl

    from tests.conftest import quiet_trainer
    from zoo.data import SklearnDataModule
    from zoo.models import MLP

    pl.seed_everything(0, verbose=False)
    optimizer = partial(torch.optim.AdamW, lr=0.01, fused=fused)
    model = MLP(hidden_sizes=[32], num_classes=10, input_shape=[64], optimizer=optimizer)
    data = SklearnDataModule("digits", batch_size=64, seed=0)
    quiet_trainer(max_steps=5, limit_val_batches=0, gradient_clip_val=clip, **trainer).fit(model, data)
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_bf16_clips_the_gradients_of_a_fused_optimizer() -> None:
    # the recipes' AdamW(fused=True) with gradient_clip_val under bf16-mixed (zoo train -c gpt_chars
    # -c trainer/gpu_bf16): Lightning refuses it ("performs unscaling of gradients internally"), but
    # bf16 scales nothing, so the zoo clips; the result equals the unfused optimizer's, clipped
    fused = _clipped_run(True, 0.01, precision="bf16-mixed")
    unfused = _clipped_run(False, 0.01, precision="bf16-mixed")
    unclipped = _clipped_run(True, None, precision="bf16-mixed")
    torch.testing.assert_close(fused, unfused, rtol=0, atol=1e-6)
    assert (fused - unclipped).abs().max() > 1e-3  # the clipping did act


def test_fp16_with_a_fused_optimizer_and_clipping_is_one_clear_error() -> None:
    from lightning.pytorch.plugins.precision import MixedPrecision

    scaled = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu"))
    with pytest.raises(ZooError, match=r"^trainer.gradient_clip_val: AdamW\(fused=True\) unscales 16-bit"):
        _clipped_run(True, 1.0, plugins=[scaled])


def test_a_total_steps_given_but_not_a_count_is_named() -> None:
    """It said "needs total_steps: pass it explicitly" to a schedule given total_steps=-5."""
    import zoo

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    for bad in (-5, 0, 2.5):
        with pytest.raises(ZooError, match=rf"total_steps must be an integer >= 1 .*; got {bad}\."):
            zoo.create_scheduler(optimizer, "warmup_cosine", warmup_steps=1, total_steps=bad)
