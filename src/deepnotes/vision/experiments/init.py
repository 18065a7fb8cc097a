"""Weight initialisation: activation statistics through depth. Notes: discussion 4, section 5,
"Weight Initialization" and "Problem: Deriving Xavier Initialization".

The notes ask for an initialisation whose activations "do not grow or shrink in later layers",
and derive Xavier's :math:`W_{ij} \\sim \\mathcal{N}(0, 1/D_a)` for tanh from
:math:`\\mathrm{Var}(z) = D_a \\mathrm{Var}(W) \\mathrm{Var}(a)` and the linearisation
:math:`\\mathrm{Var}(\\tanh z) = \\mathrm{Var}(z)`. Measured: the variance and saturation of every
hidden layer of a deep tanh net at initialisation, on all training digits (float64), under
N(0, 1), N(0, 0.01^2) and Xavier (and He's N(0, 2/D_a) for a ReLU net, shown, not claimed). Each
scheme is one draw of a wide net, whose statistics pool width x digits entries per layer.

Claims (thresholds fixed before the confirming run; the notes give none):

- ``xavier_keeps_linear_variance``: every linear layer keeps the variance within a factor 2
  (the derivation's :math:`D_a \\mathrm{Var}(W) = 1` on real, correlated, uncentred inputs);
- ``xavier_keeps_depth_variance``: the tanh net keeps Var(a_l) within a factor 2 over layers
  ``first_layer..L``: a known failure, predicted by the mean-field recursion (tanh is not
  linear: :math:`E[\\tanh(z)^2] \\approx v - 2v^2`);
- ``xavier_unsaturated``: under Xavier fewer than 5% of the tanh units saturate (|a| > 0.99);
- ``large_saturates``: under N(0, 1) more than half of them do;
- ``small_vanishes``: under N(0, 0.01^2) the variance falls by three orders of magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepnotes.core.config import require
from deepnotes.core.context import RunContext
from deepnotes.core.plotting import figure
from deepnotes.core.registry import Claim, Outcome, experiment
from deepnotes.data import digits
from deepnotes.vision.deep_nets import (
    activation_statistics,
    plain_mlp,
    tanh_mean_field_variances,
)

WITHIN_FACTOR = 2.0  # "keeps the variance": within a factor 2
SATURATED = 0.5  # "saturates": more than half of the units have |a| > 0.99
UNSATURATED = 0.05  # ... and "does not saturate": fewer than 5%
VANISH_RATIO = 1e-3  # "vanishes": the variance falls by at least three orders of magnitude
SATURATION_THRESHOLD = 0.99
SCHEMES = {  # name: (activation, init scheme, which std of the config)
    "large": ("tanh", "normal", "large_std"),
    "small": ("tanh", "normal", "small_std"),
    "xavier": ("tanh", "xavier", None),
    "he": ("relu", "he", None),
}


@dataclass(frozen=True)
class InitConfig:
    """Activation statistics of a deep tanh net (and a ReLU net) under four initialisations."""

    depth: int = 40
    """Number of hidden layers L."""
    width: int = 256
    """Width D_a of every hidden layer."""
    small_std: float = 0.01
    """Standard deviation of the small Gaussian init N(0, small_std^2) (0.01 * randn)."""
    large_std: float = 1.0
    """Standard deviation of the large Gaussian init N(0, large_std^2) (randn)."""
    first_layer: int = 5
    """Across-depth comparisons use the layers first_layer..L (the first ones are transients)."""

    def __post_init__(self) -> None:
        require(self.width >= 1, f"width must be >= 1, got {self.width}")
        require(
            1 <= self.first_layer < self.depth,
            f"need 1 <= first_layer < depth, got {self.first_layer}, {self.depth}",
        )
        require(self.small_std > 0 and self.large_std > 0, "stds must be > 0")

    @classmethod
    def quick(cls) -> InitConfig:
        return cls(depth=24)


def scheme_labels(cfg: InitConfig) -> dict[str, str]:
    return {
        "large": f"N(0, {cfg.large_std:g}²)",
        "small": f"N(0, {cfg.small_std:g}²)",
        "xavier": "Xavier N(0, 1/D_a)",
        "he": "He N(0, 2/D_a), ReLU",
    }


XAVIER_DEPTH_FAILS = (
    "each linear layer keeps the variance (ratio 1.05-1.08 at seeds 0-2), but tanh does not: "
    "E[tanh(z)^2] ~ v - 2v^2 < v, so Var(a_l) decays like 1/(2l) and falls 3.9-5.9x over "
    "layers 5..24; the mean-field recursion predicts 4.8x. The notes' derivation assumes "
    "Var(tanh(z)) = Var(z), exact only as v -> 0"
)


@dataclass(frozen=True)
class InitMeasurements:
    """Per scheme, per hidden layer (arrays of shape (L,)): "pre_var" Var(z_l), "post_var"
    Var(a_l), "saturation" (fraction with |a| > 0.99), "gain" Var(z_l) / Var(a_{l-1})."""

    stats: dict[str, dict[str, np.ndarray]]
    input_var: float
    mean_field: np.ndarray
    """The mean-field prediction of Var(a_l) under Xavier, (L,)."""
    first_layer: int
    samples: int
    """Training digits the statistics pool."""

    @property
    def span(self) -> slice:
        return slice(self.first_layer - 1, None)

    def spread(self, name: str, field: str = "post_var") -> float:
        """max / min of ``field`` over layers first_layer..L."""
        v = self.stats[name][field][self.span]
        return float(v.max() / v.min())

    def gain_factor(self, name: str) -> float:
        """max over layers of max(r, 1/r), r the linear layer's variance ratio."""
        g = self.stats[name]["gain"]
        return float(np.maximum(g, 1 / g).max())

    def saturation(self, name: str) -> float:
        return float(self.stats[name]["saturation"][self.span].mean())

    def drop(self, name: str) -> float:
        v = self.stats[name]["post_var"]
        return float(v[-1] / v[0])

    def mean_field_spread(self) -> float:
        v = self.mean_field[self.span]
        return float(v.max() / v.min())

    def metrics(self) -> dict[str, float]:
        return {
            "xavier_gain_factor_max": self.gain_factor("xavier"),
            "xavier_variance_spread": self.spread("xavier"),
            "xavier_variance_spread_mean_field": self.mean_field_spread(),
            "xavier_var_first": float(self.stats["xavier"]["post_var"][0]),
            "xavier_var_last": float(self.stats["xavier"]["post_var"][-1]),
            "xavier_saturation": self.saturation("xavier"),
            "large_saturation": self.saturation("large"),
            "small_variance_drop": self.drop("small"),
            "he_relu_preactivation_spread": self.spread("he", "pre_var"),
            "he_relu_gain_factor_max": self.gain_factor("he"),
        }


