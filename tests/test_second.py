"""The second test: its declared doses, its grid, and the paired statistics it reads."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
import torch

from vml import stats, store, studies
from vml.analysis import second
from vml.loss import StableLossController, VMLConfig


def _factors(losses: np.ndarray, config: VMLConfig) -> np.ndarray:
    """dL/dℓ_t by autograd for each step of a loss sequence fed to a fresh controller."""
    c = StableLossController(config).train()
    out = []
    for value in losses:
        t = torch.tensor(float(value), dtype=torch.float64, requires_grad=True)
        c(t).backward()
        out.append(float(t.grad))
    return np.array(out)


def test_a_dose_scales_the_gradient_factor_excursion_exactly_even_where_table5_clips_lambda():
    # a loss sequence whose volatility jumps 8x after the latch: at Table 5, λ_base·gain exceeds λ_max
    # there, so scaling λ_base alone would not scale the excursion by k
    rng = np.random.default_rng(0)
    losses = 2.0 - np.linspace(0, 1, 300) + np.r_[0.02 * rng.standard_normal(150), 0.6 * rng.standard_normal(150)]
    t5 = _factors(losses, VMLConfig(warmup_steps=50))
    for k in (5, 15):
        dosed = _factors(losses, VMLConfig(warmup_steps=50, **studies.dose_config(k)))
        np.testing.assert_allclose(dosed - 1, k * (t5 - 1), rtol=1e-9, atol=1e-12)


def test_dose_config_multiplies_lambda_base_and_lambda_max():
    c = VMLConfig()
    assert studies.dose_config(15) == {"lambda_base": pytest.approx(15 * c.lambda_base),
                                       "lambda_max": pytest.approx(15 * c.lambda_max)}


def test_the_committed_doses_are_what_the_declared_rule_gives_on_the_stored_table5_runs():
    choice = second.dose_choice("cpu")
    assert choice["runs"] == studies.POWERED_N_SHORT
    assert choice["doses"] == studies.SECOND_DOSES
    # the rule's targets: the whole multiple nearest to target / m
    for target, exact, k in zip(second.TARGET_EXCURSION, choice["exact"], choice["doses"]):
        assert exact == pytest.approx(target / choice["excursion"]) and abs(exact - k) <= 0.5


def test_the_grid_reuses_the_stored_controls_and_adds_new_runs_only():
    grid = studies.get_study("second-test").grid("cpu")
    short = {i.spec.key() for i in studies.get_study("powered").grid("cpu") if i.tags["arm"] == "short"}
    controls = [i for i in grid if i.tags["arm"] == "dose" and i.tags["dose"] in (0, 1)]
    assert len(controls) == 2 * studies.SECOND_N_DOSE
    assert {i.spec.key() for i in controls} <= short
    assert all(store.exists(i.spec) for i in controls)  # no new Base run
    doses = [i for i in grid if i.tags["arm"] == "dose" and i.tags["dose"] not in (0, 1)]
    assert sorted({i.tags["dose"] for i in doses}) == list(studies.SECOND_DOSES)
    assert all(i.spec.vml.lambda_base == pytest.approx(0.1 * i.tags["dose"]) for i in doses)
    assert [i.spec.seed for i in doses[:4]] == [1, 1, 2, 2]  # seed outer, dose inner
    tta = [i for i in grid if i.tags["arm"] == "tta"]
    long_seeds = {i.spec.seed for i in studies.get_study("powered").grid("cpu") if i.tags["arm"] == "long"}
    assert {i.spec.seed for i in tta}.isdisjoint(long_seeds)  # new seeds only
    assert {i.spec.epochs for i in tta} == {studies.POWERED_EPOCHS_LONG_CHOSEN["cpu"]}
    assert {i.spec.vml for i in tta} == {VMLConfig()}
    assert len({i.spec.key() for i in grid}) == len(grid)
    assert grid.index(tta[0]) > grid.index(doses[-1])  # the dose arms first


# ----------------------------------------------------------------------------- paired statistics

def _pairs(n=40, ratio=0.7, rho=0.5, seed=3):
    rng = np.random.default_rng(seed)
    z1, z2 = rng.standard_normal((2, n))
    return z1, ratio * (rho * z1 + math.sqrt(1 - rho * rho) * z2)


def test_pitman_morgan_p_is_the_correlation_test_of_sums_and_differences():
    b, v = _pairs()
    _, p = stats.pitman_morgan(b, v)
    assert p == pytest.approx(st.pearsonr(v + b, v - b).pvalue, rel=1e-9)


def test_pitman_morgan_interval_ends_are_where_the_test_of_that_ratio_has_p_equal_one_minus_level():
    b, v = _pairs()
    est, _ = stats.pitman_morgan(b, v, level=0.9)
    assert est.estimate == pytest.approx(v.std(ddof=1) / b.std(ddof=1))
    for phi in (est.low, est.high):  # H0: SD_v = phi·SD_b  <=>  corr(v + phi·b, v − phi·b) = 0
        assert st.pearsonr(v + phi * b, v - phi * b).pvalue == pytest.approx(0.1, abs=1e-9)


def test_pairing_narrows_the_interval_when_pairs_are_correlated():
    b, v = _pairs(rho=0.9)
    paired, _ = stats.pitman_morgan(b, v)
    unpaired = stats.sd_ratio_ci(b, v)
    assert paired.high - paired.low < 0.6 * (unpaired.high - unpaired.low)


def test_paired_bootstrap_keeps_pairs_together():
    b = np.random.default_rng(0).standard_normal(30)
    est = stats.paired_bootstrap_sd_ratio(b, 0.5 * b + 3.0, n_boot=500)
    assert (est.estimate, est.low, est.high) == pytest.approx((0.5, 0.5, 0.5))
    wide, _ = stats.bootstrap_sd_ratio(b, 0.5 * b + 3.0, n_boot=500)  # arms resampled on their own
    assert wide.high - wide.low > 0.2


def test_pitman_morgan_power_matches_simulation():
    for n, ratio, rho in ((50, 0.667, 0.48), (30, 0.8, 0.0), (50, 0.664, 0.14)):
        assert stats.pitman_morgan_power(n, ratio, rho) == pytest.approx(
            stats.pitman_morgan_power_simulated(n, ratio, rho, n_sim=20_000), abs=0.02)


def test_pitman_morgan_refuses_unpaired_input_with_one_line():
    with pytest.raises(ValueError, match="base has 5 values and vml 4"):
        stats.pitman_morgan(np.arange(5.0), np.arange(4.0))
    with pytest.raises(ValueError, match="rho=1.0 is not allowed"):
        stats.pitman_morgan_power(10, 0.5, 1.0)


def test_sd_trend_recovers_an_exact_dose_response_and_its_interval_collapses():
    b = np.random.default_rng(1).standard_normal(25)
    doses = [0, 1, 5, 15]
    scale = np.exp(-0.02 * np.array(doses))
    est, p = stats.sd_trend([c * b for c in scale], doses, n_boot=300)
    assert est.estimate == pytest.approx(-0.02) and est.low == pytest.approx(-0.02) and est.high == pytest.approx(-0.02)
    assert p == 0.0
    with pytest.raises(ValueError, match="one value per seed"):
        stats.sd_trend([b, b[:-1], b], [0, 1, 2])


def test_pooled_log_sd_ratio_dersimonian_laird_by_hand():
    out = stats.pooled_log_sd_ratio([0.0, 0.9], [0.1, 0.1])
    # w = 100 each: fixed 0.45; Q = 2·100·0.45² = 40.5; τ² = (40.5 − 1)/(200 − 100) = 0.395
    assert out["q"] == pytest.approx(40.5) and out["tau2"] == pytest.approx(0.395)
    z = st.norm.isf(0.025)
    assert out["fixed"].estimate == pytest.approx(math.exp(0.45))
    assert out["fixed"].high == pytest.approx(math.exp(0.45 + z * math.sqrt(1 / 200)))
    assert out["random"].high == pytest.approx(math.exp(0.45 + z * math.sqrt((0.01 + 0.395) / 2)))
    same = stats.pooled_log_sd_ratio([0.1, 0.1, 0.1], [0.2, 0.3, 0.4])
    assert same["tau2"] == 0 and same["random"] == same["fixed"]


# ----------------------------------------------------------------------------- reading rule

@pytest.mark.parametrize("p, sd_b, sd_v, high, want", [
    (0.01, 1.0, 0.6, 50.0, second.SUPPORTED),
    (0.01, 0.6, 1.0, -20.0, second.OPPOSITE),
    (0.20, 1.0, 0.9, 25.0, second.SMALLER),
    (0.20, 1.0, 0.9, 40.0, second.INCONCLUSIVE),
])
def test_read_second(p, sd_b, sd_v, high, want):
    assert second.read_second(p, sd_b, sd_v, high, claimed=33.3) == want


def test_equivalence_statement_holds_only_below_the_margin():
    assert second.equivalent_below(19.9) and not second.equivalent_below(20.0)


# ----------------------------------------------------------------------------- the analysis

def _fake_pairs(complete):
    """`second.pairs` replaced: the first dose arm complete (or not), the others pending."""
    rng = np.random.default_rng(7)
    b = rng.standard_normal(50)
    full = (b, 0.6 * b + 0.5 * rng.standard_normal(50), 50)

    def pairs(study, select, profile="cpu", root=None, value="test_acc", vml=None):
        fake = type("I", (), {})()
        fake.tags, fake.spec = {"arm": "dose", "dose": studies.SECOND_DOSES[0]}, None
        first = study == "second-test" and vml is not None and vml(fake)
        if first and complete:
            return full
        return full[0][:10], full[1][:10], 50
    return pairs, full


@pytest.mark.parametrize("complete", [True, False])
def test_primary_table_reads_only_complete_tests_and_holm_counts_pending_ones_as_p_1(monkeypatch, complete):
    pairs, (b, v, _) = _fake_pairs(complete)
    monkeypatch.setattr(second, "pairs", pairs)
    monkeypatch.setattr(second, "tta_lead", lambda profile, root=None: {"var_red": 33.6})
    t = second.primary_table("cpu")
    assert list(t["of"]) == [50, 50, 50]
    assert t["verdict"].iloc[1:].tolist() == ["pending: 10 of 50 pairs stored"] * 2
    if not complete:
        assert t["verdict"].iloc[0] == "pending: 10 of 50 pairs stored" and t["pm_p_holm"].isna().all()
        return
    row = t.iloc[0]
    p = st.pearsonr(v + b, v - b).pvalue
    assert row["pm_p"] == pytest.approx(p) and row["pm_p_holm"] == pytest.approx(min(1.0, 3 * p))
    assert row["verdict"] == second.read_second(row["pm_p_holm"], row["base_sd"], row["vml_sd"], row["pm_high"], 33.3)
    assert row["claimed"] == pytest.approx(33.3)  # the dose arms test the paper's claim, the TTA arm the lead's


def test_trend_gives_counts_only_until_every_dose_arm_is_complete():
    out = second.trend("cpu")
    assert out["stored"][0] == out["stored"][1] == studies.SECOND_N_DOSE
    if min(out["stored"].values()) < out["of"]:
        assert "slope" not in out


def test_reanalysis_pairs_the_decisive_tests_by_seed():
    t = second.reanalysis_table("cpu")
    assert list(t["pairs"]) == list(t["of"]) == [studies.POWERED_N_SHORT, studies.POWERED_N_LONG, studies.SMALL_N]
    row = t.iloc[0]
    b, v, _ = second.pairs("powered", lambda i: i.tags.get("arm") == "short", "cpu")
    assert row["rho"] == pytest.approx(np.corrcoef(b, v)[0, 1])
    assert row["pm_p"] == pytest.approx(st.pearsonr(v + b, v - b).pvalue)
    assert row["below_margin"] == (row["pm_high"] < second.MARGIN)


def test_dose_response_figure_draws_complete_arms_only_on_the_declared_dose_axis():
    import pandas as pd
    from vml import plots
    t = pd.DataFrame({"runs": [50, 50, 3], "of": [50, 50, 50], "sd": [0.7, 0.72, np.nan],
                      "sd_low": [0.6, 0.6, np.nan], "sd_high": [0.9, 0.9, np.nan]}, index=pd.Index([0, 1, 15], name="dose"))
    fig = plots.plot_dose_response(t, claimed=33.3)
    ax = fig.axes[0]
    xs = ax.lines[0].get_xdata()
    assert list(xs) == [0, 1] and ax.get_xlim()[1] >= 15 and ax.get_yscale() == "log"
    assert ax.lines[-1].get_ydata()[0] == pytest.approx(0.7 * (1 - 0.333))


def test_answer_states_what_is_ruled_out_and_gives_no_verdict_for_pending_tests():
    import pandas as pd
    re = pd.DataFrame({"base_sd": [0.7, 0.3], "pm_high": [22.14, 19.0], "below_margin": [False, True]},
                      index=["A", "B"])
    prim = pd.DataFrame({"base_sd": [np.nan, 0.7], "vml_sd": [np.nan, 0.98], "verdict": ["pending: 3 of 50 pairs stored", "opposite"],
                         "var_red": [np.nan, -40.0], "pm_low": [np.nan, -70.0], "pm_high": [np.nan, -12.0]},
                        index=["dose 5", "TTA"])
    text = second.answer(re, prim)
    assert "A: 22.1%; B: 19.0%; a 20% reduction is ruled out on 1 of 2." in text
    assert "dose 5: pending: 3 of 50 pairs stored" in text
    assert "TTA: opposite (Var. Red. -40.0%, paired 95% interval -70.0% to -12.0%)" in text


def test_the_forest_plot_draws_each_decisive_tests_paired_interval_and_none_for_the_unpaired_pool():
    from vml.analysis import decisive, headline
    primary, spreads = decisive.primary_table("cpu"), decisive.spread_table("cpu")
    f = headline.forest_table(primary, spreads, "cpu")
    decisive_rows = f[f["label"].str.contains("decisive")]
    b, v, _ = second.pairs("powered", lambda i: i.tags.get("arm") == "short", "cpu")
    pm = stats.var_red_estimate(stats.pitman_morgan(b, v)[0])
    assert (decisive_rows.iloc[0]["paired_low"], decisive_rows.iloc[0]["paired_high"]) == \
        pytest.approx((pm.low, pm.high))
    assert decisive_rows[["paired_low", "paired_high"]].notna().all().all()
    assert f.loc[~f["label"].str.contains("decisive"), ["paired_low", "paired_high"]].isna().all().all()


def _git(*args: str) -> str | None:
    import subprocess
    r = subprocess.run(["git", *args], cwd=store.REPO_ROOT, capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def _declared(commit: str, subject: str) -> str:
    """The commit time of `commit`, after checking that its subject starts with `subject`; skips the test in
    a clone without that history."""
    when = _git("show", "-s", "--format=%cI%n%s", commit)
    if when is None:
        pytest.skip(f"this clone has no history with commit {commit} (shallow or exported)")
    committed, got = when.splitlines()[:2]
    assert got.startswith(subject)
    return committed


def _assert_trained_after(spec, commit: str, committed: str) -> None:
    """The stored run of `spec` started after `committed` and, where its commit is in this history, trained
    from a descendant of `commit`."""
    import datetime as dt
    rec = store.read(spec, arrays=False)
    assert dt.datetime.fromisoformat(rec["started"]) > dt.datetime.fromisoformat(committed), spec.key()
    trained = rec["git_commit"].removesuffix("-dirty")
    if _git("cat-file", "-e", f"{trained}^{{commit}}") is not None:  # a commit of this history
        assert _git("merge-base", "--is-ancestor", commit, trained) is not None, spec.key()


def test_every_new_run_of_the_design_started_after_its_preregistration_commit_and_trained_from_its_code():
    import json
    committed = _declared(second.PREREGISTRATION, "Pre-registration of the second test")
    new = [i for i in studies.get_study("second-test").grid("cpu")
           if (i.tags["arm"] == "tta" or i.tags["dose"] in studies.SECOND_DOSES) and store.exists(i.spec)]
    assert new, "no new run of the design is stored"
    for i in new:
        _assert_trained_after(i.spec, second.PREREGISTRATION, committed)
    nb = json.loads((store.REPO_ROOT / "notebooks" / "07c-second-test.ipynb").read_text())
    assert f"`{second.PREREGISTRATION}`" in "".join("".join(c["source"]) for c in nb["cells"])


def test_the_dose_tables_gradient_factor_range_lies_within_eq_10s_bounds_and_straddles_1():
    from vml.loss import VMLConfig
    t = second.dose_table("cpu")
    c = VMLConfig()
    for k in (0, 1):  # the stored controls: Base (the observer controller) and Table 5
        lo, hi = t.loc[k, "factor_p5"], t.loc[k, "factor_p95"]
        assert 1 - c.w_vml * c.lambda_max <= lo < 1 < hi <= 1 + c.w_vml * c.lambda_max


def test_machine_text_says_when_no_machine_trained_both_a_dose_arm_and_its_controls():
    import pandas as pd
    from vml.analysis.common import NOT_NAMED
    t = pd.DataFrame({"dose 0 (Base)": [45, 0, 5], "dose 1 (Table 5)": [45, 0, 5], "dose 5": [0, 33, 0],
                      "dose 15": [0, 33, 0]}, index=["EPYC", "Xeon", NOT_NAMED])
    text = second.machine_text(t)
    assert text.startswith(f"The dose arms' runs stored came from Xeon; their controls from EPYC; {NOT_NAMED}.")
    # a run that names no machine may have trained anywhere: "no machine trained both" would say more than we know
    assert "No machine named in the records trained both (10 control runs name no machine" in text
    assert "cannot separate" in text
    assert "No machine trained both" in second.machine_text(t.drop(NOT_NAMED))
    unnamed_both = t.copy()
    unnamed_both.loc[NOT_NAMED, "dose 5"] = 3
    assert "Both were trained on" not in second.machine_text(unnamed_both)
    t.loc["EPYC", "dose 5"] = 2
    assert "Both were trained on EPYC" in second.machine_text(t)
    assert second.machine_text(t.assign(**{"dose 5": 0, "dose 15": 0})) == "No run of the dose arms is stored yet."


# ----------------------------------------------------------------------------- the dose arms in words

def test_equivalence_text_says_any_reduction_is_ruled_out_when_the_whole_interval_lies_below_zero():
    assert second.equivalence_text({"pm_high": 13.0, "below_margin": True}) == \
        "the data rule out a Var. Red. above 13.0%: VML reduces the spread by less than 20%, if at all"
    assert second.equivalence_text({"pm_high": 22.1, "below_margin": False}).endswith(
        "so a reduction of 20% is not ruled out")
    assert second.equivalence_text({"pm_high": -800.5, "below_margin": True}) == \
        "the data rule out any reduction (the interval ends at -800.5%): VML widened the spread"


def test_equivalence_text_says_the_spread_narrowed_when_the_whole_interval_lies_above_zero():
    assert second.equivalence_text({"pm_low": 13.4, "pm_high": 48.0, "below_margin": False}) == \
        "the data place the Var. Red. between 13.4% and 48.0%: VML narrowed the spread"
    assert second.equivalence_text({"pm_low": 24.0, "pm_high": 60.0, "below_margin": False}) == \
        "the data place the Var. Red. between 24.0% and 60.0%: VML narrowed the spread by more than 20%"
    assert second.equivalence_text({"pm_low": 2.0, "pm_high": 15.0, "below_margin": True}) == \
        "the data place the Var. Red. between 2.0% and 15.0%: VML narrowed the spread, by less than 20%"
    assert second.equivalence_text({"pm_low": -5.0, "pm_high": 22.1, "below_margin": False}).endswith(
        "so a reduction of 20% is not ruled out")


def test_size_text_gives_the_sd_ratio_only_where_vml_doubles_base():
    assert second.size_text({"var_red": -15.8, "base_sd": 0.73, "vml_sd": 0.84}) == "Var. Red. -15.8%"
    assert second.size_text({"var_red": -1098.5, "base_sd": 0.73, "vml_sd": 8.74}) == \
        "Var. Red. -1098.5%, SD 12.0 times Base's"


def test_trend_text_gives_a_bootstrap_p_of_0_as_its_bound_and_says_which_way_the_sd_moves():
    rng = np.random.default_rng(3)
    z = rng.standard_normal(50)
    doses = [0, 1, 5, 15]
    arms = [z * np.exp(0.1 * k) for k in doses]  # the SD grows by e^0.1 per unit dose, exactly
    est, p = stats.sd_trend(arms, doses, n_boot=1000)
    assert est.estimate == pytest.approx(0.1) and p == 0.0
    out = {"stored": dict.fromkeys(doses, 50), "of": 50, "slope": est.estimate, "low": est.low,
           "high": est.high, "p": p, "n_boot": 1000, "sd": {0: 0.73, 1: 0.73, 5: 0.84, 15: 8.74},
           "sd_ci": {0: (0.61, 0.91), 1: (0.61, 0.91), 5: (0.71, 1.05), 15: (7.30, 10.89)},
           "fitted": {0: 0.65, 1: 0.7, 5: 0.9, 15: 8.0}}
    text = second.trend_text(out)
    assert f"{100 * (np.exp(1.5) - 1):+.1f}% from dose 0 to dose 15" in text
    assert "p < 0.002, declared cut 0.05): a trend is read, and the SD grows with the dose." in text
    # the line's change is not the observed one: both are given
    assert text.endswith("That change is the fitted line's (log SD linear in the dose); the SDs observed at doses "
                         "0, 1, 5, 15 were 0.73, 0.73, 0.84, 8.74 pp, a change of +1097.3% from dose 0 to dose 15. "
                         "The line's SD lies inside the observed SD's 95% interval at every dose (a check after the data).")
    poor = second.trend_text({**out, "fitted": {0: 0.57, 1: 0.68, 5: 1.35, 15: 7.51}})
    assert poor.endswith("The line fits them poorly (a check after the data): its SD lies outside the observed SD's 95% "
                         "interval at doses 0 and 5 (0.57 pp, 1.35 pp).")
    assert "interval at dose 5 (1.35 pp)." in second.trend_text({**out, "fitted": {0: 0.65, 1: 0.7, 5: 1.35, 15: 8.0}})
    down = second.trend_text({**out, "slope": -0.1, "low": -0.1, "high": -0.1, "p": 0.01})
    assert "p = 0.01" in down and "the SD shrinks with the dose. That change" in down
    assert "no trend is read. That change" in second.trend_text({**out, "p": 0.3})


def test_trend_gives_the_ols_line_of_log_sd_on_the_dose_and_each_doses_chi2_interval(monkeypatch):
    from types import SimpleNamespace as NS
    rng = np.random.default_rng(5)
    doses, n = second.design_doses(), studies.SECOND_N_DOSE
    acc = {k: 0.74 + 0.01 * (1 + k / 10) * rng.standard_normal(n) for k in doses}
    recs = [(NS(tags={"arm": "dose", "dose": k}, spec=NS(seed=s + 1)), {"test_acc": acc[k][s]})
            for k in doses for s in range(n)]
    monkeypatch.setattr(second, "stored_runs", lambda study, profile, root=None, arrays=True: iter(recs))
    out = second.trend("cpu")
    sd = {k: float(np.std(100 * acc[k], ddof=1)) for k in doses}
    slope, intercept = np.polyfit(list(doses), [np.log(sd[k]) for k in doses], 1)
    assert out["slope"] == pytest.approx(slope, rel=1e-9)
    for k in doses:
        assert out["sd"][k] == pytest.approx(sd[k], rel=1e-12)
        assert out["fitted"][k] == pytest.approx(np.exp(intercept + slope * k), rel=1e-9)
        ss = (n - 1) * sd[k] ** 2
        assert out["sd_ci"][k] == pytest.approx((np.sqrt(ss / st.chi2.ppf(0.975, n - 1)),
                                                 np.sqrt(ss / st.chi2.ppf(0.025, n - 1))), rel=1e-9)


def test_paired_row_gives_each_arms_shapiro_wilk_p_and_normality_text_checks_the_reading_on_the_pair_bootstrap():
    import pandas as pd
    rng = np.random.default_rng(4)
    base, skewed = rng.standard_normal(50), rng.exponential(size=50)
    row = second.paired_row("t", base, skewed, 50, n_boot=200)
    assert row["normal_p_base"] == pytest.approx(st.shapiro(base).pvalue) and row["normal_p_base"] > 0.05
    assert row["normal_p_vml"] == pytest.approx(st.shapiro(skewed).pvalue) and row["normal_p_vml"] < 1e-3
    assert "normal_p_base" not in second.paired_row("t", base[:10], skewed[:10], 50)  # pending: counts only
    r = {"normal_p_base": 0.51, "normal_p_vml": 0.0054, "claimed": 33.3, "base_sd": 0.7}
    t = pd.DataFrame([{**r, "test": "a", "verdict": "smaller than claimed", "boot_low": -65.2, "boot_high": 19.4,
                       "pm_high": 13.0, "below_margin": True},
                      {**r, "test": "b", "verdict": "opposite", "boot_low": -1696.5, "boot_high": 2.0,
                       "pm_high": -800.5, "below_margin": True},
                      {**r, "test": "c", "verdict": "inconclusive at this n", "boot_low": -10.0, "boot_high": 40.0},
                      {"test": "d", "base_sd": np.nan, "verdict": "pending: 41 of 50 pairs stored"}]).set_index("test")
    assert second.normality_text(t) == (
        "a: Shapiro-Wilk p 0.51 (Base) and 0.0054 (VML); the pair bootstrap, which does not assume normality, gives "
        "-65.2% to 19.4%, which also lies below the claimed 33.3%. Its upper end also lies below the 20% margin. "
        "b: Shapiro-Wilk p 0.51 (Base) and 0.0054 (VML); the pair bootstrap, which does not assume normality, gives "
        "-1696.5% to 2.0%, which does not lie below 0: on it alone the reading would not be \"opposite\". "
        "c: Shapiro-Wilk p 0.51 (Base) and 0.0054 (VML); the pair bootstrap, which does not assume normality, gives "
        "-10.0% to 40.0%, which also holds the claimed 33.3%.")
    assert second.normality_text(t.loc[["d"]]) == ""
    wide = t.loc[["a"]].assign(boot_high=24.0)
    assert second.normality_text(wide).endswith(
        "-65.2% to 24.0%, which also lies below the claimed 33.3%. Its upper end does not lie below the 20% margin: "
        "on it alone a 20% reduction would not be ruled out.")


def test_achieved_power_uses_each_complete_tests_own_pair_correlation_and_the_size_it_is_read_against():
    import pandas as pd
    t = pd.DataFrame([{"test": "dose 5", "pairs": 50, "base_sd": 0.73, "rho": -0.05, "claimed": 33.3},
                      {"test": "TTA", "pairs": 41, "base_sd": np.nan}]).set_index("test")
    assert second.achieved_power_text(t) == "dose 5: 65% for 33.3% at the pair correlation of -0.05."
    # by simulation: Pitman-Morgan at α/3 on 50 pairs of SD ratio 0.667 and correlation -0.05
    rng = np.random.default_rng(12)
    ratio, rho, sims, n = 1 - 0.333, -0.05, 4000, 50
    z1, z2 = rng.standard_normal((2, sims, n))
    b, v = z1, ratio * (rho * z1 + math.sqrt(1 - rho * rho) * z2)
    hits = np.mean([stats.pitman_morgan(b[i], v[i])[1] < 0.05 / 3 for i in range(sims)])
    assert hits == pytest.approx(0.65, abs=0.03)
    assert second.achieved_power_text(t.loc[["TTA"]]) == ""


def _dose_tables(reversed_5=0.0, sd_15=8.74, verdicts=("smaller than claimed", "opposite")):
    """A `dose_table` and `primary_table` as the second test's complete dose arms would give them."""
    import pandas as pd
    k5, k15 = studies.SECOND_DOSES
    doses = pd.DataFrame({"runs": [50] * 4, "of": [50] * 4, "epochs": [5] * 4,
                          "mean": [74.08, 74.19, 72.99, 56.35], "sd": [0.73, 0.73, 0.84, sd_15],
                          "excursion": [1.9, 2.0, 10.2, 43.0], "factor_p5": [0.94, 0.94, 0.69, 0.0],
                          "factor_p95": [1.02, 1.02, 1.08, 1.31], "reversed": [0, 0, reversed_5, 4.9]},
                         index=pd.Index([0, 1, k5, k15], name="dose"))
    row = {"of": 50, "base_sd": 0.73, "pm_low": -54.1, "pm_high": 13.0, "diff_low": -1.41, "diff_high": -0.77,
           "below_margin": True}
    primary = pd.DataFrame([{**row, "vml_sd": 0.84, "var_red": -15.8, "rho": -0.05, "diff": -1.09, "verdict": verdicts[0]},
                            {**row, "vml_sd": sd_15, "var_red": -1098.5, "pm_low": -1495.0, "pm_high": -800.5,
                             "rho": -0.06, "diff": -17.74, "verdict": verdicts[1]},
                            {"of": 50, "base_sd": np.nan, "verdict": "pending: 11 of 50 pairs stored"}],
                           index=[second.dose_label(k5, 5), second.dose_label(k15, 5), "TTA"])
    return doses, primary


