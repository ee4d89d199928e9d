"""Known-answer tests for vml.stats: simulated data whose true answer is known, and hand-made cases.

`stats.test_set_variance` is always called through the module: imported bare, its name would make
pytest collect it as a test.
"""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from vml import stats


def rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- intervals

@pytest.mark.parametrize("n, level", [(5, 0.95), (10, 0.95), (20, 0.90)])
def test_sd_and_mean_ci_have_nominal_coverage(n, level):
    # 3000 normal samples with known SD 2 and mean 5: SE of the coverage ~0.4-0.55 points
    g, sigma, mu, reps = rng(n), 2.0, 5.0, 3000
    samples = g.normal(mu, sigma, (reps, n))
    sd_hits = mean_hits = 0
    for x in samples:
        lo, hi = stats.sd_ci(x, level)
        sd_hits += lo <= sigma <= hi
        lo, hi = stats.mean_ci(x, level)
        mean_hits += lo <= mu <= hi
    assert abs(sd_hits / reps - level) < 0.02
    assert abs(mean_hits / reps - level) < 0.02


def test_sd_ci_matches_the_chi_square_formula_by_hand():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    s2 = np.var(x, ddof=1)  # 7.0
    lo, hi = stats.sd_ci(x, 0.95)
    assert lo == pytest.approx(math.sqrt(3 * s2 / 9.348403604496148))   # chi2(3).ppf(0.975)
    assert hi == pytest.approx(math.sqrt(3 * s2 / 0.21579528455140652))  # chi2(3).ppf(0.025)
    assert lo < math.sqrt(s2) < hi


def test_sd_ratio_f_interval_has_nominal_coverage():
    g, reps, ratio = rng(7), 2000, 0.6
    hits = 0
    for _ in range(reps):
        base, vml = g.normal(0, 1, 8), g.normal(3, ratio, 8)
        e = stats.sd_ratio_ci(base, vml)
        hits += e.low <= ratio <= e.high
    assert abs(hits / reps - 0.95) < 0.02


def test_summary_and_summarize_agree_and_tolerate_single_runs():
    df = pd.DataFrame({"loss": ["base"] * 4 + ["vml"] * 3 + ["solo"],
                       "vary": ["all"] * 8,
                       "test_acc": [0.90, 0.92, 0.91, 0.95, 0.93, 0.93, 0.94, 0.5]})
    t = stats.summarize(df, by=["loss", "vary"])
    assert list(t.columns) == ["n", "mean", "sd", "sd_low", "sd_high", "mean_low", "mean_high"]
    s = stats.summary([0.90, 0.92, 0.91, 0.95])
    row = t.loc[("base", "all")]
    assert row["n"] == 4 and row["sd"] == pytest.approx(np.std([0.90, 0.92, 0.91, 0.95], ddof=1))
    assert (row["sd_low"], row["sd_high"]) == pytest.approx((s.sd_low, s.sd_high))
    assert (row["mean_low"], row["mean_high"]) == pytest.approx((s.mean_low, s.mean_high))
    solo = t.loc[("solo", "all")]
    assert solo["n"] == 1 and solo["mean"] == 0.5 and np.isnan(solo["sd"])


# ----------------------------------------------------------------------------- bootstrap, tests, verdict

def test_bootstrap_intervals_are_reproducible_for_a_fixed_seed():
    g = rng(1)
    base, vml = g.normal(95, 0.17, 10), g.normal(95, 0.11, 10)
    a = stats.bootstrap_sd_ratio(base, vml, n_boot=2000, seed=3)
    b = stats.bootstrap_sd_ratio(base, vml, n_boot=2000, seed=3)
    c = stats.bootstrap_sd_ratio(base, vml, n_boot=2000, seed=4)
    assert a == b and a != c
    p1 = stats.prob_improvement(base, vml, n_boot=1000, seed=5)
    assert p1 == stats.prob_improvement(base, vml, n_boot=1000, seed=5)
    assert stats.compare(base, vml, n_boot=1000, seed=2) == stats.compare(base, vml, n_boot=1000, seed=2)


