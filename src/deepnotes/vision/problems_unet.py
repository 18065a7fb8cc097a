"""The notes' U-Net problem, answered by the library's U-Net.

Discussion 5, section 3, problem 3 ("U-Net Potpourri"): on the figure of Ronneberger et al.
(2015), what the upward arrows are, what the rightward arrows do, and which transformations
have learned parameters. The answers are read off :class:`~deepnotes.vision.segmentation.UNet`
built with the paper's widths (64 to 1024) and two classes: the operations and their shapes
come from running its modules on a tensor, the parameter counts from
:func:`~deepnotes.vision.segmentation.parameters_by_operation`. The spatial sizes differ from
the paper's figure (572 -> 388) because this U-Net pads its convolutions (see the module's
deviation); the channel counts are the paper's.
"""

from __future__ import annotations

import torch

from deepnotes.core.catalog import Answer, problem
from deepnotes.vision.segmentation import UNet, parameters_by_operation

PAPER_WIDTHS = (64, 128, 256, 512, 1024)
"""The channels per level in Ronneberger et al. (2015), figure 1."""
SIDE = 32
"""The side of the input run through the network (any multiple of 16)."""


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(s) for s in t.shape[1:])


@problem("U-Net potpourri", topic="vision", source="discussion 5, section 3, problem 3")
def unet_potpourri() -> Answer:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = UNet(1, 2, PAPER_WIDTHS).eval()
    with torch.no_grad():
        x = torch.zeros(1, 1, SIDE, SIDE)
        copies = []
        for block in net.down:  # the encoder, keeping the maps the skips copy
            x = block(x)
            copies.append(x)
            x = net.pool(x)
        deep = net.bottleneck(x)
        up = net.up[0](deep)  # the first upward arrow
        joined = net.concat[0](up, copies[-1])  # the first long rightward arrow
        after = net.decode[0](joined)  # the short rightward arrows that follow it
    counts = parameters_by_operation(net)
    learned = [name for name, n in counts.items() if n > 0]
    fixed = [name for name, n in counts.items() if n == 0]
    up_module = net.up[0]
    return Answer(
        [
            (
                "upward arrows",
                f"up-convolution: a {up_module.kernel_size[0]}x{up_module.kernel_size[1]} "
                f"transposed convolution of stride {up_module.stride[0]} "
                f"({type(up_module).__name__}); it doubles the side and halves the channels: "
                f"{_shape(deep)} -> {_shape(up)} (channels x height x width)",
            ),
            (
                "rightward arrows",
                f"long arrows: copy the encoder's map of the same resolution and concatenate it "
                f"to the upsampled one (the skip connection: fine spatial detail the pooling "
                f"lost): {_shape(up)} + {_shape(copies[-1])} -> {_shape(joined)}; short arrows: "
                f"3x3 convolutions + ReLU within a level: {_shape(joined)} -> {_shape(after)}",
            ),
            ("learned parameters per operation type", list(counts.items())),
            ("operations with learned parameters", learned),
            ("operations without learned parameters", fixed),
            ("total learned parameters", sum(counts.values())),
        ],
        note="UNet(1, 2, widths=(64, 128, 256, 512, 1024)) of deepnotes.vision.segmentation, "
        "run on a 1x32x32 input; counts by parameters_by_operation over its leaf modules.",
    )
