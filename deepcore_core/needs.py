"""The inputs a selection method can need."""

from __future__ import annotations

import enum


class Need(enum.StrEnum):
    """An input a method needs; shown by ``deepcore list-methods``."""

    LABELS = "labels"  #: class labels of every sample
    FEATURES = "features"  #: an N x D feature matrix (penultimate layer, or given)
    PROBABILITIES = "probabilities"  #: predicted class probabilities (or logits)
    GRADIENTS = "gradients"  #: last-layer gradient embedding: features + probabilities + labels
    MODEL = "model"  #: the trained selection model itself (e.g. for input gradients)
    DYNAMICS = "dynamics"  #: per-sample training dynamics recorded during pretraining
    SCORES = "scores"  #: per-sample scores given by the user
    #: the training inputs and a network the engine trains on them (not a user's model)
    DATASET = "dataset"
