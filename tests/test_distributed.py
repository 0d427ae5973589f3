"""Runs over several processes: the zoo's loaders shard by rank, evaluation counts each example
once, random streams differ per rank, and `zoo train` on two CPU processes (DDP over gloo) ends
like one process fed the same examples."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from tests.conftest import QUIET, quiet_trainer, zoo_executable
from zoo.data import ImageBatchTransform, RandomWindowLoader, SklearnDataModule, TensorLoader
from zoo.data.loader import ShardSampler
from zoo.distributed import derive_seed

# ----------------------------------------------------------------------------- shards


@pytest.mark.parametrize(("n", "world"), [(12, 2), (13, 2), (10, 3), (2, 3)])
def test_training_shards_cover_the_epoch_in_equal_parts(n: int, world: int) -> None:
    shards = [
        ShardSampler(n, shuffle=True, seed=5, rank=r, world_size=world).indices(epoch=3) for r in range(world)
    ]
    size = -(-n // world)
    assert [len(s) for s in shards] == [size] * world  # no rank waits for another in a collective
    together = torch.cat(shards)
    assert set(together.tolist()) == set(range(n))  # every example, in one epoch
    repeated = len(together) - n  # padding repeats as few examples as DistributedSampler does
    assert repeated == size * world - n
    if n % world == 0:
        assert len(set(together.tolist())) == n  # disjoint
    # the ranks interleave one permutation: rank r holds its positions r, r + world, ...
    order = ShardSampler(n, shuffle=True, seed=5).indices(epoch=3)
    padded = order.repeat(world)[: size * world]
    for r, shard in enumerate(shards):
        assert torch.equal(shard, padded[r::world])


def test_training_order_is_new_each_epoch_and_reproducible_for_a_seed() -> None:
    def shard(seed: int, epoch: int, rank: int) -> torch.Tensor:
        return ShardSampler(100, shuffle=True, seed=seed, rank=rank, world_size=2).indices(epoch)

    assert torch.equal(shard(0, 4, 1), shard(0, 4, 1))
    assert not torch.equal(shard(0, 4, 1), shard(0, 5, 1))
    assert not torch.equal(shard(0, 4, 1), shard(1, 4, 1))
    assert not torch.equal(shard(0, 4, 0), shard(0, 4, 1))
    # seed 0 at epoch 1 is not seed 1 at epoch 0 (as it would be with seed + epoch)
    assert not torch.equal(shard(0, 1, 0), shard(1, 0, 0))
    assert derive_seed(0, 1) != derive_seed(1, 0) and 0 <= derive_seed(2**70, -1) < 2**63


def test_sampler_moves_to_the_next_epoch_unless_told_which() -> None:
    sampler = ShardSampler(30, shuffle=True, seed=2)
    first, second = list(sampler), list(sampler)
    assert first == sampler.indices(0).tolist() and second == sampler.indices(1).tolist()
    sampler.set_epoch(7)  # what Lightning's fit loop does before every epoch, also after a resume
    assert list(sampler) == sampler.indices(7).tolist()


@pytest.mark.parametrize(("n", "world"), [(11, 2), (10, 3), (2, 3)])
def test_evaluation_shards_count_every_example_once(n: int, world: int) -> None:
    shards = [ShardSampler(n, rank=r, world_size=world, even=False).indices() for r in range(world)]
    assert sorted(torch.cat(shards).tolist()) == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_sampler_rejects_a_rank_outside_the_world() -> None:
    with pytest.raises(ValueError, match=r"rank must be in \[0, world_size\)"):
        ShardSampler(10, rank=2, world_size=2)


def test_two_ranks_of_batch_b_read_what_one_process_of_batch_2b_reads() -> None:
    x = torch.arange(48)
    single = list(TensorLoader(x, batch_size=8, shuffle=True, seed=3))
    ranks = [list(TensorLoader(x, batch_size=4, shuffle=True, seed=3, rank=r, world_size=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == len(single) == 6
    for i, (batch,) in enumerate(single):
        assert sorted(batch.tolist()) == sorted(torch.cat([ranks[0][i][0], ranks[1][i][0]]).tolist())


def fake_trainer(rank: int, world: int) -> SimpleNamespace:
    return SimpleNamespace(global_rank=rank, world_size=world, training=True)


def test_datamodule_loaders_shard_by_the_trainers_rank() -> None:
    def loaders(rank: int) -> SklearnDataModule:
        dm = SklearnDataModule("digits", batch_size=32, eval_batch_size=50, seed=1)
        dm.trainer = fake_trainer(rank, 2)
        return dm

    dms = [loaders(0), loaders(1)]
    single = SklearnDataModule("digits", batch_size=32, eval_batch_size=50, seed=1)
    single.setup()
    x_train, _ = single._tensors["train"]
    n = len(x_train)
    rows = [torch.cat([b[0] for b in dm.train_dataloader()]) for dm in dms]
    assert len(rows[0]) == len(rows[1]) == -(-n // 2)
    assert len(dms[0].train_dataloader()) == len(dms[1].train_dataloader())
    # the two shards together are the training set (rows matched by value)
    seen = {tuple(r.tolist()) for r in torch.cat(rows)}
    assert seen == {tuple(r.tolist()) for r in x_train}
    assert not torch.equal(rows[0][:32], rows[1][:32])
    for stage in ("val", "test"):
        parts = [torch.cat([b[1] for b in getattr(dm, f"{stage}_dataloader")()]) for dm in dms]
        expected = single._tensors[stage][1]
        assert len(parts[0]) + len(parts[1]) == len(expected)  # each example once across ranks
        assert sorted(torch.cat(parts).tolist()) == sorted(expected.tolist())


def test_random_windows_two_ranks_of_b_are_one_process_of_2b() -> None:
    tokens = torch.arange(500)
    single = RandomWindowLoader(tokens, block_size=8, batch_size=6, num_batches=5, seed=4)
    ranks = [
        RandomWindowLoader(tokens, block_size=8, batch_size=3, num_batches=10, seed=4, rank=r, world_size=2)
        for r in (0, 1)
    ]
    assert len(ranks[0]) == len(ranks[1]) == 5  # an epoch is 10 batches of 3 over both ranks
    for (xs, ys), (x0, y0), (x1, y1) in zip(single, *ranks, strict=True):
        torch.testing.assert_close(xs[0::2], x0)
        torch.testing.assert_close(xs[1::2], x1)
        torch.testing.assert_close(ys, torch.stack([y0, y1], 1).flatten(0, 1))
    odd = RandomWindowLoader(tokens, block_size=8, batch_size=3, num_batches=5, seed=4, rank=1, world_size=2)
    assert len(odd) == len(list(odd)) == 3  # ceil(5 / 2): the ranks stay in step


def test_augmentation_differs_per_rank_and_repeats_per_rank() -> None:
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)

    def crops(rank: int) -> torch.Tensor:
        transform = ImageBatchTransform([0.5], [0.5], crop_padding=2, hflip=True, seed=0, rank=rank)
        return transform(images, train=True)

    assert torch.equal(crops(1), crops(1))
    assert not torch.equal(crops(0), crops(1))


def test_each_rank_gets_its_own_dropout_stream() -> None:
    from zoo.models import MLP

    def draws(rank: int, world: int, fit_start: bool = True) -> torch.Tensor:
        torch.manual_seed(123)  # seed_everything: the same seed on every rank
        model = MLP(task="multiclass", num_classes=3, input_shape=[4], dropout=0.5)
        model._trainer = fake_trainer(rank, world)
        if fit_start:
            model.on_fit_start()
        return torch.rand(8)

    assert not torch.equal(draws(0, 2), draws(1, 2))
    assert torch.equal(draws(1, 2), draws(1, 2))
    assert not torch.equal(draws(1, 2), draws(1, 2, fit_start=False))
    # one process: the user's seed is left alone
    assert torch.equal(draws(0, 1), draws(0, 1, fit_start=False))


# ----------------------------------------------------------------------------- two processes

# SGD without a schedule, no dropout and no batch norm: two ranks of 64 examples per step must
# then train exactly as one process of 128. 1280 training examples split evenly (no padding).
DDP_RUN = (
    "-c", "mlp_digits", *QUIET,
    "--trainer.accelerator", "cpu", "--trainer.max_epochs", "2",
    "--model.dropout", "0", "--model.optimizer", "SGD", "--model.optimizer.lr", "0.05",
    "--model.optimizer.momentum", "0.9", "--model.lr_scheduler", "null",
    "--data.val_size", "247",
)  # fmt: skip


def _zoo(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [zoo_executable(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`zoo train` on two CPU processes with `trainer/ddp`: the folder it ran in and its result."""
    cwd = tmp_path_factory.mktemp("ddp")
    proc = _zoo(
        cwd,
        "train", *DDP_RUN, "-c", "trainer/ddp", "--trainer.devices", "2",
        "--data.batch_size", "64", "--trainer.default_root_dir", "ddp",
    )  # fmt: skip
    return cwd, proc


