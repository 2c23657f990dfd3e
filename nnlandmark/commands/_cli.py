"""Shared command plumbing: user errors become one line on stderr and exit code 2, never a traceback."""
import functools
import sys

from nnlandmark.errors import LandmarkError


def user_errors_as_one_line(main):
    @functools.wraps(main)
    def wrapper(argv=None):
        try:
            return main(argv)
        except LandmarkError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    return wrapper
