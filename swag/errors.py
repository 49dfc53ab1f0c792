"""Exception types raised by ``swag``; the CLI turns them into one-line messages."""


class PosteriorError(ValueError):
    """A posterior file is missing, corrupt, or does not match the model it is loaded into."""
