"""Writing files so that an interrupted run never leaves a truncated one, and reading JSON/text with clear errors."""
import json
import os
from contextlib import contextmanager
from typing import List, Optional

from nnlandmark.errors import LandmarkError


@contextmanager
def written_atomically(path: str, temporary: Optional[str] = None):
    """Yield a temporary path to write instead of ``path``; when the block ends it replaces ``path`` if anything was
    written there, so an interrupted run never leaves a truncated file (nor, short of SIGKILL, the temporary one)."""
    temporary = temporary or f"{path}.tmp{os.getpid()}"
    try:
        yield temporary
        if os.path.exists(temporary):
            os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text_atomic(text: str, path: str) -> None:
    with written_atomically(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as f:
        f.write(text)


def write_json_atomic(obj, path: str) -> None:
    write_text_atomic(json.dumps(obj, indent=2, ensure_ascii=False), path)


def read_json(path, what: str = "JSON file", **kwargs):
    """A JSON file's content (UTF-8, a BOM tolerated: Windows editors write one), or a LandmarkError naming the file
    (``kwargs`` go to ``json.load``)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f, **kwargs)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise LandmarkError(f"{path} is not a readable {what} ({type(e).__name__}: {e})") from None


def read_text_lines(path: str) -> List[str]:
    """A text file's lines (UTF-8, a BOM tolerated), or a LandmarkError naming the file."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LandmarkError(f"{path} cannot be read ({type(e).__name__}: {e})") from None