def test_bootstrap_ratio_and_var_red_are_consistent_and_find_a_large_effect():
    g = rng(2)
    base, vml = g.normal(0, 1.0, 200), g.normal(0, 0.5, 200)
    ratio, red = stats.bootstrap_sd_ratio(base, vml, n_boot=2000, seed=0)
    assert ratio.low < 0.5 < ratio.high and ratio.high < 0.65
    assert ratio.estimate == pytest.approx(vml.std(ddof=1) / base.std(ddof=1))
    # Var. Red. is a decreasing map of the ratio: its ends are the ratio's ends swapped
    assert red.estimate == pytest.approx(100 * (1 - ratio.estimate))
    assert (red.low, red.high) == pytest.approx((100 * (1 - ratio.high), 100 * (1 - ratio.low)))
    assert stats.var_reduction(0.168, 0.112) == pytest.approx(33.33, abs=0.01)  # Table 1, "All"


def test_bootstrap_with_tiny_arms_gives_an_unbounded_end_not_nan():
    # with 3 base runs, 1 resample in 9 is constant (SD 0): the ratio's upper end is infinite
    ratio, red = stats.bootstrap_sd_ratio([1.0, 2.0, 4.0], [1.0, 1.5, 2.5], n_boot=4000, seed=0)
    assert ratio.high == math.inf and red.low == -math.inf
    assert 0 <= ratio.low < ratio.estimate and red.high <= 100


def test_compare_reports_the_scipy_tests_and_an_exact_f_test():
    g = rng(3)
    base, vml = g.normal(0, 1.0, 12), g.normal(0.2, 0.4, 15)
    c = stats.compare(base, vml, n_boot=500, seed=0)
    assert c.levene_p == pytest.approx(st.levene(base, vml, center="mean").pvalue)
    assert c.brown_forsythe_p == pytest.approx(st.levene(base, vml, center="median").pvalue)
    assert c.welch_p == pytest.approx(st.ttest_ind(base, vml, equal_var=False).pvalue)
    f = np.var(vml, ddof=1) / np.var(base, ddof=1)
    assert c.f_p == pytest.approx(2 * st.f.cdf(f, 14, 11))  # f < 1 here: the lower tail, doubled
    row = c.as_dict()
    assert row["base_n"] == 12 and row["vml_n"] == 15 and "var_red_low" in row and "f_p" in row


def test_f_test_p_values_are_uniform_under_equal_variances():
    g = rng(4)
    p = np.array([stats.f_test(g.normal(0, 1, 6), g.normal(0, 1, 6))[1] for _ in range(2000)])
    assert abs((p < 0.05).mean() - 0.05) < 0.015
    assert stats.f_test([1.0, 2.0, 3.0], [5.0, 6.0, 7.0]) == (1.0, 1.0)


def test_prob_improvement_follows_rliable_definition():
    assert stats.prob_improvement([1, 2, 3], [4, 5, 6], n_boot=200).estimate == 1.0
    assert stats.prob_improvement([1, 1], [1, 1], n_boot=200).estimate == 0.5  # ties count 1/2
    # [1,2,3] is VML vs base [2,2,0]: wins 1 + (.5+.5+1) + 3 = 6 of 9 pairs
    assert stats.prob_improvement([2, 2, 0], [1, 2, 3], n_boot=200).estimate == pytest.approx(6 / 9)
    g = rng(5)
    base, vml = g.normal(0, 1, 9), g.normal(0.5, 1, 11)
    e = stats.prob_improvement(base, vml, n_boot=2000, seed=1)
    u = st.mannwhitneyu(vml, base).statistic
    assert e.estimate == pytest.approx(u / (9 * 11))
    assert e.low < e.estimate < e.high


@pytest.mark.parametrize("low, high, claimed, expected", [
    (5.0, 60.0, 33.0, "supported"),
    (5.0, 60.0, None, "supported"),
    (-10.0, 50.0, 33.0, "inconclusive at this n"),
    (-10.0, 20.0, 33.0, "not supported"),      # rules out the claimed 33%
    (5.0, 20.0, 33.0, "not supported"),       # some reduction, but not as large as claimed
    (-30.0, -5.0, None, "not supported"),      # VML widens the spread
    (-30.0, 0.0, None, "not supported"),
    (-10.0, 50.0, None, "inconclusive at this n"),
])
def test_verdict_rules(low, high, claimed, expected):
    assert stats.verdict(low, high, claimed) == expected


