"""Errors users can act on, each with its own exit code.

The CLI turns any ``VidcolorError`` into one line on stderr and ``exit_code``;
everything else is a bug and keeps its traceback only under ``--debug``.
"""

from __future__ import annotations


class VidcolorError(Exception):
    """Base class: a problem the user can fix, reported as one line."""

    exit_code = 1


class UsageError(VidcolorError):
    """Bad options or option combinations."""

    exit_code = 2


class ConfigError(UsageError):
    """A config file with an unknown key, a wrong type or a bad value."""

    exit_code = 2


class InputError(VidcolorError):
    """An input file that is missing, unreadable, or not usable media."""

    exit_code = 3


class TimestampError(InputError):
    """Frame timestamps that go backwards in decoding order: the file's timing is damaged."""

    def __init__(self, path, detail: str):
        super().__init__(f"{path}: {detail}")
        self.detail = detail  # the message without the file name (probe's report names the file once)


class OutputError(VidcolorError):
    """The output cannot be written (exists, read-only, full disk, same as input)."""

    exit_code = 4


class ModelError(VidcolorError):
    """Weights that are missing, corrupt, or do not match their config."""

    exit_code = 5


class TrainingError(VidcolorError):
    """Training cannot go on (a NaN or inf loss, no data)."""

    exit_code = 6


class Interrupted(VidcolorError):
    """The run was stopped by Ctrl-C (130) or SIGTERM (143)."""

    exit_code = 130

    def __init__(self, message: str = "interrupted", signal_exit_code: int = 130):
        super().__init__(message)
        self.exit_code = signal_exit_code
