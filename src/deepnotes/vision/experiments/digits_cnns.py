"""LeNet-5 and a small ResNet trained on images. Notes: discussion 4, section 1,
"Convolutional Neural Networks Architectures" ("LeNet was used mostly for handwritten digit
recognition on the MNIST dataset").

Both networks of :mod:`deepnotes.vision.models` are trained with the Trainer (cosine schedule,
model selection on validation, the test set scored once) on the bundled 8x8 digits, upsampled,
or with ``--set data=mnist --set data_root=DIR`` (or ``cifar10``) on files the user has. Each
fit is cached in the run folder (and checkpointed every epoch).

Claims ``lenet_accuracy`` and ``resnet_accuracy``: test accuracy >= 0.98 on the digits (the
bar fixed for the CNNs, above the foundations MLP's 0.97) and on MNIST (the same bar, well below
LeNet-5's published 0.95% test error: LeCun et al. 1998). The notes give no number for
CIFAR-10: there the accuracies are measured and drawn, and both claims are reported as not
applicable (marked, so that a CIFAR-10 run does not fail on them).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import training_curves
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.trainer import Trainer, make_optimizer
from deepnotes.data import RandomShift, image_splits
from deepnotes.vision.models import LeNet5, count_parameters, resnet


@dataclass(frozen=True)
class DigitsCNNConfig:
    """LeNet-5 and a small ResNet trained with the Trainer on the (upsampled) 8x8 digits, or on
    MNIST / CIFAR-10 read from a folder for larger runs."""

    data: Literal["digits", "mnist", "cifar10"] = "digits"
    """The images: the bundled digits, or MNIST / CIFAR-10 files in ``data_root``."""
    data_root: str = ""
    """Folder of the MNIST IDX files or the CIFAR-10 python batches (not used for the digits)."""
    train_limit: int = 0
    """Use about this many images of the training file (a stratified subsample; 0 = all)."""
    lenet_size: int = 32
    """Side the images are resized to for LeNet-5 (32, its input size in the paper)."""
    lenet_activation: Literal["relu", "tanh"] = "relu"
    """LeNet-5's nonlinearity (the paper's is a scaled tanh)."""
    lenet_pool: Literal["max", "avg"] = "max"
    """LeNet-5's 2x2 subsampling (the paper's averages, with a trainable scale)."""
    lenet_epochs: int = 60
    """Epochs of LeNet-5."""
    resnet_depth: Literal[18, 34, 50, 101, 152] = 18
    """Depth of the ResNet (18/34: basic blocks, 50+: bottlenecks)."""
    resnet_size: int = 0
    """Side the images are resized to for the ResNet; 0: the images' own side, at least 16
    (digits: 16, MNIST: 28, CIFAR-10: 32)."""
    resnet_width: int = 16
    """Channels of the ResNet's stem and first stage (64 in the paper)."""
    resnet_epochs: int = 30
    """Epochs of the ResNet."""
    shift: int = 1
    """Largest random translation of a training image, in pixels of the original image
    (zero-filled; 0 disables the augmentation)."""
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    """The optimiser of both networks."""
    lr: float = 3e-3
    """Base learning rate (cosine schedule to 0)."""
    momentum: float = 0.9
    """Heavy-ball momentum in [0, 1) (SGD only)."""
    weight_decay: float = 5e-4
    """Weight decay."""
    batch_size: int = 64
    """Minibatch size."""

    def __post_init__(self) -> None:
        require(
            (self.data == "digits") == (self.data_root == ""),
            f"data_root names the folder of the {self.data} files"
            if self.data != "digits"
            else f"data_root is only for mnist or cifar10 (the digits ship with scikit-learn), "
            f"got data_root={self.data_root!r} with data='digits'",
        )
        require(
            self.train_limit == 0 or (self.data != "digits" and self.train_limit >= 10),
            f"train_limit must be 0 (all) or >= 10 and is only for mnist or cifar10, got "
            f"{self.train_limit} with data={self.data!r}",
        )
        require(self.lenet_size >= 16, f"lenet_size must be >= 16, got {self.lenet_size}")
        require(
            self.resnet_size == 0 or self.resnet_size >= 8,
            f"resnet_size must be 0 (the images' own side) or >= 8, got {self.resnet_size}",
        )
        require(self.resnet_width >= 1, f"resnet_width must be >= 1, got {self.resnet_width}")
        require(
            min(self.lenet_epochs, self.resnet_epochs) >= 1,
            f"epochs must be >= 1, got {self.lenet_epochs}, {self.resnet_epochs}",
        )
        require(0 <= self.shift <= 3, f"shift must be in [0, 3] pixels, got {self.shift}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(0 <= self.momentum < 1, f"momentum must be in [0, 1), got {self.momentum}")
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")

    @classmethod
    def quick(cls) -> DigitsCNNConfig:
        return cls(lenet_epochs=30, resnet_epochs=15)


TARGET_CNN_ACC = {"digits": 0.98, "mnist": 0.98}
"""Test accuracy bar of each network, per data set: 0.98 on the digits (the foundations MLP's
is 0.97); on MNIST the same bar, well below LeNet-5's published 0.95% test error (LeCun et al.,
1998). The notes give no number for CIFAR-10, so it gets no bar."""

DATA_NAMES = {"digits": "the digits", "mnist": "MNIST", "cifar10": "CIFAR-10"}
NETS = ("lenet", "resnet")


@dataclass(frozen=True)
class DigitsCNNMeasurements:
    """What ``vision.digits_cnns`` measured, per network ("lenet", "resnet")."""

    data: str
    """The data set trained on ("digits", "mnist" or "cifar10")."""
    side: int
    """The images' own side (8 for the digits)."""
    sizes: dict[str, int]
    """net -> the side its images were resized to."""
    fits: dict[str, dict[str, Any]]
    """net -> test_acc, test_loss, val_acc (selected epoch), best_epoch, params, seconds,
    history (per-epoch records of plain numbers)."""
    n_train: int
    n_val: int
    n_test: int

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {
            "n_train": self.n_train,
            "n_val": self.n_val,
            "n_test": self.n_test,
        }
        for net, fit in self.fits.items():
            out.update(
                {
                    f"{net}_test_acc": fit["test_acc"],
                    f"{net}_test_loss": fit["test_loss"],
                    f"{net}_val_acc_selected": fit["val_acc"],
                    f"{net}_best_epoch": fit["best_epoch"],
                    f"{net}_params": fit["params"],
                    f"{net}_train_seconds": round(fit["seconds"], 2),
                }
            )
        return out


def _resized(dataset: TensorDataset, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, H, W) bilinearly resized to (N, C, size, size), once, before training."""
    images, labels = dataset.tensors[:2]
    if images.shape[-1] != size or images.shape[-2] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images, labels


def _plain(record: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in record.items() if isinstance(v, int | float)}


def measure(cfg: DigitsCNNConfig, ctx: RunContext) -> DigitsCNNMeasurements:
    """Train both networks (each fit cached and checkpointed) and score the test set once."""
    splits = image_splits(
        cfg.data, cfg.data_root or None, seed=ctx.seed, train_limit=cfg.train_limit or None
    )
    channels, height, _ = splits.input_shape
    builders: dict[str, tuple[Callable[[], nn.Module], int, int]] = {
        "lenet": (
            lambda: LeNet5(
                splits.num_classes,
                channels,
                input_size=cfg.lenet_size,
                activation=cfg.lenet_activation,
                pool=cfg.lenet_pool,
            ),
            cfg.lenet_size,
            cfg.lenet_epochs,
        ),
        "resnet": (
            lambda: resnet(
                cfg.resnet_depth,
                splits.num_classes,
                channels,
                small_input=True,
                width=cfg.resnet_width,
            ),
            cfg.resnet_size or max(height, 16),
            cfg.resnet_epochs,
        ),
    }

    def fit(net: str) -> dict[str, Any]:
        build, size, epochs = builders[net]
        with ctx.seeded("init", net):
            model = build()
        train = RandomShift(*_resized(splits.train, size), max_shift=cfg.shift * size // height)
        val, test = (TensorDataset(*_resized(d, size)) for d in (splits.val, splits.test))
        trainer = Trainer(
            model,
            make_optimizer(
                cfg.optimizer, model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay
            ),
            ctx.child("order", net),
            epochs=epochs,
            batch_size=cfg.batch_size,
            schedule="cosine",
            tag=net,
        )
        with ctx.seeded("augment", net):  # RandomShift draws from the global generator
            result = trainer.fit(train, val, test)
        assert result.test is not None
        return {
            "test_acc": float(result.test["acc"]),
            "test_loss": float(result.test["loss"]),
            "val_acc": float(result.best["acc"]),
            "best_epoch": int(result.best_epoch),
            "params": count_parameters(model),
            "seconds": float(result.seconds),
            "history": [_plain(r) for r in result.history],
        }

    config = dataclasses.asdict(cfg)
    fits = {
        net: ctx.cached("fit", {"net": net, **config}, lambda net=net: fit(net)) for net in NETS
    }
    return DigitsCNNMeasurements(
        data=cfg.data,
        side=height,
        sizes={net: builders[net][1] for net in NETS},
        fits=fits,
        n_train=len(splits.train),
        n_val=len(splits.val),
        n_test=len(splits.test),
    )


def _resize_text(side: int, size: int) -> str:
    if size == side:
        return f"the {side}x{side} images at their own size"
    how = "upsampled" if size > side else "downsampled"
    return f"the {side}x{side} images {how} bilinearly to {size}x{size} before training"


def claims(m: DigitsCNNMeasurements, cfg: DigitsCNNConfig) -> list[Claim]:
    """The verdicts, from the record and the config only."""
    where = DATA_NAMES[m.data]
    augmentation = (
        f"training images shifted at random by up to {cfg.shift} original pixel(s)"
        if cfg.shift
        else "no augmentation"
    )
    source = (
        f"{m.n_train} training and {m.n_val} validation images from the training file, the "
        f"{m.n_test} images of the test file"
        if m.data != "digits"
        else f"{m.n_test} test images"
    )
    common = f"{source}, evaluated once with the epoch selected on validation; "
    lenet, res = m.fits["lenet"], m.fits["resnet"]
    details = {
        "lenet": common
        + f"epoch {lenet['best_epoch']} of {cfg.lenet_epochs}; "
        + _resize_text(m.side, m.sizes["lenet"])
        + f" (LeNet-5 was designed for 32x32); {cfg.lenet_activation} and {cfg.lenet_pool} "
        f"pooling; {augmentation}; {lenet['params']:,} parameters",
        "resnet": common
        + f"epoch {res['best_epoch']} of {cfg.resnet_epochs}; 3x3 stem without max pooling, "
        f"width {cfg.resnet_width}; "
        + _resize_text(m.side, m.sizes["resnet"])
        + f"; {augmentation}; {res['params']:,} parameters",
    }
    names = {
        "lenet": "LeNet-5 (conv-pool-conv-pool-FC-FC-FC)",
        "resnet": f"a small ResNet-{cfg.resnet_depth}",
    }
    target = TARGET_CNN_ACC.get(m.data)
    out = []
    for net in NETS:
        if target is None:  # CIFAR-10: measured, but the notes give no number to meet
            out.append(
                Claim(
                    f"{names[net]} reaches the test accuracy bar of the digits and MNIST (0.98): "
                    f"not applicable to {where}",
                    m.fits[net]["test_acc"],
                    math.nan,
                    False,
                    "n/a",
                    details[net],
                    known_failure=f"not applicable: the notes give no accuracy to meet on "
                    f"{where}; the accuracy is measured and reported, not judged",
                    key=f"{net}_accuracy",
                )
            )
            continue
        out.append(
            Claim.at_least(
                f"{names[net]} reaches test accuracy >= {target:g} on {where}",
                m.fits[net]["test_acc"],
                target,
                detail=details[net],
                key=f"{net}_accuracy",
            )
        )
    return out


def draw(m: DigitsCNNMeasurements, cfg: DigitsCNNConfig, ctx: RunContext) -> list[Path]:
    """The training curves of both networks, the selected epoch marked."""
    names = {"lenet": "LeNet-5", "resnet": f"ResNet-{cfg.resnet_depth} (width {cfg.resnet_width})"}
    figures = []
    for net in NETS:
        fit, size = m.fits[net], m.sizes[net]
        curves = training_curves(
            fit["history"],
            best_epoch=fit["best_epoch"],
            title=f"{names[net]} on {DATA_NAMES[m.data]} at {size}x{size} "
            f"(test accuracy {fit['test_acc']:.3f})",
        )
        figures.append(ctx.savefig(curves, f"{net}_curves"))
    return figures


@experiment(
    "vision.digits_cnns",
    topic="vision",
    config=DigitsCNNConfig,
    claims=("lenet_accuracy", "resnet_accuracy"),
)
def digits_cnns(cfg: DigitsCNNConfig, ctx: RunContext) -> Outcome:
    """LeNet-5 and a small ResNet-18 trained on the upsampled digits (or MNIST) each reach at
    least 98% test accuracy."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