@pytest.mark.parametrize("low, high, expected", [
    (-0.3, 0.2, "supported"),                 # inside ±0.5: any change is smaller than the margin
    (-0.5, 0.5, "supported"),                 # the margin itself counts as inside
    (-0.7, 0.2, "inconclusive at this n"),    # contains 0 and changes beyond the margin
    (0.1, 0.3, "not supported"),              # a change, however small, is established
    (-0.9, -0.6, "not supported"),
])
def test_equivalence_verdict_rules(low, high, expected):
    assert stats.equivalence_verdict(low, high, 0.5) == expected


def test_equivalence_verdict_rejects_bad_input():
    with pytest.raises(ValueError, match="margin=0"):
        stats.equivalence_verdict(-1.0, 1.0, 0)
    with pytest.raises(ValueError, match="not an interval"):
        stats.equivalence_verdict(1.0, -1.0, 0.5)


# ----------------------------------------------------------------------------- seed groups (Table 3)

def test_seed_groups_draw_without_replacement_and_use_the_full_pool_at_its_size():
    pool = rng(6).normal(94.9, 0.15, 20)
    # a group of 19 without replacement is the pool minus one run: only 20 possible means
    means, sds = stats.seed_group_draws(pool, 19, n_draws=500, seed=0)
    possible = (pool.sum() - pool) / 19
    assert np.all(np.min(np.abs(means[:, None] - possible[None, :]), axis=1) < 1e-9)
    t = stats.seed_groups(pool, sizes=(5, 10, 15, 20), n_draws=4000, seed=0)
    assert list(t["size"]) == [5, 10, 15, 20] and list(t["n_draws"]) == [4000, 4000, 4000, 1]
    full = t.iloc[-1]
    assert full["sd"] == pytest.approx(pool.std(ddof=1)) and full["mean"] == pytest.approx(pool.mean())
    # over all subsets, the mean of the subsample variances is the pool variance (a U-statistic)
    for k in (5, 10):
        _, sds = stats.seed_group_draws(pool, k, n_draws=4000, seed=1)
        assert np.mean(sds**2) == pytest.approx(pool.var(ddof=1), rel=0.04)
    # smaller groups scatter more
    assert (t["sd_q_high"] - t["sd_q_low"]).is_monotonic_decreasing
    assert stats.seed_groups(pool, n_draws=200, seed=9).equals(stats.seed_groups(pool, n_draws=200, seed=9))


def test_seed_effect_size_by_hand():
    assert stats.seed_effect_size(np.arange(1, 21), k=10) == 10.0
    assert stats.seed_effect_size([3, 1, 2, 10], k=1) == 9.0
    assert stats.seed_effect_size(np.arange(1, 21)) == 10.0  # default k = n // 2
    with pytest.raises(ValueError, match="k=11"):
        stats.seed_effect_size(np.arange(20), k=11)


# ----------------------------------------------------------------------------- reactivity (Fig. 1)

def planted(lag, n=300, sign=1.0, seed=0):
    """x white noise; y_{k+lag} = sign * x_k + noise (lag < 0: y leads x)."""
    g = rng(seed)
    x = g.standard_normal(n + 20)
    y = sign * np.roll(x, lag) + 0.6 * g.standard_normal(n + 20)
    return x[10:-10], y[10:-10]


@pytest.mark.parametrize("lag, sign", [(2, 1.0), (-2, 1.0), (2, -1.0), (-2, -1.0)])
def test_ccf_finds_a_planted_lag_with_the_papers_sign_convention(lag, sign):
    x, y = planted(lag, sign=sign, seed=lag + 10)
    lags, r = stats.ccf(x, y, max_lag=10)
    assert list(lags) == list(range(-10, 11))
    peak = lags[np.argmax(np.abs(r))]
    assert peak == lag and np.sign(r[lags == lag][0]) == sign and abs(r[lags == lag][0]) > 0.7
    others = np.abs(r[lags != lag])
    assert others.max() < 0.25


