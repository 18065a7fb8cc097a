r"""How blurry is an image? Its energy at high spatial frequencies (notes, discussion 10,
problem 2 "Blurry Images").

The 2-D discrete Fourier transform :math:`F(k) = \sum_x I(x) e^{-2\pi i k \cdot x / n}` of an
``H x W`` image splits its energy over frequencies (Parseval:
:math:`\sum_x I(x)^2 = \frac{1}{HW} \sum_k |F(k)|^2`). The **high-frequency energy** of an image
is the per-pixel energy of its frequencies whose larger component :math:`\max(|f_y|, |f_x|)` is at
least ``cutoff`` cycles per pixel (Nyquist is 0.5; the default 0.25 keeps the upper half of the
band):

.. math:: E_{hf}(I) = \frac{1}{(HW)^2} \sum_{k:\ \max(|f_y|, |f_x|) \ge c} |F(k)|^2,

the mean squared value of the image's high-pass part. A blurred image (an average of several
sharp ones, gray where they disagree) has less of it than a sharp 0/1 image; :func:`blur_ratio`
compares a set of images with reference data (``< 1``: blurrier than the data).

Used by ``generative.vae`` for the VAE's mean reconstructions and samples, and reusable for any
sampler (the PixelCNN's samples in the lead's wiring).
"""

from __future__ import annotations

import torch

DEFAULT_CUTOFF = 0.25
"""Cycles per pixel from which a frequency counts as high (the upper half up to Nyquist 0.5)."""


def _check_images(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"expected images (N, C, H, W), got {shape}")
    if torch.isnan(images).any():
        raise ValueError("images contain NaN")
    return images.to(torch.float64)


def high_frequency_mask(height: int, width: int, cutoff: float = DEFAULT_CUTOFF) -> torch.Tensor:
    """Boolean ``(H, W)`` in FFT order: True where ``max(|f_y|, |f_x|) >= cutoff`` cycles/pixel."""
    if not 0 < cutoff <= 0.5:
        raise ValueError(f"cutoff must be in (0, 0.5] cycles per pixel, got {cutoff}")
    fy = torch.fft.fftfreq(height, dtype=torch.float64).abs()[:, None]  # (H, 1)
    fx = torch.fft.fftfreq(width, dtype=torch.float64).abs()[None, :]  # (1, W)
    return torch.maximum(fy, fx) >= cutoff - 1e-12


def power_spectrum(images: torch.Tensor) -> torch.Tensor:
    """:math:`|F(k)|^2 / (HW)^2` per image and frequency, ``(N, H, W)`` (channels summed), float64.

    Summed over frequencies it is the image's mean squared pixel value (Parseval)."""
    x = _check_images(images)
    h, w = x.shape[-2:]
    return (torch.fft.fft2(x).abs() ** 2).sum(1) / (h * w) ** 2


def high_frequency_energy(images: torch.Tensor, cutoff: float = DEFAULT_CUTOFF) -> torch.Tensor:
    """:math:`E_{hf}` of each image (module docstring), ``(N,)`` float64.

    Example:
        >>> sharp = torch.randint(0, 2, (10, 1, 8, 8)).float()
        >>> high_frequency_energy(sharp).mean() > high_frequency_energy(sharp.mean(0, True))
        tensor(True)
    """
    power = power_spectrum(images)  # (N, H, W)
    mask = high_frequency_mask(*power.shape[-2:], cutoff)
    return power[:, mask].sum(1)


def blur_ratio(images: torch.Tensor, data: torch.Tensor, cutoff: float = DEFAULT_CUTOFF) -> float:
    """Mean high-frequency energy of ``images`` over that of ``data``: ``< 1`` is blurrier."""
    return float(
        high_frequency_energy(images, cutoff).mean() / high_frequency_energy(data, cutoff).mean()
    )


def radial_spectrum(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean power per frequency band ``max(|f_y|, |f_x|)``, for plots.

    Returns:
        ``(bands, power)``: the distinct band frequencies (B,) in cycles per pixel, ascending,
        and the mean over images of the summed power in each band (B,).
    """
    power = power_spectrum(images).mean(0)  # (H, W)
    h, w = power.shape
    fy = torch.fft.fftfreq(h, dtype=torch.float64).abs()[:, None]
    fx = torch.fft.fftfreq(w, dtype=torch.float64).abs()[None, :]
    band = torch.maximum(fy, fx).expand(h, w)
    bands = torch.unique(band)
    return bands, torch.stack([power[band == b].sum() for b in bands])