def test_dose_readable_names_base_and_table_5_and_never_rounds_a_share_of_steps_above_0_to_0():
    doses, _ = _dose_tables(reversed_5=0.035)
    page = second.dose_readable(doses.assign(sd_low=doses["sd"] - 0.1, sd_high=doses["sd"] + 0.1,
                                             at_lambda_max=[0, 0, 0, 0.035]))
    assert list(page.index)[:2] == ["0 (Base)", "1 (Table 5)"]
    assert list(page["steps reversed (%)"]) == ["0", "0", "<0.1", "4.9"]
    assert list(page["steps at λ_max (%)"]) == ["0", "0", "0", "<0.1"]


def test_dose_text_reports_what_each_dose_did_and_the_machine_caveat_only_where_no_machine_trained_both():
    import pandas as pd
    k5, k15 = studies.SECOND_DOSES
    doses, primary = _dose_tables(reversed_5=0.03)
    apart = pd.DataFrame({"dose 0 (Base)": [50, 0], "dose 1 (Table 5)": [50, 0], f"dose {k5}": [0, 50],
                          f"dose {k15}": [0, 50]}, index=["EPYC", "Xeon"])
    text = second.dose_text(doses, primary, 0.48, apart)
    assert (f"At dose {k5} the gradient factor moved by 10.2% on average after the latch (the dose was chosen for "
            f"{100 * second.TARGET_EXCURSION[0]:.0f}%); 90% of its steps lay between 0.69 and 1.08, and it reversed "
            "the step on fewer than 0.05% of them.") in text
    assert "reversed the step on 4.9% of them" in text
    assert "(Var. Red. -15.8%, paired 95% interval -54.1% to 13.0%, so VML reduces the spread by less than 20%, if at all)" in text
    assert "paired 95% interval -1495.0% to -800.5%), and their mean accuracy 56.35%" in text
    assert "SD, 12.0 times" not in text and "Var. Red. -1098.5%, SD 12.0 times Base's" in text
    assert f"mean accuracy 56.35%, -17.74 pp from Base (paired 95% CI -1.41 to -0.77)" in text
    assert f"0.48 for Table 5 VML and -0.05 at dose {k5} and -0.06 at dose {k15}." in text
    assert ("another machine kind than their controls, so each dose arm's difference from its controls (its SD, its "
            "mean, its pairing) holds any effect of the machine's kernels as well as of the dose; this design cannot "
            f"tell the two apart (the machine check measures the machine's part at dose {studies.MACHINE_CHECK_DOSE}).") in text
    from vml.analysis.common import NOT_NAMED
    unnamed = pd.concat([apart, pd.DataFrame({"dose 0 (Base)": [5], "dose 1 (Table 5)": [5], f"dose {k5}": [0],
                                              f"dose {k15}": [0]}, index=[NOT_NAMED])])
    assert ("another machine kind than every control run that names its machine (10 control runs name none)"
            in second.dose_text(doses, primary, 0.48, unnamed))
    together = apart.assign(**{f"dose {k5}": [10, 40]})
    assert "cannot tell" not in second.dose_text(doses, primary, 0.48, together)
    assert "never reversed the step" in second.dose_text(*_dose_tables(reversed_5=0.0), 0.48, apart)
    pending = doses.assign(sd=[0.73, 0.73, np.nan, np.nan], runs=[50, 50, 40, 40])
    assert second.dose_text(pending, primary, 0.48, apart) == (f"Dose {k5}: 40 of 50 runs stored. "
                                                               f"Dose {k15}: 40 of 50 runs stored.")


