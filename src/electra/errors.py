"""The one exception type for bad input: the CLI prints its message on one line and exits 2."""
from __future__ import annotations

import argparse


class UserError(Exception):
    """A problem with what the user gave us (a path, a file, a config value), with the fix in the message."""


class Terminated(BaseException):
    """SIGTERM, raised wherever the command is: like KeyboardInterrupt, not caught by `except Exception`."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with its usage errors (a missing argument, a bad value, an unknown choice) raised as
    `UserError`: one line that points at --help, like every other bad input, instead of the usage block."""

    def error(self, message: str):
        raise UserError(f"{message}; see `{self.prog} --help`")
