"""Atomic file writes: readers see the old file or the whole new one, never a part (the bottom layer;
imports nothing from vml)."""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import IO, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], object]) -> None:
    """Call `write(f)` on a binary file next to `path`, fsync it and rename it onto `path`.

    The temporary file is hidden (``.<name>.tmp-<random>.tmp``) and removed if `write` or the rename
    fails; a process killed meanwhile leaves it behind and `path` untouched. The file's permissions
    follow the umask, as `open` would make them (0644 under umask 022), so that a group sharing the store
    reads it (`tempfile.mkstemp` makes 0600 files)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_hidden(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _create_hidden(path: Path) -> tuple[int, str]:
    """A new file ``.<name>.tmp-<random>.tmp`` beside `path`, created exclusively with mode 0666 less the umask."""
    while True:
        tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(4)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), str(tmp)
        except FileExistsError:
            continue


def remove_leftovers(path: str | os.PathLike) -> int:
    """Remove the temporary files that killed writers of `path` left behind (``.<name>.tmp-*.tmp``); returns
    how many. Only for a file that one process at a time writes (a run's record or checkpoint, under its
    claim): a live writer's temporary file of the same name would go too."""
    path = Path(path)
    gone = 0
    for tmp in path.parent.glob(f".{path.name}.tmp-*.tmp"):
        tmp.unlink(missing_ok=True)
        gone += 1
    return gone


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """`atomic_write` of `text` in UTF-8."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))