def test_zoo_train_on_two_processes_matches_one_process_of_twice_the_batch(ddp_run, tmp_path: Path) -> None:
    cwd, ddp = ddp_run
    assert ddp.returncode == 0, ddp.stderr[-4000:]
    assert ddp.stdout.count("Test metrics of the best checkpoint") == 1  # rank 0 alone reports
    assert "Traceback" not in ddp.stderr
    runs = sorted(p.name for p in (cwd / "ddp").iterdir())
    assert runs == ["version_0"]  # one run directory, made by rank 0
    run = cwd / "ddp" / "version_0"
    metrics = json.loads((run / "test_metrics.json").read_text())

    # global steps: half those of one process with the same per-process batch
    data = SklearnDataModule("digits", batch_size=64, val_size=247, test_size=0.15, seed=0)
    assert data.split_sizes()["train"] == 1280
    last = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == 2 * len(data.train_dataloader()) // 2 == 20

    # one process with batch 128 on the same examples ends with the same weights
    from zoo.cli import main

    main(["fit", *DDP_RUN, "--data.batch_size", "128", "--trainer.default_root_dir", str(tmp_path / "one")])
    one = _weights(tmp_path / "one" / "version_0" / "checkpoints" / "last.ckpt")
    two = last["state_dict"]
    assert one.keys() == two.keys()
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=0, atol=1e-5, msg=name)
    assert metrics["test/acc"] > 0.9  # and it learned

    # the test metrics of two ranks are those of one process testing the same checkpoint
    from zoo.models import ZooModule

    model = ZooModule.load_from_checkpoint(cwd / metrics["best_checkpoint"])
    single = quiet_trainer().test(model, datamodule=data, verbose=False)[0]
    for key in ("test/acc", "test/f1", "test/loss"):
        assert metrics[key] == pytest.approx(single[key], abs=1e-6), key


