"""The project's own errors: bad input a user can fix. Entry points end these in one clear line; anything else
is a bug and keeps its traceback. Importing this module imports nothing heavy (no torch)."""


class FacearithError(Exception):
    """Something the user can fix: a parameter, a file, the state of the pipeline."""


class ConfigError(FacearithError, ValueError):
    """A parameter is unknown, missing, of the wrong type or out of range."""


class DataError(FacearithError):
    """The raw data is missing, damaged or not what it claims to be."""


class ModelError(FacearithError):
    """The model or its weights cannot be built or loaded."""


class IndexMissingError(FacearithError):
    """The index is missing or does not match the features."""


class QueryError(FacearithError):
    """The question cannot be asked: the pipeline has not run, or a name or file is unknown."""


class TrainError(FacearithError, ValueError):
    """The training data or settings cannot train a network (e.g. a single expression)."""
