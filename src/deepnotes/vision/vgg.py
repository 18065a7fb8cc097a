r"""VGG-19 (Simonyan & Zisserman 2015, configuration E) in torchvision's layout, with named layers
and a loader of a torchvision-format state dict from a path. Notes: discussion 5, sections 4
"DeepDream" and 5 "Style Transfer" ("in the original paper, through a VGG-19 architecture").

Architecture: sixteen 3x3 convolutions (padding 1) each followed by a ReLU, in five blocks of
2, 2, 4, 4, 4 with ``widths`` = (64, 128, 256, 512, 512) channels, each block closed by a 2x2
max-pool; then an adaptive average pool to 7x7 and the classifier ``Linear(512*7*7, 4096) ->
ReLU -> Dropout -> Linear(4096, 4096) -> ReLU -> Dropout -> Linear(4096, 1000)``.

Layer names: ``conv{b}_{i}``, ``relu{b}_{i}`` (block ``b`` = 1..5, ``i`` = 1..4) and
``pool{b}``, as in Gatys et al. (2016); :data:`LAYERS` lists them in order, and
:meth:`VGG19.activations` returns the activations of any of them. In the state dict of this
module the feature layers are keyed by name (``features.conv1_1.weight``); torchvision keys
them by position in ``features`` (``features.0.weight``; the convolutions sit at 0, 2, 5, 7,
10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34) and the classifier by
``classifier.0/3/6``. :func:`torchvision_keys` maps one to the other and :func:`load_vgg19`
reads a torchvision file (``vgg19-dcbb9e9d.pth``, as ``torchvision.models.vgg19(weights=
"IMAGENET1K_V1").state_dict()`` saves it) with that mapping.

Input normalisation: the network takes images in [0, 1], (N, 3, H, W), and normalises them with
ImageNet's channel statistics, mean :data:`IMAGENET_MEAN` = (0.485, 0.456, 0.406) and standard
deviation :data:`IMAGENET_STD` = (0.229, 0.224, 0.225) (torchvision's weights were trained on
inputs normalised this way), before the first convolution.

Random features (:func:`random_vgg19`): the same layout with He-normal convolution weights and
zero biases, no training, at any ``widths``. Ustyuzhaninov et al. (2016/2017, "Texture synthesis
using shallow convolutional networks with random filters"; "What does it take to generate
natural textures?", ICLR 2017) showed that Gram-matrix texture losses work with random
multi-scale filters; the experiments use a narrow random VGG-19 as their default features for
that reason (see their docstrings).

Example:
    >>> model = load_vgg19("vgg19-dcbb9e9d.pth")  # torchvision's file, keys mapped
    >>> acts = model.activations(image, ["relu1_1", "relu4_2"])  # image (1, 3, H, W) in [0, 1]
"""

from __future__ import annotations

import math
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from deepnotes.core.errors import DataFormatError, UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
"""ImageNet channel means (R, G, B) of images in [0, 1]."""
IMAGENET_STD = (0.229, 0.224, 0.225)
"""ImageNet channel standard deviations (R, G, B) of images in [0, 1]."""
VGG19_WIDTHS = (64, 128, 256, 512, 512)
"""Channels of the five blocks of VGG-19."""
BLOCK_DEPTHS = (2, 2, 4, 4, 4)
"""Convolutions per block (configuration E)."""
HIDDEN = 4096
CLASSES = 1000
POOLED = 7
"""Side of the adaptive average pool before the classifier."""
POOLS = ("max", "avg")
"""The 2x2 pooling of the feature blocks: VGG-19's max, or the average that Gatys et al.
(2016, section 2) substitute for image synthesis (better gradient flow; same weights)."""


