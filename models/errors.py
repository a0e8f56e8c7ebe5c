"""The one exception type the models package raises for bad user input."""


class ModelError(ValueError):
    """A model name, spec or setting that cannot be built; the message says how to fix it."""