def test_dose_answer_is_empty_until_both_doses_are_complete_and_names_a_narrower_spread_only_when_supported():
    k5, k15 = studies.SECOND_DOSES
    doses, primary = _dose_tables()
    text = second.dose_answer(primary, doses)
    assert text.startswith(f"VML at {k5} and {k15} times the Table 5 dose (50 seed pairs each, 5-epoch protocol): "
                           "the test found a narrower spread at no dose. Dose ")
    assert "*opposite*, Var. Red. -1098.5%, SD 12.0 times Base's, paired 95% interval" in text
    # the equivalence statement where the interval reaches 0 or above; none where it lies wholly below 0
    assert (f"Dose {k5} (gradient factor moved 10% on average): *smaller than claimed*, Var. Red. -15.8%, paired 95% "
            "interval -54.1% to 13.0%, so VML reduces the spread by less than 20%, if at all, mean accuracy -1.09 pp; ") in text
    assert text.endswith("paired 95% interval -1495.0% to -800.5%, mean accuracy -17.74 pp.")
    wide = _dose_tables()[1]
    wide.loc[second.dose_label(k5, 5), ["pm_high", "below_margin"]] = [24.0, False]
    assert "interval -54.1% to 24.0%, so a reduction of 20% is not ruled out, mean accuracy" in second.dose_answer(wide, doses)
    won = second.dose_answer(_dose_tables(verdicts=("supported", "opposite"))[1], doses)
    assert f"found a narrower spread at dose {k5}." in won
    assert second.dose_answer(primary, doses.assign(sd=[0.73, 0.73, 0.84, np.nan])) == ""