def _layer_names() -> tuple[str, ...]:
    names: list[str] = []
    for b, depth in enumerate(BLOCK_DEPTHS, start=1):
        for i in range(1, depth + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return tuple(names)


LAYERS = _layer_names()
"""The 37 feature layers in order: conv1_1, relu1_1, conv1_2, relu1_2, pool1, ..., pool5. The
position of a name in this tuple is its index in torchvision's ``features``."""
CONVS = tuple(name for name in LAYERS if name.startswith("conv"))


def torchvision_keys(classifier: bool = True) -> dict[str, str]:
    """torchvision's state-dict key -> this module's key, e.g. ``features.0.weight`` ->
    ``features.conv1_1.weight``; ``classifier.{0,3,6}.{weight,bias}`` keep their names."""
    mapping = {}
    for index, name in enumerate(LAYERS):
        if name.startswith("conv"):
            for p in ("weight", "bias"):
                mapping[f"features.{index}.{p}"] = f"features.{name}.{p}"
    if classifier:
        for index in (0, 3, 6):
            for p in ("weight", "bias"):
                mapping[f"classifier.{index}.{p}"] = f"classifier.{index}.{p}"
    return mapping


class VGG19(nn.Module):
    """VGG-19 with named feature layers (see the module docstring).

    Arguments:
        widths: channels of the five blocks; :data:`VGG19_WIDTHS` is the real network.
        classifier: build the average pool and the three-layer classifier (False: features
            only, which is all DeepDream and style transfer use).
        hidden: width of the classifier's two hidden layers.
        classes: number of output classes.
        pool: ``"max"`` (VGG-19) or ``"avg"`` (Gatys et al.'s substitute for synthesis).

    Shapes: ``forward`` (N, 3, H, W) in [0, 1] -> logits (N, classes); ``activations`` gives
    the named layers, ``conv{b}_*`` / ``relu{b}_*`` of shape (N, widths[b-1], H/2^(b-1),
    W/2^(b-1)) (floor division at every pool).
    """

    def __init__(
        self,
        widths: Sequence[int] = VGG19_WIDTHS,
        *,
        classifier: bool = True,
        hidden: int = HIDDEN,
        classes: int = CLASSES,
        pool: str = "max",
    ) -> None:
        super().__init__()
        if pool not in POOLS:
            raise UsageError(f"pool must be one of {POOLS}, got {pool!r}")
        if len(widths) != len(BLOCK_DEPTHS) or any(int(w) < 1 for w in widths):
            raise UsageError(f"widths must be five positive ints, got {tuple(widths)}")
        self.widths = tuple(int(w) for w in widths)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = 3
        for b, (depth, width) in enumerate(zip(BLOCK_DEPTHS, self.widths, strict=True), start=1):
            for i in range(1, depth + 1):
                layers[f"conv{b}_{i}"] = nn.Conv2d(c_in, width, kernel_size=3, padding=1)
                layers[f"relu{b}_{i}"] = nn.ReLU()
                c_in = width
            layers[f"pool{b}"] = (
                nn.MaxPool2d(kernel_size=2, stride=2)
                if pool == "max"
                else nn.AvgPool2d(kernel_size=2, stride=2)
            )
        self.features = nn.Sequential(layers)
        self.has_classifier = classifier
        if classifier:
            self.avgpool = nn.AdaptiveAvgPool2d((POOLED, POOLED))
            self.classifier = nn.Sequential(
                nn.Linear(self.widths[-1] * POOLED * POOLED, hidden),
                nn.ReLU(),
                nn.Dropout(0.5),
                nn.Linear(hidden, hidden),
                nn.ReLU(),
                nn.Dropout(0.5),
                nn.Linear(hidden, classes),
            )

    def normalise(self, image: Tensor) -> Tensor:
        """(N, 3, H, W) in [0, 1] -> (image - mean) / std with ImageNet's statistics."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise UsageError(f"image must be (N, 3, H, W), got shape {tuple(image.shape)}")
        return (image - self.mean) / self.std

    def activations(self, image: Tensor, layers: Iterable[str]) -> dict[str, Tensor]:
        """The activations of the named ``layers`` for ``image`` (N, 3, H, W) in [0, 1],
        computed by one forward pass that stops at the deepest of them."""
        wanted = list(dict.fromkeys(layers))
        unknown = [name for name in wanted if name not in LAYERS]
        if unknown or not wanted:
            raise UsageError(f"layers must be among {LAYERS}, got {wanted}")
        last = max(LAYERS.index(name) for name in wanted)
        out: dict[str, Tensor] = {}
        x = self.normalise(image)
        for index, (name, layer) in enumerate(self.features.named_children()):
            x = layer(x)
            if name in wanted:
                out[name] = x
            if index == last:
                break
        return out

    def forward(self, image: Tensor) -> Tensor:
        """(N, 3, H, W) in [0, 1] -> logits (N, classes)."""
        if not self.has_classifier:
            raise UsageError("this VGG19 was built with classifier=False: use activations()")
        x = self.features(self.normalise(image))
        return self.classifier(torch.flatten(self.avgpool(x), 1))


def random_vgg19(
    widths: Sequence[int],
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    pool: str = "max",
) -> VGG19:
    """A features-only VGG-19 with random He-normal filters (std sqrt(2 / (9 c_in))) and zero
    biases, in eval mode with its parameters frozen (random features; module docstring)."""
    model = VGG19(widths, classifier=False, pool=pool).to(dtype)
    with torch.no_grad():
        for name in CONVS:
            conv = model.features.get_submodule(name)
            fan_in = conv.in_channels * 9
            conv.weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
            conv.bias.zero_()
    return model.eval().requires_grad_(False)


def load_vgg19(
    path: str | Path,
    *,
    classifier: bool = True,
    widths: Sequence[int] = VGG19_WIDTHS,
    hidden: int = HIDDEN,
    classes: int = CLASSES,
    pool: str = "max",
) -> VGG19:
    """Read a torchvision-format VGG-19 state dict from ``path`` into :class:`VGG19`, keys
    mapped by :func:`torchvision_keys`; in eval mode with its parameters frozen.

    Arguments:
        path: a file written by ``torch.save(state_dict)`` (read with ``weights_only=True``).
        classifier: also load the classifier (its six keys are then required); with False the
            classifier keys may be present and are ignored.
        widths, hidden, classes: the architecture the file must match (the real VGG-19 by
            default; smaller ones let tests write small files in the same layout).
        pool: the feature blocks' pooling, "max" or "avg" (no weights either way).

    Raises:
        DataFormatError: the file is missing or not a torch file, holds no state dict, or its
            keys or shapes differ from the layout (the message names the missing and unexpected
            keys, or each key whose shape differs with the expected shape).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"VGG-19 weights file {path} does not exist (or is not a file)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as err:
        raise DataFormatError(
            f"{path} is not a torch file holding a state dict (torch.load said: "
            f"{str(err).splitlines()[0][:200] if str(err) else type(err).__name__})"
        ) from err
    if not isinstance(state, Mapping) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise DataFormatError(
            f"{path} does not hold a state dict (a mapping of str keys to tensors, as "
            f"torch.save(model.state_dict()) writes), got {type(state).__name__}"
        )
    mapping = torchvision_keys(classifier)
    optional = set(torchvision_keys(True)) - set(mapping)
    missing = [k for k in mapping if k not in state]
    unexpected = [k for k in state if k not in mapping and k not in optional]
    if missing or unexpected:
        raise DataFormatError(
            f"{path} is not a torchvision VGG-19 state dict: missing keys {missing[:8]}"
            f"{' ...' if len(missing) > 8 else ''} ({len(missing)}), unexpected keys "
            f"{unexpected[:8]}{' ...' if len(unexpected) > 8 else ''} ({len(unexpected)}); "
            f"expected features.{{0,2,5,...,34}}.weight/bias"
            + (" and classifier.{0,3,6}.weight/bias" if classifier else "")
        )
    with torch.device("meta"):  # shapes only: nothing allocated until the file's tensors land
        model = VGG19(widths, classifier=classifier, hidden=hidden, classes=classes, pool=pool)
    expected = model.state_dict()
    wrong = [
        f"{k}: expected {tuple(expected[ours].shape)}, got {tuple(state[k].shape)}"
        for k, ours in mapping.items()
        if tuple(state[k].shape) != tuple(expected[ours].shape)
    ]
    if wrong:
        raise DataFormatError(
            f"{path}: {len(wrong)} tensor(s) have the wrong shape for VGG-19 with widths "
            f"{tuple(widths)}: " + "; ".join(wrong[:6]) + (" ..." if len(wrong) > 6 else "")
        )
    ours = {mapping[k]: state[k].float() for k in mapping}
    ours["mean"] = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    ours["std"] = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    model.load_state_dict(ours, strict=True, assign=True)
    return model.eval().requires_grad_(False)