def test_ccf_is_pearson_over_the_overlap_and_nan_where_too_short():
    g = rng(11)
    x, y = g.standard_normal(12), g.standard_normal(12)
    lags, r = stats.ccf(x, y, max_lag=10)
    assert r[lags == 3][0] == pytest.approx(st.pearsonr(x[:-3], y[3:]).statistic)
    assert r[lags == -4][0] == pytest.approx(st.pearsonr(x[4:], y[:-4]).statistic)
    assert r[lags == 0][0] == pytest.approx(st.pearsonr(x, y).statistic)
    assert np.isnan(r[lags == 10][0]) and np.isnan(r[lags == -10][0])  # 2 pairs left
    assert np.isfinite(r[lags == 9][0])  # 3 pairs
    with pytest.raises(ValueError, match="same length"):
        stats.ccf(x, y[:-1])


def controller_runs(n_seeds=5, epochs=120, seed=0):
    """Epoch-level lambda and test loss whose changes are coupled at lead 1 (dlambda_k -> dloss_{k+1})."""
    g = rng(seed)
    common = g.standard_normal(epochs)  # shared across seeds, so it survives seed-averaging
    d_lam = common + 0.5 * g.standard_normal((n_seeds, epochs))
    d_loss = 0.8 * np.roll(common, 1) + 0.8 * g.standard_normal((n_seeds, epochs))
    lam = 0.1 + 0.01 * np.cumsum(d_lam, axis=1)
    loss = 1.0 + 0.02 * np.cumsum(d_loss, axis=1)
    return lam, loss


def test_reactivity_recovers_a_lead_one_coupling_and_its_slope_is_pearson_r():
    lam, loss = controller_runs()
    res = stats.reactivity(lam, loss, max_lag=10)
    assert res.tau_star == 1 and res.r_star > 0.5
    assert res.n == lam.shape[1] - 2 and res.x.shape == res.y.shape == (res.n,)
    d_lam, d_loss = np.diff(lam.mean(0)), np.diff(loss.mean(0))
    pr = st.pearsonr(d_lam[:-1], d_loss[1:])
    assert res.slope == pytest.approx(pr.statistic) and res.p == pytest.approx(pr.pvalue, rel=1e-6)
    assert res.slope == pytest.approx(res.r[res.lags == 1][0])
    assert abs(res.intercept) < 1e-12 and res.p < 1e-10
    assert np.mean(res.x) == pytest.approx(0, abs=1e-12) and np.std(res.x, ddof=1) == pytest.approx(1)
    # the seed-averaged result is the 1-D result on the averaged series
    one = stats.reactivity(lam.mean(0), loss.mean(0))
    assert one.tau_star == res.tau_star and one.slope == pytest.approx(res.slope)
    per_seed = stats.reactivity_per_seed(lam, loss)
    assert len(per_seed) == 5 and all(p.tau_star == 1 for p in per_seed)
    assert set(per_seed[0].summary()) == {"tau_star", "r_star", "slope", "p", "n", "lead"}


def test_reactivity_rejects_bad_series():
    lam, loss = controller_runs(epochs=30)
    with pytest.raises(ValueError, match="same shape"):
        stats.reactivity(lam, loss[:, :-1])
    with pytest.raises(ValueError, match="NaN"):
        stats.reactivity(np.full_like(lam, np.nan), loss)
    with pytest.raises(ValueError, match="epochs"):
        stats.reactivity(lam[:, :4], loss[:, :4])


def test_epoch_mean_by_hand():
    values = np.array([1.0, 3.0, 2.0, 2.0, 2.0, 10.0])
    epoch = np.array([0, 0, 1, 1, 1, 2])
    assert np.allclose(stats.epoch_mean(values, epoch), [2.0, 2.0, 10.0])
    two = stats.epoch_mean(np.vstack([values, 2 * values]), epoch)
    assert two.shape == (2, 3) and np.allclose(two[1], [4.0, 4.0, 20.0])


# ----------------------------------------------------------------------------- Pareto

