"""Experiments on the CNN zoo (notes, discussion 4, section 1: "Convolutional Neural Networks
Architectures").

- ``vision.parameter_counts``: the full-size ImageNet networks built on the meta device and
  counted: VGG-16 "has roughly 138 million parameters", ResNet-152 "about 60 million", ResNets
  have "substantially fewer parameters than VGG", and the bottleneck block buys depth cheaply.
- ``vision.digits_cnns``: LeNet-5 and a small ResNet-18 trained on the 8x8 digits (upsampled)
  with the Trainer; ``--set data=mnist --set data_root=DIR`` (or ``cifar10``) trains the same
  two networks on files the user has, for larger runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure, training_curves
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.core.trainer import FitResult, Trainer, make_optimizer
from deepnotes.data import RandomShift, image_splits
from deepnotes.vision.models import (
    RESNET_CONFIGS,
    VGG_CONFIGS,
    LeNet5,
    alexnet,
    count_parameters,
    googlenet,
    meta_parameter_count,
    resnet,
    vgg,
)

# ---------------------------------------------------------------------------------------------
# 1. Parameter counts of the full-size networks


@dataclass(frozen=True)
class ParameterCountConfig:
    """Parameter counts of the ImageNet networks (1000 classes), built on the meta device."""

    vgg_depths: tuple[int, ...] = (11, 13, 16, 19)
    """VGG depths drawn against depth (VGG-16 is always counted for the claims)."""
    resnet_depths: tuple[int, ...] = (18, 34, 50, 101, 152)
    """ResNet depths drawn against depth (34, 50 and 152 are always counted for the claims)."""
    small_width: float = 0.25
    """Width multiplier of the digits-sized AlexNet and GoogLeNet drawn next to the full ones."""
    small_resnet_width: int = 16
    """Channels of the first stage of the digits-sized ResNet-18 drawn next to the full ones."""

    def __post_init__(self) -> None:
        require(
            len(self.vgg_depths) > 0 and set(self.vgg_depths) <= set(VGG_CONFIGS),
            f"vgg_depths must be a non-empty subset of {sorted(VGG_CONFIGS)}, "
            f"got {self.vgg_depths}",
        )
        require(
            len(self.resnet_depths) > 0 and set(self.resnet_depths) <= set(RESNET_CONFIGS),
            f"resnet_depths must be a non-empty subset of {sorted(RESNET_CONFIGS)}, "
            f"got {self.resnet_depths}",
        )
        require(0 < self.small_width <= 1, f"small_width must be in (0, 1], got {self.small_width}")
        require(
            self.small_resnet_width >= 1,
            f"small_resnet_width must be >= 1, got {self.small_resnet_width}",
        )

    @classmethod
    def quick(cls) -> ParameterCountConfig:
        return cls()  # counting on the meta device takes about a second


VGG16_NOTES = 138e6  # "roughly 138 million parameters"
RESNET152_NOTES = 60e6  # "ResNet-152 should have about 60 million parameters"
COUNT_TOLERANCE = 0.02  # relative distance from the notes' number, fixed before counting
SUBSTANTIALLY_FEWER = 0.5  # "substantially fewer parameters than VGG": at most half


@experiment("vision.parameter_counts", topic="vision", config=ParameterCountConfig)
def parameter_counts(cfg: ParameterCountConfig, ctx: RunContext) -> Outcome:
    """VGG-16 has ~138M parameters, ResNet-152 ~60M: counted on the meta device."""
    vgg_counts = {d: meta_parameter_count(lambda d=d: vgg(d)) for d in (*cfg.vgg_depths, 16)}
    res_depths = (*cfg.resnet_depths, 34, 50, 152)
    res_counts = {d: meta_parameter_count(lambda d=d: resnet(d)) for d in res_depths}
    full: dict[str, int] = {
        "LeNet-5": count_parameters(LeNet5()),
        "AlexNet": meta_parameter_count(alexnet),
        "GoogLeNet": meta_parameter_count(googlenet),
        "VGG-16": vgg_counts[16],
        "ResNet-50": res_counts[50],
        "ResNet-152": res_counts[152],
    }
    small: dict[str, int] = {
        f"AlexNet x{cfg.small_width:g}": count_parameters(
            alexnet(10, 1, small_input=True, width=cfg.small_width)
        ),
        f"GoogLeNet x{cfg.small_width:g}": count_parameters(
            googlenet(10, 1, small_input=True, width=cfg.small_width)
        ),
        f"ResNet-18 w{cfg.small_resnet_width}": count_parameters(
            resnet(18, 10, 1, small_input=True, width=cfg.small_resnet_width)
        ),
    }

    fig, (ax_depth, ax_bars) = figure(ncols=2, size=(5.6, 4.2))
    for name, counts, drawn, marker in (
        ("VGG", vgg_counts, cfg.vgg_depths, "s"),
        ("ResNet", res_counts, cfg.resnet_depths, "o"),
    ):
        depths = sorted(set(drawn))
        ax_depth.plot(depths, [counts[d] for d in depths], marker=marker, label=name)
        for d in depths:
            ax_depth.annotate(
                f"{name}-{d}: {counts[d] / 1e6:.1f}M",
                (d, counts[d]),
                textcoords="offset points",
                xytext=(2, 6) if name == "VGG" else (5, -10),
                rotation=60 if name == "VGG" else 0,
                fontsize=7,
            )
    ax_depth.axhline(VGG16_NOTES, color="C0", lw=0.8, ls=":", label="notes: VGG-16 ~138M")
    ax_depth.axhline(RESNET152_NOTES, color="C1", lw=0.8, ls=":", label="notes: ResNet-152 ~60M")
    ax_depth.set_xscale("log")
    ax_depth.set_yscale("log")
    ax_depth.set_xlim(8, 400)
    ax_depth.set_ylim(8e6, 1.2e9)
    ax_depth.set_xlabel("depth (weight layers on the main path, log scale)")
    ax_depth.set_ylabel("parameters (ImageNet, 1000 classes)")
    ax_depth.set_title("parameters vs depth")
    ax_depth.grid(alpha=0.3, which="both")
    ax_depth.legend(fontsize=7, loc="upper right")
    names = list(full) + list(small)
    values = list(full.values()) + list(small.values())
    colors = ["C2"] * len(full) + ["C4"] * len(small)
    positions = np.arange(len(names))
    ax_bars.bar(positions, values, color=colors)
    for x, v in zip(positions, values, strict=True):
        ax_bars.text(x, v * 1.15, _millions(v), ha="center", fontsize=7)
    ax_bars.set_yscale("log")
    ax_bars.set_ylim(top=max(values) * 4)
    ax_bars.set_xticks(positions, names, rotation=45, ha="right", fontsize=8)
    ax_bars.set_ylabel("parameters")
    ax_bars.set_title("full size (green; 1000 classes, LeNet-5: 10) and digits-sized (purple)")
    ax_bars.grid(alpha=0.3, axis="y", which="both")

    p34, p50, p152, p16 = res_counts[34], res_counts[50], res_counts[152], vgg_counts[16]
    per_layer_50, per_layer_34 = p50 / 50, p34 / 34
    metrics: dict[str, float] = {f"vgg{d}_params": vgg_counts[d] for d in sorted(vgg_counts)}
    metrics.update({f"resnet{d}_params": res_counts[d] for d in sorted(res_counts)})
    metrics.update(
        {
            "lenet5_params": full["LeNet-5"],
            "alexnet_params": full["AlexNet"],
            "googlenet_params": full["GoogLeNet"],
            "resnet50_params_per_layer": per_layer_50,
            "resnet34_params_per_layer": per_layer_34,
        }
    )
    metrics.update(
        {
            f"small_{key}_params": v
            for key, v in zip(("alexnet", "googlenet", "resnet18"), small.values(), strict=True)
        }
    )
    return Outcome(
        metrics=metrics,
        figures=[ctx.savefig(fig, "parameter_counts")],
        claims=[
            Claim.at_most(
                "VGG-16 has roughly 138 million parameters (relative distance from 138M)",
                abs(p16 / VGG16_NOTES - 1),
                COUNT_TOLERANCE,
                detail=f"counted {p16:,} parameters on the meta device (configuration D, "
                "224x224 input, 1000 classes); the published count for this architecture "
                "(torchvision's vgg16) is 138,357,544",
            ),
            Claim.at_most(
                "ResNet-152 has about 60 million parameters (relative distance from 60M)",
                abs(p152 / RESNET152_NOTES - 1),
                COUNT_TOLERANCE,
                detail=f"counted {p152:,} parameters on the meta device (bottleneck blocks "
                "3-8-36-3, projection shortcuts only where shapes change, 1000 classes); the "
                "published count (torchvision's resnet152) is 60,192,808",
            ),
            Claim.at_most(
                "ResNets have substantially fewer parameters than VGG (ResNet-152 / VGG-16, "
                "at most half)",
                p152 / p16,
                SUBSTANTIALLY_FEWER,
                detail=f"ResNet-152 {p152:,} vs VGG-16 {p16:,}: 9.5 times the depth for "
                f"{p152 / p16:.2f} times the parameters; 'substantially' read as at most half",
            ),
            Claim.compare(
                "a bottleneck ResNet-50 has fewer parameters per layer of depth than the "
                "basic-block ResNet-34 (ratio of parameters per layer)",
                per_layer_50 / per_layer_34,
                "<",
                1.0,
                detail=f"ResNet-50: {p50:,} / 50 = {per_layer_50:,.0f} per layer; ResNet-34: "
                f"{p34:,} / 34 = {per_layer_34:,.0f} per layer. Depth = weight layers on the "
                "main path (the stem convolution, 3 per bottleneck or 2 per basic block, and "
                "the classifier); the 1x1 projection shortcuts are not counted as layers but "
                "their parameters are in the totals",
            ),
        ],
    )


def _millions(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


# ---------------------------------------------------------------------------------------------
# 2. LeNet-5 and a small ResNet on the digits


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
    """Heavy-ball momentum (SGD only)."""
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
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")

    @classmethod
    def quick(cls) -> DigitsCNNConfig:
        return cls(lenet_epochs=30, resnet_epochs=15)


TARGET_CNN_ACC = {"digits": 0.98, "mnist": 0.98}
"""Test accuracy bar of each network, per data set: the issue's 0.98 on the digits (the
foundations MLP's is 0.97); on MNIST the same bar, well below LeNet-5's published 0.95% test
error (LeCun et al., 1998). The notes give no number for CIFAR-10, so it gets no claim."""

DATA_NAMES = {"digits": "the digits", "mnist": "MNIST", "cifar10": "CIFAR-10"}


def _resized(dataset: TensorDataset, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, H, W) bilinearly resized to (N, C, size, size), once, before training."""
    images, labels = dataset.tensors[:2]
    if images.shape[-1] != size or images.shape[-2] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    return images, labels


