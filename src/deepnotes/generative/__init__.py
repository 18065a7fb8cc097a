"""Generative models (notes, discussion 10): autoregressive models of pixels (PixelCNN,
PixelRNN, a pixel transformer), autoencoders, the VAE, and normalising flows (NICE, RealNVP).

Every model of binary images reports its likelihood one way
(:mod:`~deepnotes.generative.likelihood`: nats per image and bits per dimension, on the
binarised images of :mod:`deepnotes.data.binary`).
"""