def measure(cfg: InitConfig, ctx: RunContext) -> InitMeasurements:
    """Statistics of one net per scheme, initialised from the stream ("init", scheme)."""
    splits = digits(seed=ctx.seed)
    x = splits.train.tensors[0].double()  # every training digit, (N, 64)
    stats = {}
    for name, (activation, scheme, std_field) in SCHEMES.items():
        with ctx.seeded("init", name):
            net = plain_mlp(
                64,
                cfg.width,
                cfg.depth,
                splits.num_classes,
                activation=activation,
                init=scheme,
                std=getattr(cfg, std_field) if std_field else None,
            ).double()
        s = activation_statistics(net, x, SATURATION_THRESHOLD)
        stats[name] = {
            "pre_var": s.pre_var.numpy(),
            "post_var": s.post_var.numpy(),
            "saturation": s.saturation.numpy(),
            "gain": s.gain.numpy(),
        }
        input_var = s.input_var
    return InitMeasurements(
        stats=stats,
        input_var=input_var,
        mean_field=tanh_mean_field_variances(input_var, cfg.depth),
        first_layer=cfg.first_layer,
        samples=len(x),
    )


def draw(m: InitMeasurements, cfg: InitConfig, ctx: RunContext) -> list[Path]:
    """Variance, the Xavier zoom with the mean field, saturation, and each layer's gain."""
    fig, axes = figure(ncols=2, nrows=2, size=(5.2, 3.6))
    layers = np.arange(1, cfg.depth + 1)
    colors = dict(zip(SCHEMES, ("tab:red", "tab:purple", "tab:blue", "tab:green"), strict=True))
    labels = scheme_labels(cfg)
    for name, s in m.stats.items():
        label = labels[name]
        if SCHEMES[name][0] == "tanh":
            axes[0].plot(layers, s["post_var"], color=colors[name], label=label)
            axes[2].plot(layers, s["saturation"], color=colors[name], label=label)
            axes[3].plot(layers, s["gain"], color=colors[name], label=label)
        else:  # ReLU outputs are not centred: He keeps Var(z), the pre-activation, constant
            axes[0].plot(layers, s["pre_var"], color=colors[name], label=f"{label}: Var(z_l)")
    axes[0].set_yscale("log")
    axes[0].set_ylabel(r"$\mathrm{Var}(a_l)$")
    axes[0].set_title("activation variance per layer", fontsize=10)
    axes[0].legend(fontsize=7)
    # zoom on Xavier, with the band that "within a factor 2" allows over the layers compared
    xavier_label = labels["xavier"]
    xavier = m.stats["xavier"]
    span = slice(cfg.first_layer - 1, cfg.depth)
    axes[1].plot(
        layers,
        xavier["post_var"],
        color=colors["xavier"],
        marker=".",
        label=f"{xavier_label}, measured",
    )
    axes[1].plot(layers, m.mean_field, ":", color="black", label=r"mean field $E[\tanh(z)^2]$")
    top = float(xavier["post_var"][span].max())
    axes[1].axhspan(
        top / WITHIN_FACTOR,
        top,
        color="grey",
        alpha=0.2,
        label=f"within a factor {WITHIN_FACTOR:g} of the largest",
    )
    axes[1].axvspan(
        cfg.first_layer,
        cfg.depth,
        color="tab:blue",
        alpha=0.05,
        label=f"layers {cfg.first_layer}..{cfg.depth}",
    )
    axes[1].set_yscale("log")
    axes[1].set_ylabel(r"$\mathrm{Var}(a_l)$")
    axes[1].set_title(
        f"Xavier + tanh: max/min {m.spread('xavier'):.2f} over layers "
        f"{cfg.first_layer}..{cfg.depth}",
        fontsize=10,
    )
    axes[1].legend(fontsize=7)
    axes[2].set_ylabel(f"fraction of units with |a| > {SATURATION_THRESHOLD:g}")
    axes[2].set_ylim(-0.02, 1.02)
    axes[2].set_title("tanh saturation per layer", fontsize=10)
    axes[2].legend(fontsize=7)
    axes[3].axhspan(
        1 / WITHIN_FACTOR,
        WITHIN_FACTOR,
        color="grey",
        alpha=0.2,
        label=f"within a factor {WITHIN_FACTOR:g}",
    )
    axes[3].set_yscale("log")
    axes[3].set_ylabel(r"$\mathrm{Var}(z_l)\,/\,\mathrm{Var}(a_{l-1})$")
    axes[3].set_title(r"what each linear layer does: $D_a\,\mathrm{Var}(W)$", fontsize=10)
    axes[3].legend(fontsize=7)
    for ax in axes:
        ax.set_xlabel("hidden layer l")
        ax.grid(alpha=0.3, which="both")
    return [ctx.savefig(fig, "activation_statistics")]


