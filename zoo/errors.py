"""Errors that the zoo raises for bad user input.

A :class:`ZooError` is the user's to fix (a wrong name, an impossible split, a bad file), so the
``zoo`` command prints its message and exits with status 2 instead of showing a traceback.
"""

from __future__ import annotations


class ZooError(ValueError):
    """Bad user input: the message names the option and what would be valid."""

    #: keep the run directory the command made (its checkpoints are still good)
    keep_run = False


class NonFiniteLossError(ZooError):
    """Training produced a NaN or infinite loss and stopped; the checkpoints written before it
    are kept."""

    keep_run = True


class UnknownNameError(ZooError, KeyError):
    """A name that is not in a registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
