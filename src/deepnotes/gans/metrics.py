r"""Mode collapse on a Gaussian mixture: modes covered and the share of high-quality samples.

The protocol of VEEGAN (Srivastava et al., 2017, section 5.1, https://arxiv.org/abs/1705.07761)
and PacGAN (Lin et al., 2018, section 5.1, https://arxiv.org/abs/1712.04086), taken from
PacGAN's code (``synthetic_data_experiments/PacGAN/pacgan/extensions.py``, ``MetricLogger``,
with ``num_log_figure_sample = 2500`` in ``2DRing_GAN&PacGAN/config.py``):

- draw :data:`SAMPLES` = 2,500 points from the generator;
- assign each point :math:`x` to its nearest mode :math:`k^\star = \arg\min_k d_k(x)`, with the
  distance in standard deviations :math:`d_k(x) = \lVert x - \mu_k \rVert_2 / \sigma` (PacGAN
  divides each coordinate by that mode's standard deviation; the modes here are isotropic with
  one :math:`\sigma`, so it is the Euclidean distance over :math:`\sigma`);
- the point is **high-quality** when :math:`d_{k^\star}(x) < 3` (:data:`SIGMAS`); the
  percentage of high-quality samples is their share of all points;
- a mode is **covered** when at least :data:`MIN_COUNT` = 1 high-quality point is assigned to it
  (PacGAN counts the modes with a non-zero count; VEEGAN: a mode is captured when a sample lies
  within three standard deviations of its mean).

Example:
    >>> ring = toy2d.ring()
    >>> m = mode_coverage(generator_samples, ring.means, ring.std)    # (2500, 2) samples
    >>> m.modes, m.high_quality                                        # e.g. 8, 0.97
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from deepnotes.core.errors import UsageError

SAMPLES = 2500
"""Generator samples per evaluation (PacGAN's ``num_log_figure_sample``)."""
SIGMAS = 3.0
"""A sample within this many standard deviations of its nearest mode's mean is high-quality."""
MIN_COUNT = 1
"""High-quality samples a mode needs to count as covered (PacGAN: a non-zero count)."""


@dataclass(frozen=True)
class ModeCoverage:
    """The modes a set of samples covers and how many samples are of high quality."""

    counts: torch.Tensor
    """High-quality samples assigned to each mode, (K,) int64."""
    samples: int
    """How many samples were scored."""
    min_count: int
    """A mode is covered when its count reaches this."""

    @property
    def modes(self) -> int:
        """Modes covered: those with at least ``min_count`` high-quality samples."""
        return int((self.counts >= self.min_count).sum())

    @property
    def high_quality(self) -> float:
        """Share of the samples (in [0, 1]) within :data:`SIGMAS` std of their nearest mode."""
        return float(self.counts.sum()) / self.samples


def mode_coverage(
    samples: torch.Tensor,
    means: torch.Tensor,
    std: float,
    *,
    sigmas: float = SIGMAS,
    min_count: int = MIN_COUNT,
) -> ModeCoverage:
    """Score ``samples`` (n, D) against the isotropic modes ``means`` (K, D) of standard
    deviation ``std`` (see the module docstring), vectorised over samples and modes.

    Raises:
        UsageError: shapes that do not match, ``std`` or ``sigmas`` <= 0, ``min_count`` < 1,
            non-finite samples.
    """
    if samples.ndim != 2 or means.ndim != 2 or samples.shape[1] != means.shape[1]:
        raise UsageError(
            f"expected samples (n, D) and means (K, D) with the same D, got "
            f"{tuple(samples.shape)} and {tuple(means.shape)}"
        )
    if samples.shape[0] < 1 or means.shape[0] < 1:
        raise UsageError("need at least one sample and one mode")
    if not (std > 0 and sigmas > 0) or min_count < 1:
        raise UsageError(
            f"need std > 0, sigmas > 0 and min_count >= 1, got {std}, {sigmas}, {min_count}"
        )
    x = samples.detach().to(torch.float64)
    mu = means.detach().to(device=x.device, dtype=torch.float64)
    if not torch.isfinite(x).all():
        raise UsageError("samples contain NaN or infinite values")
    distance = torch.cdist(x, mu) / std  # (n, K): distance to each mean, in standard deviations
    nearest, mode = distance.min(dim=1)  # (n,), (n,)
    good = nearest < sigmas  # (n,): high-quality samples
    counts = torch.bincount(mode[good], minlength=mu.shape[0]).cpu()  # (K,)
    return ModeCoverage(counts=counts, samples=int(x.shape[0]), min_count=min_count)