def claims(m: InitMeasurements, cfg: InitConfig) -> list[Claim]:
    """The verdicts, from the record and the config only."""
    setting = f"{cfg.depth} tanh layers of width {cfg.width}, all {m.samples} training digits"
    layers = f"layers {cfg.first_layer}..{cfg.depth}"
    return [
        Claim.at_most(
            "Xavier: every linear layer keeps the variance, Var(z_l) / Var(a_{l-1}) within "
            f"a factor {WITHIN_FACTOR:g} (the derivation's D_a Var(W) = 1)",
            m.gain_factor("xavier"),
            WITHIN_FACTOR,
            detail=f"max over layers 1..{cfg.depth} of max(r, 1/r); {setting}",
            key="xavier_keeps_linear_variance",
        ),
        Claim.at_most(
            "Xavier: the tanh net keeps the activation variance within a factor "
            f"{WITHIN_FACTOR:g} across depth (max / min of Var(a_l) over {layers})",
            m.spread("xavier"),
            WITHIN_FACTOR,
            detail=f"{setting}. The notes assume Var(a) = Var(z) (tanh linear); in fact "
            "E[tanh(z)^2] ~ v - 2v^2, so the variance decays like 1/(2l); the mean-field "
            f"recursion predicts a spread of {m.mean_field_spread():.2f} over these layers",
            known_failure=XAVIER_DEPTH_FAILS,
            key="xavier_keeps_depth_variance",
        ),
        Claim.at_most(
            f"Xavier: the tanh units do not saturate (mean fraction with |a| > "
            f"{SATURATION_THRESHOLD:g} over {layers} <= {UNSATURATED:g})",
            m.saturation("xavier"),
            UNSATURATED,
            detail=setting,
            key="xavier_unsaturated",
        ),
        Claim.at_least(
            f"N(0, {cfg.large_std:g}²): the tanh units saturate (mean fraction with |a| > "
            f"{SATURATION_THRESHOLD:g} over {layers} >= {SATURATED:g})",
            m.saturation("large"),
            SATURATED,
            detail=f"{setting}; each layer multiplies the variance by D_a Var(W) = "
            f"{cfg.width * cfg.large_std**2:g} before tanh",
            key="large_saturates",
        ),
        Claim.at_most(
            f"N(0, {cfg.small_std:g}²): the activation variance vanishes, Var(a_L) / Var(a_1) "
            f"<= {VANISH_RATIO:g}",
            m.drop("small"),
            VANISH_RATIO,
            detail=f"{setting}; each layer multiplies the variance by about D_a Var(W) = "
            f"{cfg.width * cfg.small_std**2:g}",
            key="small_vanishes",
        ),
    ]


@experiment(
    "vision.init",
    topic="vision",
    config=InitConfig,
    claims=(
        "xavier_keeps_linear_variance",
        "xavier_keeps_depth_variance",
        "xavier_unsaturated",
        "large_saturates",
        "small_vanishes",
    ),
)
def initialisation(cfg: InitConfig, ctx: RunContext) -> Outcome:
    """Xavier's initialisation keeps the variance of every linear layer of a deep tanh net,
    while N(0, 1) saturates its units and N(0, 0.01²) makes the variance vanish."""
    m = measure(cfg, ctx)
    return Outcome(metrics=m.metrics(), figures=draw(m, cfg, ctx), claims=claims(m, cfg))