@experiment("vision.digits_cnns", topic="vision", config=DigitsCNNConfig)
def digits_cnns(cfg: DigitsCNNConfig, ctx: RunContext) -> Outcome:
    """LeNet-5 and a small ResNet reach >= 98% test accuracy on the digits (or MNIST)."""
    splits = image_splits(
        cfg.data, cfg.data_root or None, seed=ctx.seed, train_limit=cfg.train_limit or None
    )
    channels, height, _ = splits.input_shape
    resnet_size = cfg.resnet_size or max(height, 16)
    # both models are built before either trains, so their initialisation depends on the seed only
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
            resnet_size,
            cfg.resnet_epochs,
        ),
    }
    models = {tag: build() for tag, (build, _, _) in builders.items()}
    results: dict[str, FitResult] = {}
    for tag, (_, size, epochs) in builders.items():
        model = models[tag]
        train = RandomShift(*_resized(splits.train, size), max_shift=cfg.shift * size // height)
        val, test = (TensorDataset(*_resized(d, size)) for d in (splits.val, splits.test))
        trainer = Trainer(
            model,
            make_optimizer(
                cfg.optimizer, model.parameters(), cfg.lr, cfg.momentum, cfg.weight_decay
            ),
            ctx,
            epochs=epochs,
            batch_size=cfg.batch_size,
            schedule="cosine",
            tag=tag,
        )
        results[tag] = trainer.fit(train, val, test)

    lenet, res = results["lenet"], results["resnet"]
    assert lenet.test is not None and res.test is not None
    names = {"lenet": "LeNet-5", "resnet": f"ResNet-{cfg.resnet_depth} (width {cfg.resnet_width})"}
    n_test = len(splits.test)
    metrics: dict[str, float] = {"n_train": len(splits.train), "n_test": n_test}
    for tag, result in results.items():
        assert result.test is not None
        metrics.update(
            {
                f"{tag}_test_acc": result.test["acc"],
                f"{tag}_test_loss": result.test["loss"],
                f"{tag}_val_acc_selected": result.best["acc"],
                f"{tag}_best_epoch": result.best_epoch,
                f"{tag}_params": count_parameters(models[tag]),
                f"{tag}_train_seconds": round(result.seconds, 2),
            }
        )
    where = DATA_NAMES[cfg.data]
    metrics["n_val"] = len(splits.val)
    figures = []
    for tag, (_, size, _) in builders.items():
        curves = training_curves(
            results[tag].history,
            best_epoch=results[tag].best_epoch,
            title=f"{names[tag]} on {where} at {size}x{size} "
            f"(test accuracy {metrics[f'{tag}_test_acc']:.3f})",
        )
        figures.append(ctx.savefig(curves, f"{tag}_curves"))
    augmentation = (
        f"training images shifted at random by up to {cfg.shift} original pixel(s)"
        if cfg.shift
        else "no augmentation"
    )
    source = (
        f"{len(splits.train)} training and {len(splits.val)} validation images from the "
        f"training file, the {n_test} images of the test file"
        if cfg.data != "digits"
        else f"{n_test} test images"
    )
    common = f"{source}, evaluated once with the epoch selected on validation; "
    target = TARGET_CNN_ACC.get(cfg.data)
    if target is None:  # CIFAR-10: measured and drawn, but the notes give no number to meet
        return Outcome(metrics=metrics, figures=figures, claims=[])
    return Outcome(
        metrics=metrics,
        figures=figures,
        claims=[
            Claim.at_least(
                "LeNet-5 (conv-pool-conv-pool-FC-FC-FC) reaches test accuracy >= "
                f"{target:g} on {where}",
                lenet.test["acc"],
                target,
                detail=common
                + f"epoch {lenet.best_epoch} of {cfg.lenet_epochs}; "
                + _resize_text(height, cfg.lenet_size)
                + f" (LeNet-5 was designed for 32x32); {cfg.lenet_activation} and "
                f"{cfg.lenet_pool} pooling; {augmentation}; {metrics['lenet_params']:,} "
                "parameters",
            ),
            Claim.at_least(
                f"a small ResNet-{cfg.resnet_depth} reaches test accuracy >= {target:g} on {where}",
                res.test["acc"],
                target,
                detail=common + f"epoch {res.best_epoch} of {cfg.resnet_epochs}; 3x3 stem "
                f"without max pooling, width {cfg.resnet_width}; "
                + _resize_text(height, resnet_size)
                + f"; {augmentation}; {metrics['resnet_params']:,} parameters",
            ),
        ],
    )


def _resize_text(side: int, size: int) -> str:
    if size == side:
        return f"the {side}x{side} images at their own size"
    how = "upsampled" if size > side else "downsampled"
    return f"the {side}x{side} images {how} bilinearly to {size}x{size} before training"
