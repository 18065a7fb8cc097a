"""Parameter counts of the CNN zoo. Notes: discussion 4, section 1, "Convolutional Neural
Networks Architectures".

The full-size ImageNet networks of :mod:`deepnotes.vision.models` are built on the meta device
(no memory) and counted; digits-sized versions are counted next to them for the figure.

Claims (published numbers):

- ``vgg16_about_138m``: VGG-16 "has roughly 138 million parameters" (the notes; Simonyan and
  Zisserman 2015, Table 2: 138M). The threshold is the rounding of the published figure: a
  count within 0.5 million of 138 million.
- ``resnet152_about_60m``: "ResNet-152 should have about 60 million parameters" (the notes);
  the same rounding threshold, 0.5 million.
- ``resnets_fewer_than_vgg``: ResNets have "substantially fewer parameters than VGG": ResNet-152
  has at most half of VGG-16's ("substantially" read as at most half, fixed before counting).
- ``bottleneck_cheaper_per_layer`` (the notes' summary: "recall why bottleneck layers in ResNet
  are important"): ResNet-50 (bottleneck blocks) has fewer parameters per layer of depth than
  ResNet-34 (basic blocks).

Checks (identities of the implementation): the VGG-16 and ResNet-152 counts equal those of the
reference implementations (torchvision's ``vgg16``: 138,357,544; ``resnet152``: 60,192,808),
and the full-size networks map a 224x224 image to the feature-map shapes of the papers and to
1000 logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
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


VGG16_PUBLISHED = 138e6
"""The notes' "roughly 138 million"; Simonyan and Zisserman (2015), Table 2: 138M."""
RESNET152_PUBLISHED = 60e6
"""The notes' "about 60 million"."""
ROUNDING = 0.5e6
"""Half a unit of the published figures' last digit (millions)."""
SUBSTANTIALLY_FEWER = 0.5
""""substantially fewer parameters than VGG": at most half."""
REFERENCE_COUNTS = {"VGG-16": 138_357_544, "ResNet-152": 60_192_808}
"""torchvision's ``vgg16`` and ``resnet152`` (the reference implementations), 1000 classes."""
FEATURE_SHAPES = {
    "AlexNet features": (256, 6, 6),  # 55 -> 27 -> 13 -> 6
    "VGG-16 features": (512, 7, 7),  # five poolings: 224 / 32
    "GoogLeNet inception blocks": (1024, 7, 7),
    "ResNet-50 stages": (2048, 7, 7),  # 512 x expansion 4
    "ResNet-152 stages": (2048, 7, 7),
}
"""The feature maps of a 3x224x224 image before each classifier, as in the papers."""


@dataclass(frozen=True)
class ParameterCountMeasurements:
    """The counts and shapes measured by ``vision.parameter_counts``."""

    vgg: dict[int, int]
    """VGG depth -> parameters (1000 classes)."""
    resnet: dict[int, int]
    """ResNet depth -> parameters (1000 classes)."""
    full: dict[str, int]
    """Full-size network -> parameters (LeNet-5: 10 classes, 32x32)."""
    small: dict[str, int]
    """Digits-sized network -> parameters (10 classes, 1 channel)."""
    shapes: dict[str, tuple[int, ...]]
    """Name -> measured shape (without the batch) of a 3x224x224 image's feature map or
    logits; keys of :data:`FEATURE_SHAPES` and "<net> logits"."""

    @property
    def expected_shapes(self) -> dict[str, tuple[int, ...]]:
        logits = {name: (1000,) for name in self.shapes if name.endswith(" logits")}
        return FEATURE_SHAPES | logits

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {f"vgg{d}_params": c for d, c in sorted(self.vgg.items())}
        out.update({f"resnet{d}_params": c for d, c in sorted(self.resnet.items())})
        out.update(
            {
                "lenet5_params": self.full["LeNet-5"],
                "alexnet_params": self.full["AlexNet"],
                "googlenet_params": self.full["GoogLeNet"],
                "resnet50_params_per_layer": self.resnet[50] / 50,
                "resnet34_params_per_layer": self.resnet[34] / 34,
            }
        )
        out.update(
            {
                f"small_{key}_params": v
                for key, v in zip(
                    ("alexnet", "googlenet", "resnet18"), self.small.values(), strict=True
                )
            }
        )
        return out


