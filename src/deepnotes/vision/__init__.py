"""Vision: the CNN zoo of the notes and the phenomena of training deep vision networks.

Notes, discussion 4 ("Convolutional Neural Networks Architectures", batch normalization,
initialisation, ensembles, dropout) and discussion 5 (vision applications).

Library modules (no plotting, no I/O):

- :mod:`deepnotes.vision.models`: LeNet-5, AlexNet, VGG, GoogLeNet (inception blocks) and ResNet
  (basic and bottleneck blocks), each with a full-size ImageNet configuration and a small one
  for digits-sized images, plus :func:`~deepnotes.vision.models.count_parameters`.
- :mod:`deepnotes.vision.regularization`: the notes' inverted dropout (``U = (rand < p) / p``)
  as a function, a layer and an MLP that uses it.
- :mod:`deepnotes.vision.ensembles`: prediction and parameter averaging, cyclic cosine
  snapshots and head-only ensembles.
- :mod:`deepnotes.vision.deep_nets`: deep plain and residual nets, initialisations and the
  statistics of their activations and gradients.
- :mod:`deepnotes.vision.derivations`: the Xavier derivation, registered with the catalog.

Experiments: :mod:`deepnotes.vision.experiments`, one module per registered experiment, e.g.
``vision.parameter_counts`` and ``vision.digits_cnns`` (the zoo), ``vision.dropout`` and
``vision.ensembles`` (regularisation).
"""