def test_pareto_front_on_hand_made_sets():
    # (sd, mean): A best on both, B dominated by A, C lower SD than A but lower mean (front)
    sd = [0.10, 0.12, 0.05, 0.20, 0.10]
    mean = [0.95, 0.94, 0.90, 0.96, 0.95]  # D: highest mean (front); E duplicates A (both stay)
    assert stats.pareto_front(sd, mean).tolist() == [True, False, True, True, True]
    assert stats.pareto_front([1.0], [0.5]).tolist() == [True]
    # equal SD, higher mean dominates; equal mean, lower SD dominates
    assert stats.pareto_front([1, 1, 0.5], [2, 3, 1]).tolist() == [False, True, True]
    assert stats.pareto_front([1, 2], [5, 5]).tolist() == [True, False]
    # a chain where each point trades SD for mean: all on the front
    assert stats.pareto_front([1, 2, 3, 4], [1, 2, 3, 4]).all()
    with pytest.raises(ValueError, match="same length"):
        stats.pareto_front([1, 2], [1])


# ----------------------------------------------------------------------------- power

@pytest.mark.parametrize("n, ratio", [(5, 0.67), (20, 0.67), (10, 0.5), (15, 1.5), (8, 1.0)])
def test_f_test_power_agrees_with_simulation(n, ratio):
    analytic = stats.f_test_power(n, ratio)
    simulated = stats.f_test_power_simulated(n, ratio, n_sim=20_000, seed=n)
    assert abs(analytic - simulated) < 0.02


def test_power_known_values_and_seeds_needed_for_the_papers_33_percent():
    assert stats.f_test_power(10, 1.0) == pytest.approx(0.05)  # no effect: power is alpha
    assert stats.f_test_power(12, 0.5) == pytest.approx(stats.f_test_power(12, 2.0))
    n = stats.seeds_for_power(ratio=0.67, power=0.8)
    assert stats.f_test_power(n, 0.67) >= 0.8 > stats.f_test_power(n - 1, 0.67)
    assert n == 51
    assert stats.f_test_power(5, 0.67) < 0.12  # the paper's 5 seeds detect a 33% reduction ~1 time in 10
    with pytest.raises(ValueError, match="ratio=1"):
        stats.seeds_for_power(ratio=1.0)


# ----------------------------------------------------------------------------- predictions

def test_churn_by_hand():
    preds = np.array([[0, 1, 2, 3],
                      [0, 1, 2, 0],   # differs from run 0 on 1/4
                      [1, 1, 0, 3]])  # differs from run 0 on 2/4, from run 1 on 3/4
    m = stats.pairwise_churn(preds)
    assert m[0, 1] == 0.25 and m[0, 2] == 0.5 and m[1, 2] == 0.75 and np.allclose(m, m.T)
    assert stats.churn(preds) == pytest.approx(0.5)
    assert stats.churn(np.zeros((4, 10), int)) == 0.0


def simulate_correct(p, runs, g, shift_sd=0.0):
    """Runs x examples correctness; run r gets example i right with prob p_i + u_r (u_r ~ U(+-a))."""
    a = shift_sd * math.sqrt(3)  # uniform on [-a, a] has SD a / sqrt(3)
    u = g.uniform(-a, a, (runs, 1)) if shift_sd else np.zeros((runs, 1))
    return g.random((runs, p.size)) < (p[None, :] + u)


def test_jordan_estimator_is_zero_for_independent_errors():
    g = rng(20)
    p = g.uniform(0.2, 0.98, 2000)  # per-example accuracy, known
    true_floor = math.sqrt(np.sum(p * (1 - p))) / p.size
    reps = [stats.test_set_variance(simulate_correct(p, 20, g)) for _ in range(300)]
    dvar = np.array([r["distribution_var"] for r in reps])
    covered = np.mean([r["distribution_var_low"] <= 0 <= r["distribution_var_high"] for r in reps])
    # unbiased for 0: the mean over 300 reps within 3 SE of 0, and the interval covers 0 ~95%
    assert abs(dvar.mean()) < 3 * dvar.std(ddof=1) / math.sqrt(dvar.size)
    assert abs(covered - 0.95) < 0.04
    assert np.mean([r["independent_sd"] for r in reps]) == pytest.approx(true_floor, rel=0.01)
    assert np.mean([r["observed_sd"] ** 2 for r in reps]) == pytest.approx(true_floor**2, rel=0.05)


