"""Atomic file writes: readers see the old file or the whole new one, never a part (the bottom layer;
imports nothing from vml)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> None:
    """Call `write(f)` on a binary file next to `path`, fsync it and rename it onto `path`.

    The temporary file is hidden (``.<name>.tmp-<random>.tmp``) and removed if `write` or the rename
    fails; a process killed meanwhile leaves it behind and `path` untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """`atomic_write` of `text` in UTF-8."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
