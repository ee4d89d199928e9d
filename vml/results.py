"""The book's results tables, by their old name: `vml.analysis` holds them, one module per chapter
(see ARCHITECTURE.md); this module re-exports every public name so that `from vml import results`
keeps working in the notebooks."""
from __future__ import annotations

from .analysis.common import (NO_RUNS, TOO_FEW, NEEDS_DATA, MODEL_NAMES, DATASET_NAMES,
                              SOURCE_NAMES, profile_or_default, stored_runs, load, arm_values,
                              compare_arms, PAPER_COLUMNS, comparison_table, missing_runs, pool,
                              status_line, _ranges)  # noqa: F401
from .analysis.display import (PARTS, display_table, ablation_display, display_seed_groups,
                               display_remedies)  # noqa: F401
from .analysis.tables import (sources_table, architectures_table, replication_table,
                               run_cost_table)  # noqa: F401
from .analysis.seed_groups import (seed_groups_table, kde_groups)  # noqa: F401
from .analysis.reactivity import (epoch_series, reactivity_summary, reactivity_per_seed_table,
                                  iteration_ccf, reactivity_table, epoch_table,
                                  reactivity_arms_table)  # noqa: F401
from .analysis.remedies import (ensemble_accuracies, wall_times, remedies_table,
                                seed_effect_table)  # noqa: F401
from .analysis.ablations import (DEFAULT_TAGS, PREFERRED, ablation_table, BROKEN_PP,
                                 broken_settings, ablation_verdicts, vpl_table)  # noqa: F401
from .analysis.seeds import (sd_ci_table, power_table, seed_table, churn_table,
                             noise_floor_table)  # noqa: F401
from .analysis.headline import (MEAN_MARGIN_PP, combine_verdicts, step_cost, headline_table,
                                headline_summary, _architectures_row)  # noqa: F401

__all__ = [
    "NO_RUNS", "TOO_FEW", "NEEDS_DATA", "MODEL_NAMES", "DATASET_NAMES", "SOURCE_NAMES",
    "profile_or_default", "stored_runs", "load", "arm_values", "compare_arms", "PAPER_COLUMNS",
    "comparison_table", "missing_runs", "pool", "status_line", "PARTS", "display_table",
    "ablation_display", "display_seed_groups", "display_remedies", "sources_table",
    "architectures_table", "replication_table", "run_cost_table", "seed_groups_table", "kde_groups", "epoch_series",
    "reactivity_summary", "reactivity_per_seed_table", "iteration_ccf", "reactivity_table",
    "epoch_table", "reactivity_arms_table", "ensemble_accuracies", "wall_times", "remedies_table",
    "seed_effect_table", "DEFAULT_TAGS", "PREFERRED", "ablation_table", "BROKEN_PP",
    "broken_settings", "ablation_verdicts", "vpl_table", "sd_ci_table", "power_table",
    "seed_table", "churn_table", "noise_floor_table", "MEAN_MARGIN_PP", "step_cost",
    "combine_verdicts", "headline_table", "headline_summary",
]