@pytest.mark.slow
def test_zoo_test_and_predict_on_two_processes(ddp_run) -> None:
    cwd, ddp = ddp_run
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    metrics = json.loads(next((cwd / "ddp").rglob("test_metrics.json")).read_text())
    common = (*DDP_RUN, "-c", "trainer/ddp", "--trainer.devices", "2", "--trainer.default_root_dir", "eval")
    tested = _zoo(cwd, "test", *common, "--ckpt_path", metrics["best_checkpoint"])
    assert tested.returncode == 0, tested.stderr[-4000:]
    # Lightning's table (rank 0 prints it): each example counted once, so the numbers of `zoo train`
    table = dict(re.findall(r"(test/\w+)\s*\S\s*([0-9.]+)", tested.stdout))
    assert table.keys() >= {"test/acc", "test/f1", "test/loss"}, tested.stdout
    for key, value in table.items():
        assert float(value) == pytest.approx(metrics[key], abs=1e-6), key
    predicted = _zoo(cwd, "predict", *common, "--ckpt_path", metrics["best_checkpoint"])
    assert predicted.returncode == 0, predicted.stderr[-4000:]
    assert "Traceback" not in tested.stderr + predicted.stderr
    # one file, merged by rank 0 in row order: what one process writes
    run = (cwd / metrics["best_checkpoint"]).parents[1]
    assert sorted(p.name for p in run.glob("*predictions*")) == ["predictions.csv"]
    two = (run / "predictions.csv").read_text()
    from zoo.cli import main

    main(
        [
            "predict",
            *DDP_RUN,
            "--trainer.default_root_dir",
            str(cwd / "one"),
            "--ckpt_path",
            str(cwd / metrics["best_checkpoint"]),
        ]
    )
    assert (run / "predictions.csv").read_text() == two
    assert len(two.splitlines()) == 1 + SklearnDataModule("digits", val_size=247).split_sizes()["test"]


