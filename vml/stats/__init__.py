"""Across-seed statistics: what the paper reports, computed the same way, plus what a careful reader needs.

Every function takes numpy arrays (or a pandas DataFrame) and returns numbers; nothing here reads
files or draws. Interval estimates come back as `Estimate(estimate, low, high, level)`. Randomised
procedures (bootstrap, resampling, simulation) take an explicit `seed` and are reproducible.
Accuracy units (fractions or percent) do not matter anywhere except in `test_set_variance`.

The functions live in five modules (`base`, `groups`, `reactivity`, `seeds`, `paired`); import them from here.
"""
from __future__ import annotations

from .base import (Estimate, Summary, Comparison, Reactivity)  # noqa: F401
from .groups import (mean_ci, sd_interval, sd_ci, fisher_ci, summary, summarize, var_reduction, bootstrap_sd_ratio, sd_ratio_interval, sd_ratio_ci, var_red_interval, mean_diff_ci, f_test, levene, brown_forsythe, bartlett_summary, welch, prob_improvement, compare, verdict, equivalence_verdict, SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)  # noqa: F401
from .reactivity import (epoch_mean, zscore, ccf, reactivity, reactivity_per_seed, implied_pairs)  # noqa: F401
from .seeds import (seed_group_draws, seed_groups, seed_effect_size, max_seed_effect, normal_seed_effect, pareto_front, f_test_power, f_test_power_simulated, seeds_for_power, pairwise_churn, churn, test_set_variance)  # noqa: F401

__all__ = [
    "Estimate", "Summary", "Comparison", "Reactivity", "summary", "summarize", "mean_ci",
    "sd_interval", "sd_ci", "fisher_ci", "sd_ratio_interval", "sd_ratio_ci", "var_red_interval",
    "mean_diff_ci", "var_reduction", "bootstrap_sd_ratio", "prob_improvement", "compare", "verdict",
    "equivalence_verdict", "f_test", "levene", "brown_forsythe", "bartlett_summary", "welch",
    "seed_group_draws", "seed_groups", "epoch_mean", "zscore", "ccf", "reactivity",
    "reactivity_per_seed", "implied_pairs", "seed_effect_size", "pareto_front", "f_test_power",
    "f_test_power_simulated", "seeds_for_power", "churn", "pairwise_churn", "test_set_variance",
    "max_seed_effect", "normal_seed_effect",
]
from .paired import (pitman_morgan, paired_bootstrap_sd_ratio, var_red_estimate, sums_differences_correlation, pitman_morgan_power, pitman_morgan_power_simulated, correlation_power, sd_trend, log_sd_ratio_se, pooled_log_sd_ratio)  # noqa: F401,E402

__all__ += ["pitman_morgan", "paired_bootstrap_sd_ratio", "correlation_power", "var_red_estimate", "sums_differences_correlation",
            "pitman_morgan_power", "pitman_morgan_power_simulated", "sd_trend", "log_sd_ratio_se",
            "pooled_log_sd_ratio"]