def test_correlation_power_matches_the_rejection_rate_of_pearsons_test_on_simulated_pairs():
    rng = np.random.default_rng(11)
    n, rho, sims = 30, 0.48, 4000
    z1, z2 = rng.standard_normal((2, sims, n))
    x, y = z1, rho * z1 + math.sqrt(1 - rho * rho) * z2
    x, y = x - x.mean(1, keepdims=True), y - y.mean(1, keepdims=True)
    r = (x * y).sum(1) / np.sqrt((x * x).sum(1) * (y * y).sum(1))
    p = 2 * st.t.sf(np.abs(r) * np.sqrt((n - 2) / (1 - r * r)), n - 2)
    assert stats.correlation_power(n, rho) == pytest.approx((p < 0.05).mean(), abs=0.03)
    assert stats.correlation_power(n, 0.0) == pytest.approx(0.05)
    with pytest.raises(ValueError, match=r"^rho=1.0 is not allowed; it must be a correlation strictly between"):
        stats.correlation_power(n, 1.0)


# ----------------------------------------------------------------------------- the machine check

def _write(root, spec, acc, cpu, *resumed_on, **results):
    """A record trained on `cpu` (a CPU model, a whole `machine_info`, or None: a record that names no
    machine), then (a resume on another machine) on each of `resumed_on` in turn."""
    import json
    path = store.record_path(spec, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    machines = [c if c is None or isinstance(c, dict) else {"cpu": c} for c in (cpu, *resumed_on)]
    trained_on = {"trained_on": [{"from_epoch": 1 + j, "machine": m} for j, m in enumerate(machines)]} if resumed_on else {}
    path.write_text(json.dumps({"key": spec.key(), "spec": spec.to_dict(), "test_acc": acc / 100, **results,
                                "machine": machines[-1], **trained_on}))


def _check_specs(rng_seed=0):
    """The machine check's dose and seeds, its stored originals and replicas by (dose, seed), and random test
    accuracies (%) for each (side, dose)."""
    k, seeds = studies.MACHINE_CHECK_DOSE, list(studies.MACHINE_CHECK_SEEDS)
    orig = {(d, i.spec.seed): i.spec for d in (0, k) for i in second.dose_items("cpu")[d] if i.spec.seed in seeds}
    rep = {(i.tags["dose"], i.spec.seed): i.spec for i in studies.get_study("machine-check").grid("cpu")}
    rng = np.random.default_rng(rng_seed)
    acc = {(side, d): 74 + rng.standard_normal(len(seeds)) for side in ("orig", "rep") for d in (0, k)}
    return k, seeds, orig, rep, acc


def test_machine_check_pairs_the_replicas_on_one_machine_and_each_replica_with_its_original_across_machines(tmp_path):
    k, seeds, orig, rep, _ = _check_specs()
    rng = np.random.default_rng(5)
    b_orig, d_orig = 74 + rng.standard_normal(30), 73 + rng.standard_normal(30)
    b_rep, d_rep = b_orig + 0.5 * rng.standard_normal(30), 73 + rng.standard_normal(30)
    assert all(sp.replica == 1 and sp.replace(replica=0) == orig[key] for key, sp in rep.items())
    same = seeds[:5]  # these seeds' replicas trained on the originals' machine kinds ...
    for j, s in enumerate(seeds):
        _write(tmp_path, orig[0, s], b_orig[j], "EPYC")
        _write(tmp_path, orig[k, s], d_orig[j], "Xeon")
        _write(tmp_path, rep[0, s], b_orig[j] if s in same else b_rep[j], "EPYC" if s in same else "Xeon")
        _write(tmp_path, rep[k, s], d_rep[j], "Xeon")
    t = second.machine_check("cpu", tmp_path)
    one, base, dose = (t.iloc[i] for i in range(3))
    br = b_rep
    assert one["pairs"] == 25 and one["rho"] == pytest.approx(np.corrcoef(br[5:], d_rep[5:])[0, 1])
    assert one["machines"] == "Xeon vs Xeon"  # seeds 1-5 had their replicas on two machine kinds
    assert one["rho_low"] < one["rho"] < one["rho_high"]
    assert base["pairs"] == 25 and base["machines"] == "EPYC vs Xeon"  # ... so only the other 25 count here
    assert base["rho"] == pytest.approx(np.corrcoef(b_orig[5:], b_rep[5:])[0, 1])
    assert base["var_red"] == pytest.approx(100 * (1 - b_rep[5:].std(ddof=1) / b_orig[5:].std(ddof=1)))
    assert dose["pairs"] == 0 and dose["machines"] == "one machine kind for 30 of 30 seeds"
    # the replicas on their originals' machine kinds: Base seeds 1-5 written equal, dose 5's all differ
    assert (base["same_kind"], base["same_machine"], base["same_machine_equal"]) == (5, 5, 5)
    assert (dose["same_kind"], dose["same_machine"], dose["same_machine_equal"]) == (30, 30, 0)
    assert second.machine_check_text(t).endswith(
        "Of the 35 replicas that trained on their original's machine kind, 35 trained on the same machine by every "
        "condition of bitwise reproducibility (CPU flags, ISA caps, bf16 kernels, threads, torch version), and 5 of "
        "those repeated their original's test, EMA and TTA accuracy and test loss exactly.")
    page = second.machine_check_readable(t)
    assert page.iloc[2]["pairs"] == "0 of 30: one machine kind for 30 of 30 seeds"
    store.record_path(rep[k, 30], tmp_path).unlink()
    pending = second.machine_check("cpu", tmp_path)
    assert (pending["stored"] == 59).all() and "base_sd" not in pending
    assert set(second.machine_check_readable(pending)["pairs"]) == {"pending: 59 of 60 runs stored"}


def test_a_seed_with_a_run_resumed_on_another_machine_kind_leaves_the_machine_checks_rows_of_that_run(tmp_path):
    k, seeds, orig, rep, acc = _check_specs(6)
    for j, s in enumerate(seeds):
        _write(tmp_path, orig[0, s], acc["orig", 0][j], "Xeon")
        _write(tmp_path, orig[k, s], acc["orig", k][j], "Xeon")
        # seeds 1-2: both replicas carried from EPYC to Xeon at a session's end; seed 3: only the dose's
        _write(tmp_path, rep[0, s], acc["rep", 0][j], "EPYC", *(["Xeon"] if s in seeds[:2] else []))
        _write(tmp_path, rep[k, s], acc["rep", k][j], "EPYC", *(["Xeon"] if s in seeds[:3] else []))
    assert store.made_on(store.read(rep[0, seeds[0]], root=tmp_path, arrays=False)) == "EPYC + Xeon"
    one, base, dose = (second.machine_check("cpu", tmp_path).iloc[i] for i in range(3))
    assert one["pairs"] == 27 and one["machines"] == "EPYC vs EPYC; 3 left out: a run resumed on another machine kind"
    assert one["rho"] == pytest.approx(np.corrcoef(acc["rep", 0][3:], acc["rep", k][3:])[0, 1])
    assert base["pairs"] == 28 and base["machines"] == "Xeon vs EPYC; 2 left out: a run resumed on another machine kind"
    assert base["rho"] == pytest.approx(np.corrcoef(acc["orig", 0][2:], acc["rep", 0][2:])[0, 1])
    assert dose["pairs"] == 27 and (dose["same_kind"], base["same_kind"]) == (0, 0)


def test_across_machines_the_machine_check_leaves_out_a_seed_whose_original_names_no_machine(tmp_path):
    # the store's first Base runs name no machine: whether their replica trained on another kind is unknown
    k, seeds, orig, rep, acc = _check_specs(8)
    for j, s in enumerate(seeds):
        _write(tmp_path, orig[0, s], acc["orig", 0][j], None if s in seeds[:5] else "EPYC")
        _write(tmp_path, orig[k, s], acc["orig", k][j], "Xeon")
        _write(tmp_path, rep[0, s], acc["rep", 0][j], "EPYC", *(["Xeon"] if s == seeds[5] else []))
        _write(tmp_path, rep[k, s], acc["rep", k][j], "EPYC")
    one, base, dose = (second.machine_check("cpu", tmp_path).iloc[i] for i in range(3))
    assert one["pairs"] == 29 and one["machines"] == "EPYC vs EPYC; 1 left out: a run resumed on another machine kind"
    # seeds 1-5 leave the Base row (unknown machine), seed 6 (resumed), and seeds 7-30 trained on one kind
    assert base["pairs"] == 0 and (base["same_kind"], base["same_machine"]) == (24, 24)
    assert base["machines"] == ("one machine kind for 24 of 30 seeds; 1 left out: a run resumed on another machine "
                                "kind; 5 left out: the original names no machine")
    assert dose["pairs"] == 30 and dose["machines"] == "Xeon vs EPYC"


def test_the_machine_check_expects_a_bitwise_repeat_only_on_the_same_machine_and_compares_every_result(tmp_path):
    k, seeds, orig, rep, acc = _check_specs(9)
    xeon = {"cpu": "Xeon", "cpu_flags": ["avx2", "avx512f"], "threads": 1, "torch": "2.14.1"}
    res = {"ema_acc": 0.7, "tta_acc": 0.71, "test_loss": 0.9}
    for j, s in enumerate(seeds):
        _write(tmp_path, orig[0, s], acc["orig", 0][j], "Opteron")
        _write(tmp_path, orig[k, s], acc["orig", k][j], xeon, **res)
        # seeds 1-10 on the same Xeon, of them 1-4 repeat every result and 5 all but its TTA accuracy;
        # seeds 11-12 on a Xeon with AMX and 13 with two threads: the same kind, another machine
        other = ({**xeon, "cpu_flags": ["avx2", "avx512f", "amx_bf16"]} if s in seeds[10:12] else
                 {**xeon, "threads": 2} if s == seeds[12] else xeon)
        _write(tmp_path, rep[0, s], acc["rep", 0][j], "EPYC")
        _write(tmp_path, rep[k, s], acc["orig", k][j] if s in seeds[:5] else acc["rep", k][j],
               other if s in seeds[:13] else "EPYC", **({**res, "tta_acc": 0.72} if s == seeds[4] else res))
    t = second.machine_check("cpu", tmp_path)
    dose = t.iloc[2]
    assert (dose["pairs"], dose["same_kind"], dose["same_machine"], dose["same_machine_equal"]) == (17, 13, 10, 4)
    assert second.machine_check_text(t).endswith(
        "Of the 13 replicas that trained on their original's machine kind, 10 trained on the same machine by every "
        "condition of bitwise reproducibility (CPU flags, ISA caps, bf16 kernels, threads, torch version), and 4 of "
        "those repeated their original's test, EMA and TTA accuracy and test loss exactly.")


def test_machine_check_text_applies_the_declared_reading():
    import pandas as pd
    base = {"pairs": 25, "of": 30, "machines": "Xeon vs Xeon", "base_sd": 0.7, "vml_sd": 0.8, "var_red": -14.3,
            "rho": 0.45, "rho_low": 0.07, "rho_high": 0.72, "pm_low": -50.0, "pm_high": 12.0, "diff": -1.08,
            "diff_low": -1.37, "diff_high": -0.79}
    t = pd.DataFrame([{**base, "test": "one"},
                      {**base, "test": "Base across", "rho": 0.1, "rho_low": -0.3, "rho_high": 0.46},
                      {**base, "test": "dose across", "pairs": 2, "base_sd": np.nan,
                       "machines": "one machine kind for 28 of 30 seeds"}]).set_index("test")
    text = second.machine_check_text(t)
    assert text.startswith("one (25 seeds, Xeon vs Xeon): pair correlation 0.45 (95% CI 0.07 to 0.72), Var. Red. -14.3% "
                           "(paired 95% CI -50.0% to 12.0%): the pairs stay correlated at this dose on one machine")
    assert "Base across (25 seeds, Xeon vs Xeon): pair correlation 0.10" in text
    k = studies.MACHINE_CHECK_DOSE
    assert text.count("On one machine, mean accuracy") == 1 and (
        f"came with the change of machine. On one machine, mean accuracy -1.08 pp dose {k} − Base (paired 95% CI "
        "-1.37 to -0.79). Base across") in text
    assert "no effect of the machine on the spread was detected." in text
    assert "dose across: not computable (2 pairs; one machine kind for 28 of 30 seeds)." in text
    flat = t.assign(rho_low=-0.1, pm_low=-80.0, pm_high=-5.0)
    text = second.machine_check_text(flat)
    assert "on one machine too the pairs are not detectably correlated" in text
    assert "the machine changed the spread." in text
    pending = pd.DataFrame([{"test": "one", "stored": 12, "runs": 60}]).set_index("test")
    assert second.machine_check_text(pending) == "The machine check is pending: 12 of 60 runs stored."


def test_machine_check_answer_reads_the_check_in_two_sentences_for_the_introduction():
    import pandas as pd
    row = {"pairs": 25, "of": 30, "machines": "Xeon vs Xeon", "base_sd": 0.7, "vml_sd": 0.8, "var_red": -14.3,
           "rho": 0.45, "rho_low": 0.07, "rho_high": 0.72, "pm_low": -50.0, "pm_high": 12.0}
    t = pd.DataFrame([{**row, "test": "one"},
                      {**row, "test": "Base across", "rho": 0.81, "pairs": 30},
                      {**row, "test": "dose across", "rho": 0.9, "pm_low": -60.0, "pm_high": -3.0}]).set_index("test")
    k = studies.MACHINE_CHECK_DOSE
    assert second.machine_check_answer(t) == (
        "A machine check, declared after these results were read (it can explain them, never change them), trains "
        f"Base and dose {k} again, each seed's two runs on one machine. On one machine (25 seeds) dose {k} and Base had a same-seed correlation of 0.45 "
        "(95% CI 0.07 to 0.72): the pairs stay correlated at this dose on one machine, so at least part of the dose "
        "arm's loss of correlation came with the change of machine. Each replica trained on another machine kind than its original "
        f"kept a correlation of 0.81 (Base, 30 seeds) and 0.90 (dose {k}, 25 seeds) with it, and the machine changed "
        f"the spread of dose {k}.")
    flat = t.assign(rho_low=-0.1, pm_low=-40.0, pm_high=10.0)
    flat.loc["dose across", ["pairs", "base_sd", "machines"]] = [2, np.nan, "one machine kind for 28 of 30 seeds"]
    text = second.machine_check_answer(flat)
    assert "on one machine too the pairs are not detectably correlated, so the dose may loosen them by itself." in text
    assert "kept a correlation of 0.81 (Base, 30 seeds) with it, and no effect of the machine on the spread" in text
    assert text.endswith(f"The dose {k} replicas could not be compared with their originals across machines "
                         "(one machine kind for 28 of 30 seeds).")
    repeats = flat.assign(same_kind=[np.nan, 0, 28], same_machine=[np.nan, 0, 28], same_machine_equal=[np.nan, 0, 28])
    assert second.machine_check_answer(repeats).endswith(
        "(one machine kind for 28 of 30 seeds). Of the 28 replicas that trained on their original's machine kind, "
        "28 trained on the same machine by every condition of bitwise reproducibility (CPU flags, ISA caps, bf16 "
        "kernels, threads, torch version), and 28 of those repeated their original's test, EMA and TTA accuracy and "
        "test loss exactly.")
    nowhere = repeats.assign(same_kind=[np.nan, 0, 0], same_machine=[np.nan, 0, 0], same_machine_equal=[np.nan, 0, 0])
    assert second.machine_check_answer(nowhere).endswith(
        "(one machine kind for 28 of 30 seeds). No replica trained on the machine kind its original names, so none "
        "was expected to repeat its original bit for bit.")
    elsewhere = repeats.assign(same_machine=[np.nan, 0, 0], same_machine_equal=[np.nan, 0, 0])
    assert second.machine_check_answer(elsewhere).endswith(
        "Of the 28 replicas that trained on their original's machine kind, none trained on the same machine by every "
        "condition of bitwise reproducibility (CPU flags, ISA caps, bf16 kernels, threads, torch version), so none "
        "was expected to repeat its original.")
    pending = pd.DataFrame([{"test": "one", "stored": 12, "runs": 60}]).set_index("test")
    assert second.machine_check_answer(pending).endswith(f"dose {k} again, each seed's two runs on one machine: 12 of 60 runs stored so far.")


def test_the_machine_check_was_declared_before_any_of_its_runs_started_and_the_chapter_names_the_commit():
    import json
    committed = _declared(second.MACHINE_CHECK_DECLARED, "Declare the machine check")
    for i in studies.get_study("machine-check").grid("cpu"):
        if store.exists(i.spec):
            _assert_trained_after(i.spec, second.MACHINE_CHECK_DECLARED, committed)
    nb = json.loads((store.REPO_ROOT / "notebooks" / "07c-second-test.ipynb").read_text())
    outputs = json.dumps([c.get("outputs", []) for c in nb["cells"]])
    assert f"'{second.MACHINE_CHECK_DECLARED}'" in outputs  # glued into the chapter's declaration


def test_the_rules_added_to_the_machine_checks_analysis_came_before_any_of_its_runs_started():
    import datetime as dt
    # the chapter says so: "rules added ... before any run of the check existed"
    for commit in second.MACHINE_CHECK_RULES:
        committed = dt.datetime.fromisoformat(_declared(commit, "Machine check: a seed "))
        for i in studies.get_study("machine-check").grid("cpu"):
            if store.exists(i.spec):
                assert dt.datetime.fromisoformat(store.read(i.spec, arrays=False)["started"]) > committed, i.spec.key()


def test_tta_table_reads_the_declared_endpoints_of_the_tta_arms_seed_pairs(monkeypatch):
    rng = np.random.default_rng(2)
    asked = []

    def pairs(study, select, profile="cpu", root=None, value="test_acc", vml=None):
        items = [i for i in studies.get_study(study).grid(profile) if select(i)]
        assert {i.tags["arm"] for i in items} == {"tta"} and len(items) == 2 * len(studies.SECOND_TTA_SEEDS)
        asked.append(value)
        b = rng.standard_normal(50)
        return b, 0.5 * b + 0.6 * rng.standard_normal(50), 50

    monkeypatch.setattr(second, "pairs", pairs)
    monkeypatch.setattr(second, "tta_lead", lambda profile, root=None: {"var_red": 33.6})
    t = second.tta_table("cpu")
    assert asked == ["tta_acc", "test_acc", "ema_acc"]
    assert list(t.index) == ["TTA accuracy (primary)", "final-model accuracy (secondary)",
                             "EMA-weight accuracy (secondary)"]
    assert (t["claimed"] == 33.6).all() and (t["pairs"] == 50).all()
    assert second.tta_text(t).startswith("TTA accuracy (primary) (50 pairs, same-seed correlation ")


def test_tta_text_gives_one_pending_line_until_the_arm_is_complete():
    import pandas as pd
    t = pd.DataFrame([{"test": label, "pairs": 12, "of": 50} for _, label in second.TTA_ENDPOINTS]).set_index("test")
    assert second.tta_text(t) == ("The TTA arm is pending: 12 of 50 seed pairs stored; its three endpoints are "
                                  "computed once all are stored.")


def test_the_gradient_factor_figure_draws_one_violin_per_complete_dose_and_keeps_0_and_1_in_view():
    from vml import plots
    rng = np.random.default_rng(4)
    factors = {0: 1 + 0.02 * rng.standard_normal(500), 1: 1 + 0.02 * rng.standard_normal(500),
               15: np.r_[1 + 0.4 * rng.standard_normal(500), 31.0]}  # one extreme step, as dose 15 has
    ax = plots.plot_gradient_factors(factors).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0 (Base)", "1 (Table 5)", "15"]
    assert len(ax.collections) == 4  # three violins and the 5-95% bars
    lo, hi = ax.get_ylim()
    assert lo < 0 < 1 < hi < 5  # the extreme step does not set the axis


def test_gradient_factors_cover_every_post_latch_step_of_complete_dose_arms_only():
    f = second.gradient_factors("cpu")
    items = second.dose_items("cpu")
    for k, g in f.items():
        spec = items[k][0].spec
        rec = store.read(spec, arrays=False)
        steps = len(store.read(spec)["iters"]["lambda"])
        assert g.size == len(items[k]) * (steps - spec.vml.warmup_steps - 1), (k, rec["key"])
    complete = [k for k, its in items.items() if all(store.exists(i.spec) for i in its)]
    assert sorted(f) == sorted(complete)


# ----------------------------------------------------------------------------- failed runs, as declared

def _loss_record(step_losses, epoch_losses=((0.9, 1.0),), test_loss=1.0):
    """A record as `store.read` returns it, after a round trip through the store's array encoding."""
    import json
    raw = {"iters": {"loss": store.encode_array(np.asarray(step_losses, dtype=np.float32))}, "test_loss": test_loss,
           "epochs": [{"train_loss": a, "test_loss": b} for a, b in epoch_losses]}
    back = json.loads(json.dumps(raw, allow_nan=True))
    back["iters"] = {k: store.decode_array(v) for k, v in back["iters"].items()}
    return back


def test_a_run_failed_where_its_loss_was_non_finite_at_any_step_or_epoch():
    assert not second.loss_went_nonfinite(_loss_record([2.3, 1.9, 1.4]))
    assert second.loss_went_nonfinite(_loss_record([2.3, float("nan"), 1.4]))
    assert second.loss_went_nonfinite(_loss_record([2.3, float("inf"), 1.4]))
    assert second.loss_went_nonfinite(_loss_record([2.3, 1.9], epoch_losses=((float("nan"), 1.0),)))
    assert second.loss_went_nonfinite(_loss_record([2.3, 1.9], test_loss=float("nan")))


def test_failures_are_counted_per_arm_and_said_in_one_sentence(monkeypatch):
    from types import SimpleNamespace as NS
    k = studies.SECOND_DOSES[-1]
    dose = lambda d: NS(tags={"arm": "dose", "dose": d}, spec=NS(loss="vml"))  # noqa: E731
    runs = [(dose(0), _loss_record([2.0, 1.0])), (dose(k), _loss_record([2.0, 1.0])),
            (dose(k), _loss_record([2.0, float("nan")]))]
    monkeypatch.setattr(second, "stored_runs", lambda study, profile, root=None, arrays=True: iter(runs))
    t = second.failures_table("cpu")
    assert t.to_dict("index") == {"dose 0 (Base)": {"stored": 1, "failed": 0}, f"dose {k}": {"stored": 2, "failed": 1}}
    assert second.failures_text(t) == f"Runs whose loss became non-finite (failed, as declared): dose {k}: 1 of 2 stored."
    monkeypatch.setattr(second, "stored_runs", lambda study, profile, root=None, arrays=True: iter(runs[:2]))
    assert second.failures_text(second.failures_table("cpu")) == (
        f"No stored run failed: the loss stayed finite at every step of all 2 runs stored (dose 0 (Base): 1; "
        f"dose {k}: 1).")


# ----------------------------------------------------------------------------- the TTA lead in words

def _tta_primary(base, vml, p_holm):
    """A primary table whose dose tests are pending and whose last test, the TTA arm, is complete."""
    import pandas as pd
    row = second.paired_row("TTA arm", base, vml, len(base), claimed=33.6)
    row["pm_p_holm"] = p_holm
    row["verdict"] = second.read_second(p_holm, row["base_sd"], row["vml_sd"], row["pm_high"], 33.6)
    pending = [{"test": second.dose_label(k, 5), "pairs": 10, "of": 50, "pm_p_holm": np.nan, "verdict": "pending: 10 of 50"}
               for k in studies.SECOND_DOSES]
    return pd.DataFrame([*pending, row]).set_index("test")


@pytest.mark.parametrize("scale, noise, want, says", [
    (0.5, 0.1, second.SUPPORTED, "The TTA lead is confirmed: on 50 new seed pairs VML narrowed"),
    (2.0, 0.1, second.OPPOSITE, "The TTA lead is dropped: on 50 new seed pairs VML widened"),
    (1.0, 0.05, second.SMALLER, "The TTA lead is dropped at its size: 50 new seed pairs rule out the lead's 33.6%"),
    (0.0, 0.85, second.INCONCLUSIVE, "The TTA lead is neither confirmed nor dropped: on 50 new seed pairs the "
                                     "interval holds both no reduction and the lead's 33.6% (*inconclusive at this n*;"),
])
def test_lead_answer_confirms_drops_or_neither_by_the_declared_reading(scale, noise, want, says):
    rng = np.random.default_rng(3)
    b = rng.standard_normal(50)
    v = scale * b + noise * rng.standard_normal(50)
    t = _tta_primary(b, v, p_holm=min(1.0, 3 * stats.pitman_morgan(b, v)[1]))
    r = t.iloc[-1]
    assert r["verdict"] == want
    text = second.lead_answer(t, 0.671)
    assert text.startswith(says), text
    assert f"paired 95% interval {r['pm_low']:.1f}% to {r['pm_high']:.1f}%" in text
    assert (second.equivalence_text(r) in text) == (r["pm_low"] <= 0)  # above 0, the interval says it all
    assert text.endswith("; the arm was declared underpowered (67% power at α/3).") == (want == second.INCONCLUSIVE)


def test_lead_answer_neither_says_the_interval_lies_above_0_where_only_holms_correction_kept_the_lead_unconfirmed():
    # was: "the interval holds both no reduction and the lead's 33.6%" although it lay wholly above 0
    rng = np.random.default_rng(3)
    b = rng.standard_normal(50)
    t = _tta_primary(b, 0.6 * b + 0.4 * rng.standard_normal(50), p_holm=0.08)
    r = t.iloc[-1]
    assert r["verdict"] == second.INCONCLUSIVE and 0 < r["pm_low"] and r["pm_high"] > 33.6
    text = second.lead_answer(t, 0.671)
    assert text.startswith("The TTA lead is neither confirmed nor dropped: on 50 new seed pairs the paired interval "
                           f"lies above 0 ({r['pm_low']:.1f}% to {r['pm_high']:.1f}%) and holds the lead's 33.6%, but "
                           f"the Holm-adjusted p, 0.08, is not below 0.05 (*inconclusive at this n*; Var. Red. "
                           f"{r['var_red']:.1f}%); the arm was declared underpowered (67% power at α/3)."), text
    assert "holds both no reduction" not in text and text.count(f"{r['pm_low']:.1f}%") == 1


def test_lead_answer_gives_the_interval_once_where_it_lies_above_0():
    rng = np.random.default_rng(3)
    b = rng.standard_normal(50)
    t = _tta_primary(b, 0.5 * b + 0.1 * rng.standard_normal(50), p_holm=1e-9)
    r = t.iloc[-1]
    text = second.lead_answer(t, 0.671)
    assert r["pm_low"] > 0 and text.count(f"{r['pm_low']:.1f}%") == 1, text
    assert text.endswith(f"paired 95% interval {r['pm_low']:.1f}% to {r['pm_high']:.1f}%, Holm p 1e-09).")


def test_lead_answer_is_empty_until_the_tta_arm_is_complete():
    import pandas as pd
    t = pd.DataFrame([{"test": "TTA arm", "pairs": 17, "of": 50, "pm_p_holm": np.nan,
                       "verdict": "pending: 17 of 50 pairs stored"}]).set_index("test")
    assert second.lead_answer(t, 0.67) == ""


def test_the_answer_box_adds_the_lead_below_the_figure_once_the_tta_arm_is_complete(monkeypatch):
    import pandas as pd
    from vml import book
    rng = np.random.default_rng(3)
    b = rng.standard_normal(50)
    v = 2.0 * b + 0.1 * rng.standard_normal(50)
    t = _tta_primary(b, v, p_holm=1e-9)
    monkeypatch.setattr(second, "primary_table", lambda profile, root=None: t)
    monkeypatch.setattr(second, "dose_table", lambda profile, root=None: pd.DataFrame(
        {"sd": [np.nan] * 4, "excursion": [np.nan] * 4}, index=[0, 1, *studies.SECOND_DOSES]))
    monkeypatch.setattr(second, "tta_declared_power", lambda profile, root=None: 0.67)
    assert book.doses_answer("cpu") == "**The TTA lead.** " + second.lead_answer(t, 0.67)
    assert book.doses_answer("cpu").startswith("**The TTA lead.** The TTA lead is dropped: on 50 new seed pairs")


def test_a_seed_with_a_failed_run_leaves_the_pairs_and_the_pairs_declared(monkeypatch):
    from types import SimpleNamespace as NS
    seeds = (1, 2, 3)
    items = [NS(tags={"arm": "tta"}, spec=NS(seed=s, loss=loss)) for s in seeds for loss in ("base", "vml")]
    ok = {"iters": {"loss": {"zlib_b64": "not decoded"}}, "test_loss": 1.0, "test_acc": 0.7,
          "epochs": [{"train_loss": 1.2, "test_loss": 1.0}]}
    broken = {**ok, "epochs": [{"train_loss": float("nan"), "test_loss": 1.0}]}  # as `store.read(arrays=False)` gives
    recs = [(i, broken if (i.spec.seed, i.spec.loss) == (2, "vml") else ok) for i in items]
    monkeypatch.setattr(second, "get_study", lambda name: NS(grid=lambda profile: items))
    monkeypatch.setattr(second, "stored_runs", lambda study, profile, root=None, arrays=True: iter(recs))
    b, v, n = second.pairs("second-test", lambda i: True)
    assert len(b) == len(v) == n == 2  # seed 2 is out of both: the test is complete with its 2 other pairs


# ----------------------------------------------------------------------------- what a follow-up would take

def _pairs_by_hand(var_red: float, rho: float, power: float = 0.8, alpha: float = 0.05) -> int:
    """The normal approximation solved for n: Fisher's z of the sums-differences correlation q of SD ratio
    r and pair correlation rho, q = (r² − 1) / sqrt((1 + r²)² − 4ρ²r²), needs |atanh q|·sqrt(n − 3) ≥
    z_{α/2} + z_β (the far tail, below 1e-6 here, ignored)."""
    r = 1 - var_red / 100
    q = (r * r - 1) / math.sqrt((1 + r * r) ** 2 - 4 * rho * rho * r * r)
    return math.ceil(((st.norm.isf(alpha / 2) + st.norm.isf(1 - power)) / abs(math.atanh(q))) ** 2 + 3)


@pytest.mark.parametrize("var_red, rho", [(33.6, 0.17), (20.0, 0.17), (33.3, 0.48), (-50.0, 0.0)])
def test_pairs_for_power_solves_the_power_formula_for_n(var_red, rho):
    assert second.pairs_for_power(var_red, rho) == _pairs_by_hand(var_red, rho)


@pytest.mark.parametrize("bad", [0.0, 100.0, 150.0, float("nan")])
def test_pairs_for_power_refuses_a_size_no_n_detects_in_one_line(bad):
    with pytest.raises(ValueError, match=r"^var_red=.*must be non-zero and below 100"):
        second.pairs_for_power(bad, 0.2)


def test_follow_up_sizes_a_new_study_of_the_lead_at_the_arms_correlation_and_median_run_time(monkeypatch):
    from types import SimpleNamespace as NS
    rng = np.random.default_rng(3)
    b = rng.standard_normal(50)
    t = _tta_primary(b, 0.9 * b + 0.5 * rng.standard_normal(50), p_holm=0.6)
    rho = t.iloc[-1]["rho"]

    def run(epoch_s, pause=0.0):  # the cumulative wall time of 15 epochs, with a pause after the 7th
        return {"epochs": [{"wall_s": epoch_s * (e + 1) + (pause if e >= 7 else 0.0)} for e in range(15)]}
    recs = [(NS(tags={"arm": "tta"}, spec=NS(epochs=15)), run(60.0)),            # 15 min
            (NS(tags={"arm": "tta"}, spec=NS(epochs=15)), run(80.0, pause=9e4)),  # 20 min: the pause does not count
            (NS(tags={"arm": "tta"}, spec=NS(epochs=15)), run(96.0)),            # 24 min
            (NS(tags={"arm": "dose"}, spec=NS(epochs=5)), run(1.0))]             # not the TTA arm
    monkeypatch.setattr(second, "stored_runs", lambda study, profile, root=None, arrays=True: iter(recs))
    f = second.follow_up_table(t)
    assert f.attrs == {"rho": rho, "arm_pairs": 50, "run_minutes": 20.0, "runs_timed": 3}
    n_lead, n_margin = _pairs_by_hand(33.6, rho), _pairs_by_hand(20.0, rho)
    assert list(f["pairs"]) == [n_lead, n_margin] and list(f["runs"]) == [2 * n_lead, 2 * n_margin]
    assert list(f["CPU-hours"]) == pytest.approx([2 * n_lead * 20 / 60, 2 * n_margin * 20 / 60], rel=1e-12)
    assert second.follow_up_text(f) == (
        f"A new study of the lead, declared before its runs, with one Pitman-Morgan test at α = 0.05 (no family to "
        f"correct for), succeeds with 80% probability at the pair correlation this arm gave ({rho:.2f}) with these n: "
        f"to detect the lead's 33.6%, {n_lead} pairs ({2 * n_lead} runs, about {2 * n_lead / 3:.0f} CPU-hours) (this "
        f"arm had 50 pairs, tested at α/3); to detect a 20% reduction (the margin), or rule one out where VML changes "
        f"nothing, {n_margin} pairs ({2 * n_margin} runs, about {2 * n_margin / 3:.0f} CPU-hours). The CPU-hours are "
        f"at the median of this arm's 3 runs, 20 min of one core each.")


def test_the_pairs_that_detect_a_20_percent_reduction_also_rule_one_out_where_vml_changes_nothing():
    # ruling out 20% = the paired interval's upper end (Var. Red.) below 20%: simulated at the n found, with
    # equal SDs, that happens in 80% of studies; at half that n, far less often
    rho = 0.17
    n = second.pairs_for_power(20.0, rho)
    assert n == second.pairs_for_power(-25.0, rho)  # SD ratio 0.8 and 1 / 0.8: the same |log ratio|
    rng = np.random.default_rng(0)

    def ruled_out(n, sims=4000):
        hits = 0
        for _ in range(sims):
            z1, z2 = rng.standard_normal((2, n))
            est, _ = stats.pitman_morgan(z1, rho * z1 + math.sqrt(1 - rho * rho) * z2)
            hits += stats.var_reduction(1, est.low) < 20
        return hits / sims
    assert ruled_out(n) == pytest.approx(0.80, abs=0.025)
    assert ruled_out(n // 2) < 0.6


def test_follow_up_is_empty_until_the_tta_arm_is_complete():
    import pandas as pd
    t = pd.DataFrame([{"test": "TTA arm", "pairs": 17, "of": 50, "pm_p_holm": np.nan,
                       "verdict": "pending: 17 of 50 pairs stored"}]).set_index("test")
    assert second.follow_up_table(t).empty and second.follow_up_text(second.follow_up_table(t)) == ""


def test_the_page_floors_a_p_value_below_1e_6_and_gives_two_significant_figures_above():
    import pandas as pd
    assert [second.p_text(p) for p in (1.1e-38, 9.99e-7, 1e-6, 0.5986)] == ["< 1e-06", "< 1e-06", "1e-06", "0.6"]
    t = pd.DataFrame([{"test": "x", "pairs": 50, "of": 50, "base_sd": 0.73, "vml_sd": 8.74, "rho": -0.06,
                       "var_red": -1098.5, "pm_low": -1495.0, "pm_high": -800.5, "pm_p_holm": 1.1e-38,
                       "verdict": "opposite"}]).set_index("test")
    assert second.readable(t).loc["x", "Holm p"] == "< 1e-06"


def test_every_deviation_is_a_commit_after_the_preregistration_in_order_and_the_chapter_lists_them():
    import datetime as dt
    import json
    pre = dt.datetime.fromisoformat(_declared(second.PREREGISTRATION, "Pre-registration of the second test"))
    times = []
    for commit, what, when, effect in second.DEVIATIONS:
        got = _git("show", "-s", "--format=%cI", commit)
        assert got, f"{commit} is not a commit of this history"
        times.append(dt.datetime.fromisoformat(got))
        assert what and when and effect
    assert pre < times[0] and times == sorted(times)
    # the wording of the machine check's reading changed before its last runs were stored: some of its records
    # were saved from a descendant of that commit (a record names the HEAD it was saved from)
    saved_from = [store.read(i.spec, arrays=False)["git_commit"].removesuffix("-dirty")
                  for i in studies.get_study("machine-check").grid("cpu") if store.exists(i.spec)]
    assert any(_git("merge-base", "--is-ancestor", "9ddc545", c) is not None for c in saved_from)
    nb = json.loads((store.REPO_ROOT / "notebooks" / "07c-second-test.ipynb").read_text())
    assert "second.deviations_table()" in "".join("".join(c["source"]) for c in nb["cells"])