def _digits_mlp(data: SklearnDataModule):
    from functools import partial

    from zoo.models import MLP

    torch.manual_seed(0)
    return MLP(
        task=data.task,
        num_classes=data.num_classes,
        input_shape=data.input_shape,
        hidden_sizes=[32],
        optimizer=partial(torch.optim.SGD, lr=0.1),
    )


@pytest.mark.slow
def test_python_users_own_trainer_shards_too(tmp_path: Path) -> None:
    """A Python user's Trainer (here ddp_spawn: processes started from Python, not a command)
    gets the same sharding: 2 x 32 examples per step train as 1 x 64."""
    from zoo.trainer import ZooTrainer

    options = {"accelerator": "cpu", "max_epochs": 1, "logger": False, "enable_checkpointing": False}
    options |= {"enable_progress_bar": False, "enable_model_summary": False, "limit_val_batches": 0}
    two = _digits_mlp(SklearnDataModule("digits", batch_size=32, val_size=247, seed=0))
    ZooTrainer(devices=2, strategy="ddp_spawn", **options).fit(
        two, SklearnDataModule("digits", batch_size=32, val_size=247, seed=0)
    )
    one = _digits_mlp(SklearnDataModule("digits", batch_size=64, val_size=247, seed=0))
    ZooTrainer(devices=1, **options).fit(
        one, SklearnDataModule("digits", batch_size=64, val_size=247, seed=0)
    )
    initial = _digits_mlp(SklearnDataModule("digits", batch_size=64, val_size=247, seed=0)).state_dict()
    for name, weight in one.state_dict().items():
        assert not torch.equal(weight, initial[name]), f"{name} did not train"
        torch.testing.assert_close(two.state_dict()[name], weight, rtol=0, atol=1e-5, msg=name)


