"""Generative adversarial networks (notes, discussion 11, part 1): the minimax game and its
optimal discriminator, the non-saturating loss, WGAN with weight clipping, WGAN-GP, spectral
normalisation, LSGAN and instance noise, trained by one alternating loop through the engine.

A room of its own rather than modules of :mod:`deepnotes.generative`: GANs have no likelihood
(the generative room's unit of comparison), their own training loop (two optimisers, ``n_critic``)
and their own metrics (modes covered, high-quality samples, a judge classifier); they reuse the
generative room's data (:mod:`deepnotes.data.toy2d`, :mod:`deepnotes.data.binary`) and its VAE
as a point of comparison.
"""
