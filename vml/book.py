"""Small helpers shared by the book's notebooks: one setup call and the store's progress per study."""
from __future__ import annotations

import os
from typing import Any

import pandas as pd

__all__ = ["setup", "BOOK_PROFILE", "progress"]

# the results store the book reads (`data/results/<profile>/`); VML_BOOK_PROFILE overrides it
BOOK_PROFILE = os.environ.get("VML_BOOK_PROFILE", "cpu")


def setup(seed: int = 0) -> None:
    """Make a notebook deterministic and its output tidy: seeded torch with deterministic algorithms,
    figures as PNG, pandas tables without index noise. Call once, in the first cell."""
    import matplotlib
    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)
    pd.set_option("display.precision", 4)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.width", 120)
    matplotlib.rcParams["savefig.dpi"] = 110
    try:  # inside IPython: PNG figures, no 'Figure' text reprs
        from IPython import get_ipython

        ip = get_ipython()
        if ip is not None:
            from matplotlib_inline.backend_inline import set_matplotlib_formats

            set_matplotlib_formats("png")
    except ImportError:  # plain Python: nothing to configure
        pass


def progress(study: str, profile: str | None = None, root: Any = None) -> pd.DataFrame:
    """How many runs of `study` the store holds for `profile`, per loss arm (cheap: file checks only)."""
    from . import store
    from .studies import get_study

    profile = profile or BOOK_PROFILE
    rows: dict[str, dict[str, int]] = {}
    for item in get_study(study).grid(profile):
        r = rows.setdefault(item.spec.loss, {"runs": 0, "stored": 0})
        r["runs"] += 1
        r["stored"] += int(store.exists(item.spec, root))
    df = pd.DataFrame([{"study": study, "profile": profile, "loss": k, **v} for k, v in rows.items()])
    return df