def test_jordan_estimator_recovers_planted_run_level_shifts():
    g = rng(21)
    p = g.uniform(0.3, 0.9, 2000)
    shift_sd = 0.01  # the test-set floor here is ~0.0095: a real effect of the same size
    reps = [stats.test_set_variance(simulate_correct(p, 20, g, shift_sd)) for _ in range(300)]
    dvar = np.array([r["distribution_var"] for r in reps])
    covered = np.mean([r["distribution_var_low"] <= shift_sd**2 <= r["distribution_var_high"]
                       for r in reps])
    assert dvar.mean() == pytest.approx(shift_sd**2, rel=0.1)
    assert abs(covered - 0.95) < 0.04
    # the independent-error floor does not see the shift; the observed SD does
    r = stats.test_set_variance(simulate_correct(p, 200, g, shift_sd))
    assert r["distribution_sd"] == pytest.approx(shift_sd, rel=0.2)
    assert r["observed_sd"] > r["independent_sd"]


def test_test_set_variance_by_hand_and_its_clamp():
    correct = np.array([[1, 1, 0, 0],
                        [1, 0, 1, 0],
                        [1, 0, 0, 1]], dtype=bool)  # accuracies all 0.5: observed SD 0
    r = stats.test_set_variance(correct)
    col_var = np.var(correct.astype(float), axis=0, ddof=1).sum()  # 0 + 3 * 1/3 = 1
    assert r["observed_sd"] == 0.0 and r["independent_sd"] == pytest.approx(math.sqrt(col_var) / 4)
    assert r["distribution_var"] == pytest.approx(4 / 3 * (0 - col_var / 16))
    assert r["distribution_var"] < 0 and r["distribution_sd"] == 0.0
    assert r["n_runs"] == 3 and r["n_examples"] == 4 and r["mean_acc"] == 0.5


# ----------------------------------------------------------------------------- validation

