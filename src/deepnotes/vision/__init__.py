"""Vision: the CNN zoo of the notes and the phenomena of training deep vision networks.

Notes, discussion 4 ("Convolutional Neural Networks Architectures", batch normalization,
initialisation, ensembles, dropout) and discussion 5 (vision applications).

- :mod:`deepnotes.vision.models`: LeNet-5, AlexNet, VGG, GoogLeNet (inception blocks) and ResNet
  (basic and bottleneck blocks), each with a full-size ImageNet configuration and a small one
  for digits-sized images, plus :func:`~deepnotes.vision.models.count_parameters`.
- :mod:`deepnotes.vision.zoo_experiments`: the experiments ``vision.parameter_counts`` and
  ``vision.digits_cnns``.
"""