@pytest.mark.slow
def test_torchrun_launches_python_m_zoo(tmp_path: Path) -> None:
    """The multi-node path of docs/distributed.md, on one node: torchrun starts the ranks and
    Lightning joins them instead of launching its own."""
    torchrun = Path(zoo_executable()).with_name("torchrun")
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [
            str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "zoo",
            "train", *DDP_RUN, "-c", "trainer/ddp", "--trainer.devices", "2",
            "--trainer.default_root_dir", "runs",
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("Test metrics of the best checkpoint") == 1
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["version_0"]
    last = torch.load(
        tmp_path / "runs/version_0/checkpoints/last.ckpt", map_location="cpu", weights_only=True
    )
    assert last["global_step"] == 20  # 2 epochs of 640 examples per rank in batches of 64


@pytest.mark.slow
def test_gpt_on_two_processes_from_a_memory_mapped_corpus(tmp_path: Path) -> None:
    proc = _zoo(
        tmp_path,
        "fit", "-c", "gpt_chars", "-c", "trainer/ddp", *QUIET,
        "--trainer.accelerator", "cpu", "--trainer.devices", "2",
        "--trainer.max_steps", "40", "--trainer.limit_train_batches", "20",
        "--trainer.limit_val_batches", "4",
        "--model.lr_scheduler", "null", "--data.memory_map", "true", "--data.token_dir", "tokens",
        "--data.max_chars", "300000", "--trainer.default_root_dir", "runs",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = (tmp_path / "runs/version_0/metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    losses = [
        float(r.split(",")[header.index("val/loss")])
        for r in rows[1:]
        if r.split(",")[header.index("val/loss")]
    ]
    assert len(losses) == 2 and losses[1] < losses[0] < 4.6  # it learns (ln 97 = 4.57 is a uniform guess)
    assert (tmp_path / "tokens" / "tokens.bin").stat().st_size == 2 * 300_000


def test_sharded_strategies_get_no_summary_forward_outside_the_fsdp_root() -> None:
    # Lightning's model summary runs example_input_array through the unwrapped module; under FSDP that
    # initialises the wrapped blocks as roots and the first step fails (seen on an H200 with trainer/fsdp)
    from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

    from zoo.models import GPT

    model = GPT(vocab="abc", input_shape=[8], n_layer=1, n_head=2, n_embd=16)
    model.trainer = SimpleNamespace(strategy=DDPStrategy())
    model.setup("fit")
    assert model.example_input_array is not None
    model.trainer = SimpleNamespace(strategy=FSDPStrategy())
    model.setup("fit")
    assert model.example_input_array is None


def test_fsdp_clips_the_gradient_norm_with_fsdps_own_reduction() -> None:
    # Lightning's FSDPPrecision refuses gradient_clip_algorithm="norm"; the gpt recipes clip at 1.0
    from lightning.pytorch.strategies import FSDPStrategy

    from zoo.models import GPT

    calls = []
    model = GPT(vocab="abc", input_shape=[8], n_layer=1, n_head=2, n_embd=16)
    root = SimpleNamespace(clip_grad_norm_=calls.append)
    model.trainer = SimpleNamespace(
        strategy=FSDPStrategy(), model=root, gradient_clip_val=1.0, gradient_clip_algorithm="norm"
    )
    model.configure_gradient_clipping(None, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
    assert calls == [1.0]


def test_sigterm_under_several_processes_is_decided_at_a_step_start_not_in_the_handler(monkeypatch) -> None:
    """Lightning 2.6 ran a broadcast inside the SIGTERM handler, which deadlocks when another rank
    is already inside the step's gradient all-reduce (the slow two-process test in test_resume
    sends it there); the zoo's handler only records the signal and passes it to the launched ranks,
    and all ranks stop together where each step starts, if any of them got it."""
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    import zoo.trainer
    from zoo.trainer import ZooTrainer

    trainer = ZooTrainer(logger=False, accelerator="cpu")
    connector = trainer._signal_connector
    assert trainer.fit_loop.epoch_loop._broadcast_sigterm_tensor == connector.agree
    killed = []
    monkeypatch.setattr(zoo.trainer, "_several_processes", lambda trainer: True)
    monkeypatch.setattr(
        type(trainer.strategy), "launcher", property(lambda s: SimpleNamespace(kill=killed.append))
    )

    def no_collective(*args, **kwargs):
        raise AssertionError("a collective in the signal handler")

    monkeypatch.setattr(torch.distributed, "broadcast", no_collective)
    monkeypatch.setattr(torch.distributed, "all_reduce", no_collective)
    connector._sigterm_notifier_fn(15, None)
    connector._sigterm_notifier_fn(15, None)  # a second signal is not passed on again
    assert (connector.pending, trainer.received_sigterm, killed) == (True, False, [15])

    def other_rank_has_it(flag, op):  # this rank saw nothing; the maximum over ranks is 1
        assert op == torch.distributed.ReduceOp.MAX
        flag.fill_(max(int(flag.item()), 1))

    connector.pending = False
    monkeypatch.setattr(torch.distributed, "all_reduce", other_rank_has_it)
    with pytest.raises(SIGTERMException):
        connector.agree()
    assert trainer.received_sigterm

    def nobody_has_it(flag, op):
        pass

    connector.received_sigterm = False
    monkeypatch.setattr(torch.distributed, "all_reduce", nobody_has_it)
    connector.agree()  # goes on
    assert not trainer.received_sigterm