@pytest.mark.parametrize("call, match", [
    (lambda: stats.sd_ci([1.0]), "at least 2"),
    (lambda: stats.sd_ci([1.0, 2.0], level=1.5), "level=1.5"),
    (lambda: stats.mean_ci([1.0, np.nan]), "NaN"),
    (lambda: stats.summary(np.ones((2, 2))), "1-D"),
    (lambda: stats.f_test_power(1, 0.67), "n=1"),
    (lambda: stats.f_test_power(5, 0.0), "ratio=0.0"),
    (lambda: stats.f_test_power(5, 0.67, alpha=1.0), "alpha=1.0"),
    (lambda: stats.bootstrap_sd_ratio([1, 2, 3], [1, 2, 3], seed=-1), "seed=-1"),
    (lambda: stats.seed_group_draws(np.arange(5.0), 6), "larger than the pool"),
    (lambda: stats.churn(np.zeros(5)), "runs, examples"),
    (lambda: stats.test_set_variance(np.zeros((1, 5), bool)), "at least 2 runs"),
    (lambda: stats.test_set_variance(np.full((3, 5), 0.5)), "boolean"),
    (lambda: stats.verdict(10.0, -10.0), "low <= high"),
    (lambda: stats.verdict(-10.0, 10.0, claimed=-5.0), "claimed=-5.0"),
    (lambda: stats.summarize(pd.DataFrame({"a": [1]}), by="loss"), "not in the DataFrame"),
])
def test_bad_input_raises_value_error_naming_the_problem(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bartlett_from_summaries_matches_scipy_on_the_raw_values():
    rng = np.random.default_rng(5)
    groups = [rng.normal(82, s, size=n) for s, n in ((0.2, 5), (0.5, 7), (0.3, 4))]
    stat, p = stats.bartlett_summary([g.size for g in groups], [g.std(ddof=1) for g in groups])
    ref = st.bartlett(*groups)
    assert stat == pytest.approx(ref.statistic, rel=1e-12) and p == pytest.approx(ref.pvalue, rel=1e-12)
    with pytest.raises(ValueError, match=r"need 2\+ groups of 2\+ runs each.*n=\[5.0, 1.0\]"):
        stats.bartlett_summary([5, 1], [0.2, 0.3])


def test_max_seed_effect_is_reached_by_two_point_values_and_never_exceeded():
    two_point = np.r_[np.zeros(10), np.ones(10)]
    assert stats.max_seed_effect(two_point.std(ddof=1), 20) == pytest.approx(stats.seed_effect_size(two_point))
    rng = np.random.default_rng(3)
    for _ in range(200):
        x = rng.standard_t(2, 20)
        assert stats.seed_effect_size(x) <= stats.max_seed_effect(x.std(ddof=1), 20) + 1e-12
    with pytest.raises(ValueError, match="n=5 is not allowed; the top and bottom halves need an even n"):
        stats.max_seed_effect(1.0, 5)


def test_fisher_welch_and_summary_intervals_by_hand():
    # Fisher z: atanh(0.5) = 0.5493, ± 1.96/sqrt(25) = 0.392 -> tanh(0.1573), tanh(0.9413)
    assert stats.fisher_ci(0.5, 28) == pytest.approx((0.1560, 0.7358), abs=1e-4)
    assert all(np.isnan(stats.fisher_ci(0.5, 3))) and all(np.isnan(stats.fisher_ci(1.0, 30)))
    # Welch: means 2 and 5, variances 1 and 1 (n = 3 each): se = sqrt(2/3), df = 4, t_0.975(4) = 2.7764
    d = stats.mean_diff_ci([1.0, 2.0, 3.0], [4.0, 5.0, 6.0])
    assert d.estimate == 3.0 and (d.low, d.high) == pytest.approx((3 - 2.7764 * 0.8165, 3 + 2.7764 * 0.8165), abs=1e-3)
    assert stats.mean_diff_ci([1.0, 1.0], [2.0, 2.0]) == stats.Estimate(1.0, 1.0, 1.0, 0.95)
    # Var. Red. from summaries: equal SDs with (4, 4) df give 100·(1 − sqrt(F quantiles)); F_0.975(4, 4) = 9.6045
    lo, hi = stats.var_red_interval(1.0, 5, 1.0, 5)
    assert (lo, hi) == pytest.approx((100 * (1 - math.sqrt(9.6045)), 100 * (1 - 1 / math.sqrt(9.6045))), abs=1e-3)
    assert all(np.isnan(stats.var_red_interval(1.0, 1, 1.0, 5)))


def test_normal_seed_effect_matches_closed_forms_and_simulation():
    # n = 2: the gap is |X1 - X2|, whose mean for two standard normals is 2/sqrt(pi)
    assert stats.normal_seed_effect(2) == pytest.approx(2 / math.sqrt(math.pi), rel=1e-9)
    # n = 4: E[X_(4)] = 1.02937537, E[X_(3)] = 0.29701138 (Harter's table of normal order statistics)
    assert stats.normal_seed_effect(4) == pytest.approx(1.02937537 + 0.29701138, abs=1e-7)
    x = np.sort(np.random.default_rng(0).standard_normal((100_000, 20)), axis=1)
    gap = (x[:, 10:].mean(axis=1) - x[:, :10].mean(axis=1)).mean()
    assert stats.normal_seed_effect(20) == pytest.approx(gap, abs=0.005)
    with pytest.raises(ValueError, match="n=5 is not allowed"):
        stats.normal_seed_effect(5)


@pytest.mark.parametrize("n, r", [(12, 0.6), (50, 0.3), (197, -0.435)])
def test_implied_pairs_recovers_n_from_pearsons_p_on_data_with_that_correlation(n, r):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n)
    z = rng.standard_normal(n)
    x, z = x - x.mean(), z - z.mean()
    z -= x * (x @ z) / (x @ x)  # centred and orthogonal to x: y's sample correlation with x is r exactly
    y = r * x / np.linalg.norm(x) + np.sqrt(1 - r * r) * z / np.linalg.norm(z)
    got = st.pearsonr(x, y)
    assert got.statistic == pytest.approx(r, abs=1e-12)
    assert stats.implied_pairs(r, got.pvalue) == n


def test_implied_pairs_refuses_impossible_inputs_in_one_line():
    for r, p, what in ((0.0, 0.01, "r must lie"), (1.0, 0.01, "r must lie"), (0.4, 0.0, "p must lie"),
                       (0.01, 1e-30, "no n up to")):
        with pytest.raises(ValueError, match=what):
            stats.implied_pairs(r, p, max_n=1000)
