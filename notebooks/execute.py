"""Execute chapter notebooks in place, storing the outputs that nbval compares against.

    .venv/bin/python notebooks/execute.py notebooks/05-sources.ipynb [more.ipynb ...]

Runs each notebook top to bottom on a fresh kernel of this Python (as the book build does) and
writes it back without per-cell timestamps, so that a re-execution changes only real outputs.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path) -> float:
    """Execute `path` in place; returns the wall time in seconds."""
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    return time.perf_counter() - start


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    for arg in sys.argv[1:]:
        print(f"{arg}: {execute(Path(arg)):.1f} s")
