"""Foundations: the supervised-learning recipe, dataset-split discipline, estimators, risk."""
