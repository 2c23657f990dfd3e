"""Shared command plumbing: user errors become one line on stderr and exit code 2, an interruption one line and exit
code 130 (Ctrl-C) or 143 (SIGTERM), never a traceback; argument types that argparse refuses with the option's name."""
import argparse
import functools
import os
import signal
import sys
import threading

from tqdm import tqdm

from nnlandmark.errors import LandmarkError


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C but with its own exit code."""


def _close_progress_bars() -> None:
    """An open tqdm bar leaves the cursor after its '\\r' line; closing it ends that line, so the message that follows
    starts on a line of its own (tqdm.write would redraw the bar after it)."""
    for bar in list(tqdm._instances):
        bar.close()


def _sigterm_as_interrupt(main_pid: int):
    def handler(signum, frame):
        if os.getpid() != main_pid:  # a forked worker inherited this handler: end as SIGTERM always ended it
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise _Terminated()
    return handler


def user_errors_as_one_line(main=None, *, on_interrupt: str = ""):
    """Decorate a command's ``main(argv)``; ``on_interrupt`` says what an interrupted run keeps and how to go on."""
    if main is None:
        return functools.partial(user_errors_as_one_line, on_interrupt=on_interrupt)

    @functools.wraps(main)
    def wrapper(argv=None):
        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _sigterm_as_interrupt(os.getpid())) if in_main_thread else None
        try:
            return main(argv)
        except LandmarkError as e:
            _close_progress_bars()
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt as e:
            _close_progress_bars()
            print("interrupted" + (f": {on_interrupt}" if on_interrupt else ""), file=sys.stderr)
            sys.exit(128 + (signal.SIGTERM if isinstance(e, _Terminated) else signal.SIGINT))
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
    return wrapper


def _bounded(convert, accept, requirement: str):
    """An argparse type: a value that ``convert`` reads and ``accept`` takes, else a parser error (exit code 2) that
    names the option and the requirement."""
    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got '{text}'")
        return value
    return parse


positive_int = _bounded(int, lambda v: v > 0, "a positive integer")
non_negative_int = _bounded(int, lambda v: v >= 0, "an integer >= 0")
positive_float = _bounded(float, lambda v: v > 0 and v != float('inf'), "a positive number")
fraction = _bounded(float, lambda v: 0 < v <= 1, "a number in (0, 1]")
