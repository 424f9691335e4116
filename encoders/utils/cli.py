"""What every command-line entry point shares: the errors it reports as one ``error:`` line with exit code 2.

Bad input (a missing folder, a wrong value, a corrupt checkpoint) and a full disk are the user's to fix, so a CLI
prints the message alone, no traceback::

    try:
        result = run(cfg)
    except CLI_ERRORS as e:
        return report_error(e)
"""

from __future__ import annotations

import sys

from encoders.utils.io import CheckpointError, DiskFullError

#: Exceptions a CLI reports as ``error: <message>`` and exit code 2 (anything else is a bug: traceback)
CLI_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    NotADirectoryError,
    PermissionError,
    CheckpointError,
    DiskFullError,
)

#: The exit code of a CLI that refused its input or could not write its output
USAGE_ERROR = 2


def report_error(error: BaseException, show: bool = True) -> int:
    """Print ``error: <message>`` to stderr (unless ``show`` is False, e.g. on a non-zero rank); return 2."""
    if show:
        print(f"error: {error}", file=sys.stderr)
    return USAGE_ERROR


__all__ = ["CLI_ERRORS", "USAGE_ERROR", "report_error"]
