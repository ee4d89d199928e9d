"""Marks each notebook that nbval collects as `slow` (each executes a chapter from the results
store), so that `pytest -m "not slow"` is the quick developer loop; `make test` runs them all.
Tests marked `gpu` run where torch sees a CUDA device and are skipped, with the reason, elsewhere
(CI has none; `benchmarks/gpu_check.py` runs them on a lent GPU)."""
import pytest


def pytest_collection_modifyitems(items):
    no_gpu = None
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("gpu") is not None:
            if no_gpu is None:
                import torch
                no_gpu = "" if torch.cuda.is_available() else (
                    f"needs a CUDA device: torch {torch.__version__} (CUDA {torch.version.cuda}) sees none here")
            if no_gpu:
                item.add_marker(pytest.mark.skip(reason=no_gpu))
