"""The short ``--help`` of ``zoo train|fit|validate|test|predict``: the options people use, how to
see every option of a class, and ``--help-all`` for LightningCLI's full list (about 760 lines).

Printed without importing torch or Lightning, so it answers at once.
"""

from __future__ import annotations

WHAT = {
    "train": "Fit with early stopping and checkpoints, reload the best checkpoint, test it, and keep the\n"
    "results in a run directory (runs/<recipe>/version_N: config, metrics.csv, checkpoints,\n"
    "test_metrics.json, model card, curves.png, run.json).",
    "fit": "Lightning's fit: train with validation, early stopping and checkpoints, no test.",
    "validate": "Lightning's validate: the validation metrics of a checkpoint (--ckpt_path); no run folder.",
    "test": "Lightning's test: the test metrics of a checkpoint (--ckpt_path); no run folder.",
    "predict": "Lightning's predict over the data's test split, from a checkpoint (--ckpt_path), into\n"
    "predictions.csv. New rows, arrays or images: zoo predict CKPT --input PATH (zoo predict --help).",
}

COMMON = """\
configs:
  -c, --config RECIPE|FILE      a shipped recipe's name (`zoo recipes list`) or a YAML file; several
                                merge in order (`-c mlp_digits -c trainer/debug -c mine.yaml`)
  --print_config                print the merged config as YAML (edit it, pass it back with -c) and exit
  --ckpt_path PATH|last         {ckpt}
  --seed_everything N           the seed of the initialization and dropout (--data.seed N: of the
                                split and the shuffling, so runs of several seeds share one split)

common options (every key of the config is a flag: --a.b.c VALUE):
  --model NAME|CLASS            a model name (`zoo models`: mlp, resnet20, vit_mini, ...) or class path
  --model.KEY VALUE             --model.dropout 0.3, --model.hidden_sizes [256,128], --model.compile true
  --model.optimizer CLASS       SGD, AdamW, ... (or sgd, adamw, ...); then --model.optimizer.lr 0.01
  --model.lr_scheduler CLASS    zoo.optim.WarmupCosineLR, zoo.optim.OneCycle, ...; null for none
  --data NAME|CLASS             a data name (`zoo models --data`: digits, wine, ...) or class path
  --data.KEY VALUE              --data.batch_size 128, --data.seed 1, --data.val_size 0.2
  --trainer.max_epochs N        also --trainer.max_steps N, --trainer.max_time 00:00:10:00
  --trainer.accelerator A       auto (default), cpu, gpu, mps; --trainer.devices N
  --trainer.precision P         32 (default), bf16-mixed, 16-mixed
  --trainer.strategy S          auto, ddp, fsdp (or -c trainer/ddp, -c trainer/fsdp)
  --trainer.default_root_dir D  where the run directories go
  --trainer.gradient_clip_val X  --trainer.accumulate_grad_batches N  --trainer.log_every_n_steps N
  --trainer.limit_train_batches N  (also val, test): a count of batches (1: one) or a fraction (1.0: all)
  --trainer.logger false        no run directory: no config, metrics.csv, run.json or curves; the
                                checkpoints go into default_root_dir. -c logger/wandb: Weights & Biases
  --early_stopping.patience N   and .monitor val/acc (.mode auto: min for losses, max for acc/f1/r2)
  --checkpoint.monitor KEY      and .mode, .every_n_train_steps N (a step checkpoint to resume from)

every option of a class:
  zoo {command} --model.help MLP              (any model class: ConvNet, ResNet, ViT, GPT, ...)
  zoo {command} --data.help SklearnDataModule (CSVDataModule, FashionMNISTDataModule, ...)
  zoo {command} --model.optimizer.help SGD
  zoo {command} -c mlp_digits --print_config  every value a recipe sets
  zoo {command} --help-all                    every option of the Trainer, model and data (long)

tuning:
  zoo tune-lr -c RECIPE [...]                 the learning rate to train with (a range test)
  zoo tune-batch-size -c RECIPE [...]         the largest batch that fits

examples:
  zoo {command} -c mlp_digits
  zoo {command} -c mlp_digits --model.dropout 0.3 --trainer.max_epochs 20
"""

CKPT = {
    "train": "resume a run from a checkpoint (last: the newest last.ckpt under the run root)",
    "fit": "resume a run from a checkpoint (last: the newest last.ckpt under the run root)",
}


def short_help(command: str) -> str:
    ckpt = CKPT.get(command, "the checkpoint to evaluate (last: the newest last.ckpt under the run root)")
    return (
        f"usage: zoo {command} -c RECIPE [-c MORE ...] [--KEY VALUE ...]\n\n{WHAT[command]}\n\n"
        + COMMON.format(command=command, ckpt=ckpt)
    )
