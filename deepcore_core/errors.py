"""Errors that the CLI turns into one clear line and exit code 2."""

from __future__ import annotations


class DeepcoreError(Exception):
    """Bad input or an impossible request; the message is shown to the user as is."""


class OptionError(DeepcoreError):
    """A method option is unknown, ill-typed or out of range."""


class PluginError(DeepcoreError):
    """A plugin failed to load or registered something invalid."""


class TrainingDiverged(DeepcoreError):
    """The training loss stopped being finite."""


class MissingInputError(DeepcoreError):
    """A method needs an input (labels, a trained model, ...) that was not given."""