def measure(cfg: ParameterCountConfig, ctx: RunContext) -> ParameterCountMeasurements:
    """Count every network (full size on the meta device) and pass a meta 224x224 image
    through the full-size ones."""
    vgg_counts = {d: meta_parameter_count(lambda d=d: vgg(d)) for d in (*cfg.vgg_depths, 16)}
    res_depths = (*cfg.resnet_depths, 34, 50, 152)
    res_counts = {d: meta_parameter_count(lambda d=d: resnet(d)) for d in res_depths}
    with ctx.seeded("small nets"):  # the digits-sized nets are built for real: seeded init
        lenet = count_parameters(LeNet5())
        small = {
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
    full = {
        "LeNet-5": lenet,
        "AlexNet": meta_parameter_count(alexnet),
        "GoogLeNet": meta_parameter_count(googlenet),
        "VGG-16": vgg_counts[16],
        "ResNet-50": res_counts[50],
        "ResNet-152": res_counts[152],
    }
    return ParameterCountMeasurements(
        vgg=vgg_counts, resnet=res_counts, full=full, small=small, shapes=imagenet_shapes()
    )


def imagenet_shapes() -> dict[str, tuple[int, ...]]:
    """The shapes (without the batch) of a 3x224x224 image's feature maps and logits in the
    full-size networks, computed on the meta device."""
    shapes: dict[str, tuple[int, ...]] = {}
    with torch.device("meta"):
        x = torch.empty(1, 3, 224, 224)
        nets = {
            "AlexNet": alexnet(),
            "VGG-16": vgg(16),
            "GoogLeNet": googlenet(),
            "ResNet-50": resnet(50),
            "ResNet-152": resnet(152),
        }
        shapes["AlexNet features"] = tuple(nets["AlexNet"].features(x).shape[1:])
        shapes["VGG-16 features"] = tuple(nets["VGG-16"].features(x).shape[1:])
        google = nets["GoogLeNet"]
        shapes["GoogLeNet inception blocks"] = tuple(google.blocks(google.stem(x)).shape[1:])
        for name in ("ResNet-50", "ResNet-152"):
            net = nets[name]
            shapes[f"{name} stages"] = tuple(net.stages(net.stem(x)).shape[1:])
        for name, net in nets.items():
            shapes[f"{name} logits"] = tuple(net(x).shape[1:])
    return shapes


def claims(m: ParameterCountMeasurements, cfg: ParameterCountConfig) -> list[Claim]:
    """The verdicts, from the record and the config only."""
    p16, p152 = m.vgg[16], m.resnet[152]
    p34, p50 = m.resnet[34], m.resnet[50]
    per_layer_50, per_layer_34 = p50 / 50, p34 / 34
    expected = m.expected_shapes
    wrong = sorted(name for name in expected if m.shapes.get(name) != expected[name])
    out = [
        Claim.at_most(
            "VGG-16 has roughly 138 million parameters (|count - 138M|)",
            abs(p16 - VGG16_PUBLISHED),
            ROUNDING,
            detail=f"counted {p16:,} parameters on the meta device (configuration D, 224x224 "
            "input, 1000 classes); the notes and Simonyan and Zisserman (2015, Table 2) give "
            "138M, so the count must round to it (within 0.5M)",
            key="vgg16_about_138m",
        ),
        Claim.at_most(
            "ResNet-152 has about 60 million parameters (|count - 60M|)",
            abs(p152 - RESNET152_PUBLISHED),
            ROUNDING,
            detail=f"counted {p152:,} parameters on the meta device (bottleneck blocks "
            "3-8-36-3, projection shortcuts only where shapes change, 1000 classes); the "
            "notes give about 60M, so the count must round to it (within 0.5M)",
            key="resnet152_about_60m",
        ),
        Claim.at_most(
            "ResNets have substantially fewer parameters than VGG (ResNet-152 / VGG-16, "
            "at most half)",
            p152 / p16,
            SUBSTANTIALLY_FEWER,
            detail=f"ResNet-152 {p152:,} vs VGG-16 {p16:,}: 9.5 times the depth for "
            f"{p152 / p16:.2f} times the parameters; 'substantially' read as at most half",
            key="resnets_fewer_than_vgg",
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
            key="bottleneck_cheaper_per_layer",
        ),
    ]
    for name, key in (("VGG-16", "vgg16_torchvision"), ("ResNet-152", "resnet152_torchvision")):
        reference = REFERENCE_COUNTS[name]
        out.append(
            Claim.at_most(
                f"our {name} has exactly the parameters of the reference implementation "
                "(|difference|)",
                abs(m.full[name] - reference),
                0,
                detail=f"counted {m.full[name]:,}; torchvision's {name.lower().replace('-', '')}"
                f" has {reference:,}",
                key=key,
                kind="check",
            )
        )
    out.append(
        Claim.at_most(
            "the full-size networks map a 3x224x224 image to the papers' feature maps and to "
            "1000 logits (shapes that differ)",
            len(wrong),
            0,
            detail="; ".join(
                f"{name} {m.shapes.get(name)}" + ("" if name not in wrong else f" != {shape}")
                for name, shape in expected.items()
            ),
            key="imagenet_shapes",
            kind="check",
        )
    )
    return out


@experiment(
    "vision.parameter_counts",
    topic="vision",
    config=ParameterCountConfig,
    claims=(
        "vgg16_about_138m",
        "resnet152_about_60m",
        "resnets_fewer_than_vgg",
        "bottleneck_cheaper_per_layer",
    ),
    checks=("vgg16_torchvision", "resnet152_torchvision", "imagenet_shapes"),
)
def parameter_counts(cfg: ParameterCountConfig, ctx: RunContext) -> Outcome:
    """VGG-16 has about 138 million parameters and ResNet-152 about 60 million, counted on the
    meta device, so ResNets are deeper with fewer parameters."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))


def draw(m: ParameterCountMeasurements, cfg: ParameterCountConfig, ctx: RunContext) -> list[Path]:
    """Parameters against depth (VGG and ResNet), and every network's count as a bar."""
    return [ctx.savefig(_figure(m, cfg), "parameter_counts")]


def _figure(m: ParameterCountMeasurements, cfg: ParameterCountConfig) -> Any:
    fig, (ax_depth, ax_bars) = figure(ncols=2, size=(5.6, 4.2))
    for name, counts, drawn, marker in (
        ("VGG", m.vgg, cfg.vgg_depths, "s"),
        ("ResNet", m.resnet, cfg.resnet_depths, "o"),
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
    ax_depth.axhline(VGG16_PUBLISHED, color="C0", lw=0.8, ls=":", label="notes: VGG-16 ~138M")
    ax_depth.axhline(
        RESNET152_PUBLISHED, color="C1", lw=0.8, ls=":", label="notes: ResNet-152 ~60M"
    )
    ax_depth.set_xscale("log")
    ax_depth.set_yscale("log")
    ax_depth.set_xlim(8, 400)
    ax_depth.set_ylim(8e6, 1.2e9)
    ax_depth.set_xlabel("depth (weight layers on the main path, log scale)")
    ax_depth.set_ylabel("parameters (ImageNet, 1000 classes)")
    ax_depth.set_title("parameters vs depth")
    ax_depth.grid(alpha=0.3, which="both")
    ax_depth.legend(fontsize=7, loc="upper right")
    names = list(m.full) + list(m.small)
    values = list(m.full.values()) + list(m.small.values())
    colors = ["C2"] * len(m.full) + ["C4"] * len(m.small)
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
    return fig


def _millions(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"
