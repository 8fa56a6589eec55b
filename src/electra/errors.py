"""The one exception type for bad input: the CLI prints its message on one line and exits 2."""


class UserError(Exception):
    """A problem with what the user gave us (a path, a file, a config value), with the fix in the message."""
