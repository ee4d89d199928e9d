"""vml.results on a small fake store written in tmp_path: tables checked against hand-computed values."""
import math
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from vml import studies, results, store
from vml.analysis import decisive
from vml.studies import get_study

PROFILE = "smoke"  # smoke grids: seeds 1-2 per arm
N_TEST = 8
LABELS = np.array([0, 1, 2, 0, 1, 2, 0, 1], dtype=np.int64)


@dataclass
class Record:
    """The fields of a `vml.train.RunRecord` that `store.save` reads: a stored run without training."""

    spec: Any
    scalars: dict
    preds: np.ndarray
    probs: np.ndarray | None
    iters: dict
    labels: np.ndarray = field(default_factory=lambda: LABELS)

    @property
    def ema_preds(self):
        return self.preds

    @property
    def tta_preds(self):
        return self.preds

    def to_json_dict(self):
        return self.scalars


def write_record(root, spec, test_acc, *, ema_acc=None, tta_acc=None, wall_s=10.0, epochs=None,
                 iters=None, preds=None, probs=None, machine=None):
    """Store one run through `store.save`, as a sweep would, with the given scalars and arrays."""
    scalars = {"test_acc": test_acc, "test_loss": 1.0, "ema_acc": test_acc if ema_acc is None else ema_acc,
               "tta_acc": test_acc if tta_acc is None else tta_acc, "tta_views": 2, "wall_s": wall_s,
               "epochs": epochs or [], "machine": machine}
    iters = iters or {"loss": np.zeros(4), "lambda": np.zeros(4), "delta": np.zeros(4), "sigma": np.zeros(4)}
    preds = np.asarray(preds if preds is not None else LABELS, dtype=np.int64)
    store.save(Record(spec, scalars, preds, probs, iters), root)


def pool_specs(loss):
    return {i.spec.seed: i.spec for i in get_study("seed-groups").grid(PROFILE) if i.spec.loss == loss}


def test_load_returns_tidy_rows_for_a_study(tmp_path):
    grid = get_study("sources").grid("smoke")
    for item in grid[:3]:
        write_record(tmp_path, item.spec, 0.25 + item.spec.seed / 100, wall_s=1.5)
    df = results.load("sources", "smoke", root=tmp_path)
    assert list(zip(df["loss"], df["vary"], df["seed"], df["test_acc"])) == [
        ("base", "all", 1, 0.26), ("vml", "all", 1, 0.26), ("base", "all", 2, 0.27)]  # grid order
    assert list(df["key"]) == [i.spec.key() for i in grid[:3]] and (df["wall_s"] == 1.5).all()
    assert list(df["tta_views"]) == [2, 2, 2] and df["ema_acc"].equals(df["test_acc"])
    empty = results.load("sources", "smoke", root=tmp_path / "empty")  # same columns, no rows
    assert empty.empty and list(empty.columns) == list(df.columns)  # (sources has no tags)


def test_compare_arms_by_hand():
    r = results.compare_arms([80.0, 81.0, 82.0], [80.0, 80.5, 81.0], claimed=33.3)
    assert r["n_base"] == 3 and r["n_vml"] == 3
    assert r["base_sd"] == pytest.approx(1.0) and r["vml_sd"] == pytest.approx(0.5)
    assert r["var_red"] == pytest.approx(50.0)
    assert r["mean_diff"] == pytest.approx(-0.5)
    # exact F interval with (2, 2) df: ratio 0.5 / sqrt(F quantiles); F_0.975(2,2) = 39, F_0.025 = 1/39
    assert r["var_red_low"] == pytest.approx(100 * (1 - 0.5 * math.sqrt(39)), abs=1e-6)
    assert r["var_red_high"] == pytest.approx(100 * (1 - 0.5 / math.sqrt(39)), abs=1e-6)
    assert r["verdict"] == "inconclusive at this n"
    assert results.compare_arms([], [])["verdict"] == results.NO_RUNS
    assert results.compare_arms([80.0], [80.0, 81.0])["verdict"] == results.TOO_FEW


def test_pool_tables_from_fake_store(tmp_path):
    base, vml = pool_specs("base"), pool_specs("vml")
    write_record(tmp_path, base[1], 0.80, ema_acc=0.805, tta_acc=0.81, wall_s=100)
    write_record(tmp_path, base[2], 0.82, ema_acc=0.815, tta_acc=0.81, wall_s=120)
    write_record(tmp_path, vml[1], 0.81, wall_s=110)
    # Table 3 needs 5 seeds: the smoke pool has 2, so every size is "too few"
    t3 = results.seed_groups_table(PROFILE, tmp_path)
    assert list(t3["verdict"]) == [f"too few runs (need {k} per arm)" for k in (5, 10, 15, 20)]
    assert list(t3["paper_var_red"]) == [33.3, 18.0, 10.5, 3.0]
    # one VML run: no SD yet
    t4 = results.remedies_table(PROFILE, tmp_path, ensemble_sizes=(2,)).set_index("method")
    assert t4.loc["Base (single model)", "sd"] == pytest.approx(math.sqrt(2))  # SD of 80, 82
    assert t4.loc["VML", "verdict"] == "too few runs (need 2)"
    assert t4.loc["EMA weights", "sd"] == pytest.approx(math.sqrt(0.5))       # SD of 80.5, 81.5
    assert t4.loc["EMA weights", "var_red"] == pytest.approx(50.0)
    assert t4.loc["TTA (K=2 views)", "sd"] == pytest.approx(0.0)
    w = results.wall_times(PROFILE, tmp_path).set_index("loss")
    assert w.loc["base", "median_s"] == 110 and w.loc["vml", "median_s"] == 110
    assert w.loc["vml", "ratio_to_base"] == 1.0
    write_record(tmp_path, vml[2], 0.815)
    s = results.seed_table(PROFILE, tmp_path).set_index(["arm", "seeds"])
    assert s.loc[("VML", "all stored"), "n"] == 2
    assert s.loc[("VML", "1-5"), "sd"] == pytest.approx(math.sqrt(0.125))  # SD of 81, 81.5
    assert s.loc[("Base", "1-5"), "mean"] == pytest.approx(81.0)
    eff = results.seed_effect_table(PROFILE, tmp_path).set_index("arm")
    assert eff.loc["Base", "ours_pp"] == pytest.approx(2.0) and eff.loc["VML", "ours_pp"] == pytest.approx(0.5)
    miss = results.missing_runs("seed-groups", PROFILE, tmp_path)
    assert list(miss["stored"]) == [2, 2] and list(miss["missing seeds"]) == ["none", "none"]


def test_missing_runs_lists_seed_ranges(tmp_path):
    assert results._ranges([1, 2, 3, 7, 9, 10]) == "1-3, 7, 9-10"
    write_record(tmp_path, pool_specs("vml")[2], 0.8)
    m = results.missing_runs("seed-groups", PROFILE, tmp_path).set_index("loss")
    assert m.loc["base", "missing seeds"] == "1-2" and m.loc["vml", "missing seeds"] == "1"
    assert m.loc["vml", "stored"] == 1 and m.loc["vml", "runs"] == 2


def test_ensembles_mean_and_vote_by_hand():
    # 3 classes, 4 examples with labels 0, 1, 2, 0
    y = np.array([0, 1, 2, 0])
    p1 = np.array([[.6, .3, .1], [.2, .5, .3], [.5, .1, .4], [.4, .5, .1]])
    p2 = np.array([[.2, .7, .1], [.1, .8, .1], [.1, .1, .8], [.5, .2, .3]])
    p3 = np.array([[.7, .2, .1], [.6, .3, .1], [.3, .3, .4], [.2, .7, .1]])
    # mean of p1, p2: [.4,.5,.1] -> 1 (wrong), [.15,.65,.2] -> 1, [.3,.1,.6] -> 2, [.45,.35,.2] -> 0
    acc = results.ensemble_accuracies([p1, p2], y, 2, "mean")
    assert acc.tolist() == [0.75]
    # votes of p1, p2, p3: ex0 0,1,0 -> 0; ex1 1,1,0 -> 1; ex2 0,2,2 -> 2; ex3 1,0,1 -> 1 (wrong)
    assert results.ensemble_accuracies([p1, p2, p3], y, 3, "vote").tolist() == [0.75]
    # two-member vote ties are broken by the mean probability: ex0 votes 0 and 1, mean .4 vs .5 -> 1
    assert results.ensemble_accuracies([p1, p2], y, 2, "vote").tolist() == [0.75]
    # disjoint ensembles: 3 runs, size 1 -> three "ensembles" = the runs themselves
    # (p1 misses ex2, ex3; p2 misses ex0; p3 misses ex1, ex3)
    assert results.ensemble_accuracies([p1, p2, p3], y, 1).tolist() == [0.5, 0.75, 0.5]
    assert results.ensemble_accuracies([p1, p2, p3], y, 2).size == 1


def test_sources_table_matches_paper_rows(tmp_path):
    grid = [i.spec for i in get_study("sources").grid(PROFILE)]
    acc = {("base", 1): 0.80, ("base", 2): 0.82, ("vml", 1): 0.80, ("vml", 2): 0.81}
    for spec in grid:
        if spec.vary == "aug":
            write_record(tmp_path, spec, acc[(spec.loss, spec.seed)])
    t = results.sources_table(PROFILE, tmp_path).set_index("source")
    assert list(t.index) == ["All", "Init", "Aug", "Shuf"]
    assert t.loc["Aug", "var_red"] == pytest.approx(50.0)
    assert t.loc["Aug", "paper_var_red"] == 74.0 and t.loc["Init", "verdict"] == results.NO_RUNS
    # (1, 1) df: the F interval is enormous, the verdict cannot be anything but inconclusive
    assert t.loc["Aug", "verdict"] == "inconclusive at this n"
    d = results.display_table(t.reset_index(), ["source"])
    assert d.loc["Aug", "ours Base"] == "81.00\u00a0±\u00a01.414" and d.loc["Aug", "n (B/V)"] == "2/2"
    assert d.loc["All", "ours Base"] == "–"


def test_architectures_table_names_and_data(tmp_path):
    t = results.architectures_table(PROFILE, tmp_path)
    assert list(t["Model"]) == ["ResNet-14", "VGG-16", "ShuffleNet-V2", "MobileNetV2"]
    assert (t["verdict"] == results.NO_RUNS).all()
    assert t["paper_var_red"].isna().all()  # smoke data is synthetic: no paper row to match


def test_run_cost_table_by_hand(tmp_path):
    walls = {("base", 1): 10.0, ("base", 2): 30.0, ("vml", 1): 12.0, ("vml", 2): 50.0}
    for loss, specs in (("base", pool_specs("base")), ("vml", pool_specs("vml"))):
        for seed, spec in specs.items():
            write_record(tmp_path, spec, 0.5 + seed / 10, wall_s=walls[loss, seed])
    r14 = next(i.spec for i in get_study("architectures").grid(PROFILE) if i.spec.model == "resnet14")
    write_record(tmp_path, r14, 0.25, wall_s=100.0)
    t = results.run_cost_table(PROFILE, tmp_path)
    assert list(t.index) == ["tiny", "ResNet-14"] and list(t["runs"]) == [4, 1]
    tiny = t.loc["tiny"]
    assert (tiny["wall Base (s)"], tiny["wall VML (s)"], tiny["wall min (s)"], tiny["wall max (s)"]) == (20, 31, 10, 50)
    assert (tiny["acc min (%)"], tiny["acc max (%)"]) == pytest.approx((60, 70))
    assert t.loc["ResNet-14", "precision"] == r14.precision and math.isnan(t.loc["ResNet-14", "wall VML (s)"])


def test_epoch_series_and_reactivity(tmp_path):
    lam = [[0.1, 0.1, 0.3, 0.2, 0.6, 0.4], [0.1, 0.1, 0.2, 0.4, 0.3, 0.5]]
    rng = np.random.default_rng(0)
    for seed, l in zip((2, 1), lam):  # written out of order: series come back in seed order
        epochs = [{"epoch": k + 1, "lambda_mean": x, "test_loss": 1.0 + rng.random()} for k, x in enumerate(l)]
        write_record(tmp_path, pool_specs("vml")[seed], 0.8, epochs=epochs)
    seeds, lam_k, loss_k = results.epoch_series("vml", PROFILE, tmp_path)
    assert seeds.tolist() == [1, 2] and lam_k[0].tolist() == lam[1]
    res, note = results.reactivity_summary("vml", PROFILE, tmp_path)
    assert res is not None and note == "2 runs x 6 epochs"
    # 6 epochs -> 5 differences: lags -2..2 have >= 3 pairs, the rest are undefined
    assert np.isfinite(res.r).sum() == 5 and res.n == 4
    per = results.reactivity_per_seed_table("vml", PROFILE, tmp_path)
    assert per["seed"].tolist() == [1, 2] and (per["defined_lags"] == 5).all()
    none, why = results.reactivity_summary("base", PROFILE, tmp_path)
    assert none is None and why == results.NO_RUNS


def test_iteration_ccf_finds_a_one_step_lead(tmp_path):
    rng = np.random.default_rng(1)
    spec = pool_specs("vml")[1]
    w = spec.vml.warmup_steps
    t = 400
    lam = np.r_[np.full(w, 0.1), 0.1 + np.cumsum(rng.normal(0, 0.01, t))]
    d_lam = np.diff(lam[w:])
    d_loss = np.r_[0.0, d_lam[:-1]]  # loss changes copy lambda's changes one step later
    loss = np.r_[np.ones(w), 1 + np.r_[0.0, np.cumsum(d_loss)]]
    write_record(tmp_path, spec, 0.8, iters={"loss": loss, "lambda": lam, "delta": lam, "sigma": lam})
    c = results.iteration_ccf("vml", PROFILE, tmp_path, max_lag=3).set_index("lag")
    assert c.loc[1, "mean_r"] == pytest.approx(1.0, abs=1e-6) and c.loc[1, "runs"] == 1
    assert abs(c.loc[0, "mean_r"]) < 0.2
    assert c.loc[0, "noise_band"] == pytest.approx(1.96 / math.sqrt(t - 1))


def test_churn_and_noise_floor_by_hand(tmp_path):
    base = pool_specs("base")
    wrong = LABELS.copy()
    wrong[:2] = (wrong[:2] + 1) % 3  # run 2 misses the first two examples
    write_record(tmp_path, base[1], 1.0, preds=LABELS)
    write_record(tmp_path, base[2], 0.75, preds=wrong)
    c = results.churn_table(PROFILE, tmp_path).set_index("arm")
    assert c.loc["Base", "churn %"] == pytest.approx(25.0) and np.isnan(c.loc["VML", "churn %"])
    nf = results.noise_floor_table(PROFILE, tmp_path).set_index("setting")
    # accuracies 1.0 and 0.75 -> SD 0.1768; two examples with per-example variance 0.5 (ddof=1)
    assert nf.loc["Base", "observed_sd"] == pytest.approx(100 * 0.25 / math.sqrt(2))
    assert nf.loc["Base", "independent_sd"] == pytest.approx(100 * math.sqrt(2 * 0.5) / N_TEST)


def test_ablation_table_and_verdicts(tmp_path):
    items = get_study("ablations").grid(PROFILE)
    accs = {1: 0.80, 2: 0.82}
    for item in items:
        if item.tags["knob"] == "alpha":
            spread = 1.0 if item.tags["value"] != 0.05 else 0.1
            shift = -0.05 if item.tags["value"] == 0.2 else 0.0  # SLA020 "breaks training": 5 pp lower
            write_record(tmp_path, item.spec, 0.81 + shift + (accs[item.spec.seed] - 0.81) * spread)
    t = results.ablation_table(PROFILE, tmp_path)
    a = t[t["knob"] == "alpha"].set_index("tag")
    assert a.loc["SLA005", "sd"] == pytest.approx(0.1 * math.sqrt(2)) and a.loc["SLA005", "front"]
    assert a.loc["SLA005", "default"] and not a.loc["SLA001", "default"]
    # the default setting of every knob is one spec (SLB020 = SLA005): it is shared, the rest is empty
    b = t[t["knob"] == "beta"].set_index("tag")["n"]
    assert b["SLB020"] == 2 and (b.drop("SLB020") == 0).all()
    d = results.ablation_display(t)
    lo, hi = a.loc["SLA005", ["sd_low", "sd_high"]]
    assert d.loc[("alpha", "SLA005"), "SD pp [95% CI]"] == f"0.141\u00a0[{lo:.2f},\u00a0{hi:.2f}]"
    assert d.loc[("alpha", "SLA005"), "default"] == "★" and d.loc[("alpha", "SLA001"), "default"] == ""
    assert d.loc[("beta", "SLB005"), "mean %"] == "–" and d.loc[("beta", "SLB005"), "n"] == 0
    v = results.ablation_verdicts(t).set_index("knob")
    assert v.loc["alpha", "lowest SD"] == "SLA005" and v.loc["beta", "verdict"] == "too few settings with 2+ runs (need 2)"
    # Bartlett on SDs (0.14, 1.41, 1.41, 1.41) with 1 df each: p by hand
    s2 = np.array([0.02, 2, 2, 2])
    sp2 = s2.mean()
    stat = (4 * math.log(sp2) - np.log(s2).sum()) / (1 + (4 - 1 / 4) / 9)
    from scipy import stats as st
    assert v.loc["alpha", "bartlett_p"] == pytest.approx(st.chi2.sf(stat, 3))
    assert v.loc["alpha", "bartlett_p"] == pytest.approx(st.bartlett([80, 82], [80.9, 81.1], [80, 82],
                                                                     [80, 82]).pvalue)
    # the sensitivity test drops SLA020 (5 pp below the default's mean, beyond BROKEN_PP = 2)
    assert v.loc["alpha", "broken"] == "SLA020" and v.loc["beta", "broken"] == ""
    assert v.loc["alpha", "bartlett_p_working"] == pytest.approx(
        st.bartlett([80, 82], [80.9, 81.1], [80, 82]).pvalue)
    assert np.isnan(v.loc["beta", "bartlett_p_working"])


def test_seed_chapter_tables():
    ci = results.sd_ci_table((5, 20)).set_index("n per arm")
    # printed table quantiles: chi2_{0.025}(4) = 0.4844, chi2_{0.975}(4) = 11.143, F_{0.975}(19, 19) = 2.5265
    assert ci.loc[5, "SD high (x SD)"] == pytest.approx(math.sqrt(4 / 0.4844), rel=1e-4)   # 2.874
    assert ci.loc[5, "SD low (x SD)"] == pytest.approx(math.sqrt(4 / 11.143), rel=1e-4)    # 0.599
    assert ci.loc[20, "ratio low (x ratio)"] == pytest.approx(1 / math.sqrt(2.5265), rel=1e-4)  # 0.629
    assert ci.loc[20, "ratio high (x ratio)"] == pytest.approx(math.sqrt(2.5265), rel=1e-4)
    p = results.power_table((0.67,)).iloc[0]
    assert 0 < p["power n=5"] < p["power n=20"] < 1 and p["seeds for 80%"] > 20


def test_empty_store_gives_tables_not_errors(tmp_path):
    assert results.pool(PROFILE, tmp_path).empty
    assert (results.sources_table(PROFILE, tmp_path)["verdict"] == results.NO_RUNS).all()
    r = results.remedies_table(PROFILE, tmp_path)
    assert isinstance(r, pd.DataFrame) and r["verdict"].iloc[1] == results.NO_RUNS
    assert results.iteration_ccf("vml", PROFILE, tmp_path)["runs"].eq(0).all()
    assert results.churn_table(PROFILE, tmp_path)["runs"].tolist() == [0, 0]
    assert results.kde_groups(PROFILE, tmp_path)[1] == ()


def test_reactivity_table_rows_by_hand():
    per_seed = pd.DataFrame({"seed": [1, 2, 3, 4], "tau_star": [1, 1, 0, 1], "r_lag1": [0.2, 0.4, 0.6, 0.8],
                             "defined_lags": [3, 3, 3, 3]})
    iters = pd.DataFrame({"lag": [-1, 0, 1], "runs": 4, "mean_r": [0.0, 0.5, 0.1], "low": [-0.1, 0.4, 0.0],
                          "high": [0.1, 0.6, 0.2], "noise_band": 0.1})
    t = results.reactivity_table(None, per_seed, iters, note="too short").set_index("quantity")
    assert t.iloc[0]["verdict"] == "cannot be computed: too few epochs"
    row = t.loc["mean per-seed r at τ = +1 (4 seeds)"]
    # mean 0.5, SD 0.2582, t_0.975(3) = 3.1824: half-width 0.4108
    assert row["ours"] == "0.500" and row["95% CI"] == "[0.089,\u00a00.911]"
    assert row["verdict"] == "supported"
    share = t.loc["share of seeds whose CCF peaks at τ = +1 (chance 0.33)"]
    assert share["ours"] == "3/4" and share["verdict"] == "inconclusive at this n"  # CP [0.19, 0.99]
    assert t.loc["per-iteration r at τ = +0 step (ours only; 4 runs)", "ours"] == "0.500"


def test_reactivity_arms_table(tmp_path):
    lam = [0.1, 0.1, 0.3, 0.2, 0.6]
    for seed, loss in ((1, [1.0, 0.9, 0.7, 0.6, 0.5]), (2, [1.0, 0.8, 0.75, 0.7, 0.4])):
        epochs = [{"lambda_mean": a, "test_loss": b} for a, b in zip(lam, loss)]
        write_record(tmp_path, pool_specs("base")[seed], 0.8, epochs=epochs)
    t = results.reactivity_arms_table(PROFILE, tmp_path).set_index("arm")
    assert t.loc["VML", "runs"] == 0 and t.loc["Base (control)", "runs"] == 2
    # lag +1 pairs (dlam_k, dloss_k+1): dlam = 0, .2, -.1, .4
    r1 = np.corrcoef([0, 0.2, -0.1], [-0.2, -0.1, -0.1])[0, 1]
    r2 = np.corrcoef([0, 0.2, -0.1], [-0.05, -0.05, -0.3])[0, 1]
    assert t.loc["Base (control)", "mean r at +1"] == pytest.approx((r1 + r2) / 2)


def test_status_line(tmp_path):
    write_record(tmp_path, pool_specs("base")[1], 0.8)
    line = results.status_line("seed-groups", PROFILE, tmp_path)
    assert line.startswith("The store holds 1 of the 4 runs of the `seed-groups` study (Base 1/2, VML 0/2);\n")
    assert "partial" in line


def test_status_line_says_which_datasets_are_complete(tmp_path):
    grid = [i.spec for i in studies.get_study("architectures").grid("cpu")]
    c10 = [sp for sp in grid if sp.dataset == "cifar10"]
    for sp in c10[:-1]:
        write_record(tmp_path, sp, 0.7)
    assert "partial" in results.status_line("architectures", "cpu", tmp_path)
    write_record(tmp_path, c10[-1], 0.7)
    line = results.status_line("architectures", "cpu", tmp_path)
    assert line.endswith(f"complete for cifar10; none of the {len(grid) - len(c10)} runs on cifar100 is stored.")


def test_status_line_counts_shared_runs_once(tmp_path):
    # the smoke ablation grid: 21 settings x 2 seeds, the 5 default settings are one spec
    line = results.status_line("ablations", PROFILE, tmp_path)
    assert line.startswith("The store holds 0 of the 34 runs of the `ablations` study (VML 0/34)")


def test_headline_table_from_fake_store(tmp_path):
    base, vml = pool_specs("base"), pool_specs("vml")
    for spec, acc in ((base[1], 0.80), (base[2], 0.82), (vml[1], 0.80), (vml[2], 0.81)):
        write_record(tmp_path, spec, acc)
    t = results.headline_table(PROFILE, tmp_path, n_boot=200)
    assert len(t) == 10 and list(t.columns) == ["paper", "ours [95% CI]", "verdict", "why", "p [Holm]"]
    rows = list(t.index)
    sd1, mean1, arch10, arch100, sd20, claim20, mean20, react, cost, effect = (t.loc[r] for r in rows)
    # SDs 1.414 vs 0.707: Var. Red. 50%, (1, 1) df, so no verdict but inconclusive is possible
    assert sd1["ours [95% CI]"].startswith("50%") and sd1["ours [95% CI]"].endswith("(n = 2/2)")
    assert sd1["verdict"] == "inconclusive at this n" and sd1["paper"] == "33.3%"
    # Welch interval of 80.5 - 81 with 1 df contains 0 and is far wider than ±0.5 pp
    assert mean1["ours [95% CI]"].startswith("81.0 → 80.5% (Δ -0.50")
    assert mean1["verdict"] == "inconclusive at this n"
    assert arch10["why"] == results.NO_RUNS and arch100["why"] == results.NO_RUNS
    assert sd20["why"] == "too few runs (need 20 per arm)" and mean20["ours [95% CI]"] == "–"
    assert claim20["why"] == sd20["why"] and claim20["verdict"] == "without a verdict"
    assert react["why"].startswith("cannot be computed") and cost["paper"] == "1× / 1×"
    assert cost["why"] == results.NO_RUNS  # no step-cost measurement under this root
    assert effect["ours [95% CI]"].startswith("2.00 → 1.00 pp")
    # Holm over the two rows with a test: F (var 0.5 vs 2, (1, 1) df) and Welch; the larger p stays
    p_f = 2 * min(st.f.cdf(0.25, 1, 1), st.f.sf(0.25, 1, 1))
    p_w = st.ttest_ind([80.0, 82.0], [80.0, 81.0], equal_var=False).pvalue
    lo, hi = sorted((p_f, p_w))
    adj = {lo: min(1, 2 * lo), hi: max(min(1, 2 * lo), hi)}
    assert sd1["p [Holm]"] == f"{p_f:.2g}\u00a0[{adj[p_f]:.2g}]" and mean1["p [Holm]"] == f"{p_w:.2g}\u00a0[{adj[p_w]:.2g}]"
    assert (t["p [Holm]"].iloc[2:] == "–").all()
    assert results.headline_summary(t) == (
        "Of the paper's 10 headline claims, on our runs: 2 inconclusive at this n (Table 1, mean unchanged "
        "(5 seeds)); 8 without a verdict (Table 2 (CIFAR-10), Table 2 (CIFAR-100), Table 3, 33% (abstract), "
        "mean unchanged (20 seeds), Fig. 1, no extra cost, seed effect size).")


def test_headline_table_on_an_empty_store(tmp_path):
    t = results.headline_table(PROFILE, tmp_path, n_boot=200)
    assert (t["verdict"].drop(t.index[8]) != "supported").all()
    assert t.iloc[0]["why"] == results.NO_RUNS and t.iloc[0]["ours [95% CI]"] == "– (n = 0/0)"


def test_vpl_table_compares_vpl_off_and_on(tmp_path):
    grid = get_study("vpl").grid(PROFILE)
    acc = {(0.0, 1): 0.80, (0.0, 2): 0.82, (0.05, 1): 0.80, (0.05, 2): 0.81}
    for item in grid:
        write_record(tmp_path, item.spec, acc[(item.tags["vpl_weight"], item.spec.seed)])
    t = results.vpl_table(PROFILE, tmp_path, n_boot=200).iloc[0]
    assert t["comparison"] == "VML + VPL (weight 0.05) vs VML"
    assert (t["n_base"], t["n_vml"]) == (2, 2)
    assert t["base_sd"] == pytest.approx(math.sqrt(2)) and t["var_red"] == pytest.approx(50.0)
    assert t["mean_diff"] == pytest.approx(-0.5) and t["verdict"] == "inconclusive at this n"
    assert results.vpl_table(PROFILE, tmp_path / "empty").iloc[0]["verdict"] == results.NO_RUNS


def test_display_halves_split_the_columns(tmp_path):
    t = results.sources_table(PROFILE, tmp_path, n_boot=200)
    whole = results.display_table(t, ["source"])
    acc = results.display_table(t, ["source"], part="accuracy")
    spr = results.display_table(t, ["source"], part="spread")
    ver = results.display_table(t, ["source"], part="verdict")
    assert list(acc.columns) == ["n (B/V)", "paper Base", "ours Base", "paper VML", "ours VML"]
    assert list(spr.columns) == ["n (B/V)", "Base floor / dist. SD", "VML floor / dist. SD",
                                 "95% CI (bootstrap)"]
    assert list(ver.columns)[0] == "n (B/V)" and list(ver.columns)[-1] == "verdict"
    assert set(acc.columns) | set(spr.columns) | set(ver.columns) == set(whole.columns)
    assert set(acc.columns) & set(ver.columns) == set(acc.columns) & set(spr.columns) == {"n (B/V)"}
    assert set(spr.columns) & set(ver.columns) == {"n (B/V)"}
    with pytest.raises(ValueError, match="part='half' is not allowed"):
        results.display_table(t, ["source"], part="half")


def test_display_names_the_bootstrap_verdict_where_it_differs_and_shows_floors(tmp_path):
    t = results.sources_table(PROFILE, tmp_path, n_boot=200).iloc[:2].copy()
    t["verdict"], t["robust_verdict"] = ["inconclusive at this n", "not supported"], ["not supported"] * 2
    ver = results.display_table(t, ["source"], part="verdict")
    assert list(ver["verdict"]) == ["inconclusive at this n (bootstrap: not supported)", "not supported"]
    t["base_floor"], t["base_dist_sd"] = [0.25, np.nan], [0.5, np.nan]
    spr = results.display_table(t, ["source"], part="spread")
    assert list(spr["Base floor / dist. SD"]) == ["0.25\u00a0/\u00a00.50", "–"]


def test_architectures_headline_row_gives_each_network_its_n():
    t = pd.DataFrame({"Dataset": ["CIFAR-10"] * 2, "Model": ["ResNet-14", "VGG-16"], "var_red": [22.0, np.nan],
                      "var_red_low": [-140.0, np.nan], "var_red_high": [75.0, np.nan], "n_base": [5, 1],
                      "n_vml": [4, 1], "verdict": ["inconclusive at this n", results.TOO_FEW],
                      "paper_var_red": [33.3, 29.7]})
    row = results._architectures_row(t, "CIFAR-10", "29.7–74.4%")
    assert row["ours [95% CI]"] == "ResNet-14 22%\u00a0[-140,\u00a075] (n = 5/4) (1 of 2 networks)"
    assert row["verdict"] == "without a verdict" and row["why"] == "so far: 1× inconclusive at this n"


def test_a_claim_for_every_network_falls_with_one_network():
    inc, sup, small, opp = "inconclusive at this n", "supported", "smaller than claimed", "opposite"
    assert str(results.combine_verdicts(["A", "B", "C"], [inc, small, inc], True)) == \
        "smaller than claimed: on B (2× inconclusive at this n; 1× smaller than claimed)"
    assert results.combine_verdicts(["A", "B", "C"], [opp, small, inc], True).label == opp
    assert results.combine_verdicts(["A", "B"], [sup, small], False) == "so far: 1× supported; 1× smaller than claimed"
    assert str(results.combine_verdicts(["A", "B"], [sup, sup], True)) == "supported: on every network"
    assert str(results.combine_verdicts(["A", "B"], [sup, inc], True)) == "inconclusive at this n: 1× supported; 1× inconclusive at this n"
    assert results.combine_verdicts(["A"], [sup], False) == "so far: 1× supported"


def test_replication_table_rows_from_both_studies(tmp_path):
    from vml.studies import REPLICATION_MODEL
    old = [i.spec for i in get_study("architectures").grid(PROFILE) if i.spec.model == REPLICATION_MODEL]
    acc = {("base", 1): 0.80, ("base", 2): 0.82, ("vml", 1): 0.80, ("vml", 2): 0.81,
           ("base", 6): 0.79, ("base", 7): 0.81, ("vml", 6): 0.81, ("vml", 7): 0.81}
    for spec in old + [i.spec for i in get_study("replication").grid(PROFILE)]:
        write_record(tmp_path, spec, acc[(spec.loss, spec.seed)])
    t = results.replication_table(PROFILE, tmp_path, n_boot=200)
    assert list(t.index) == ["seeds 1-2 (Table 2)", "seeds 6-7 (new)", "seeds 1-2 and 6-7"]
    assert t.loc["seeds 1-2 (Table 2)", "var_red"] == pytest.approx(50.0)
    assert t.loc["seeds 6-7 (new)", "vml_sd"] == 0.0 and t.loc["seeds 6-7 (new)", "base_sd"] == pytest.approx(math.sqrt(2))
    both = t.loc["seeds 1-2 and 6-7"]
    assert (both["n_base"], both["n_vml"]) == (4, 4)
    assert both["base_sd"] == pytest.approx(np.std([80, 82, 79, 81], ddof=1))
    assert np.isnan(both["paper_var_red"])  # smoke data is synthetic: no paper number to test
    empty = results.replication_table(PROFILE, tmp_path / "empty")
    assert (empty["verdict"] == results.NO_RUNS).all()


@pytest.mark.parametrize("low, high, verdict", [(0.99, 1.015, "supported"), (1.03, 1.07, "opposite"),
                                                (0.98, 1.023, "inconclusive at this n")])
def test_step_cost_row_judges_the_interval_against_the_declared_two_percent(tmp_path, low, high, verdict):
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "loss_overhead.json").write_text(json.dumps(
        {"ratio_median": (low + high) / 2, "ratio_low": low, "ratio_high": high, "machine": {"cpu": "Some CPU"}}))
    row = results.headline_table(PROFILE, tmp_path, n_boot=200).iloc[8]
    assert row["verdict"] == verdict and "inside ±2.0%" in row["why"] if verdict == "supported" else True
    assert row["verdict"] == verdict
    assert row["ours [95% CI]"].startswith(f"training step {(low + high) / 2:.3f}× CE\u00a0[{low:.3f},\u00a0{high:.3f}] (Some CPU)")


def pilot_specs():
    return [i.spec for i in get_study("powered").grid(PROFILE) if i.tags.get("pilot")]


@pytest.mark.parametrize("wrong, ratio, rule", [
    # seed 2 misses examples 0 and 1: accuracies 100% and 75%, observed SD sqrt(0.03125) = 17.68 pp; floor:
    # two examples with across-run variance 0.5, sqrt(1 / 8²) = 12.5 pp; 1.41 x the floor: the long length
    (((), (0, 1)), math.sqrt(0.03125) / 0.125, studies.POWERED_EPOCHS_LONG),
    # each seed misses one example: equal accuracies, observed SD 0 against the same floor: the short length
    (((1,), (0,)), 0.0, studies.POWERED_EPOCHS_LONG_ALT),
])
def test_pilot_reads_its_spread_and_applies_the_declared_rule_once_complete(tmp_path, wrong, ratio, rule):
    specs = pilot_specs()
    assert [s.loss for s in specs] == ["base", "base"] and {s.epochs for s in specs} == {studies.POWERED_EPOCHS_LONG}
    for spec, miss in zip(specs, wrong):
        preds = LABELS.copy()
        preds[list(miss)] = (preds[list(miss)] + 1) % 3
        # cumulative wall times per epoch; the second epoch spans a pause: the median epoch is 2 min
        ends = [{"epoch": e + 1, "wall_s": w} for e, w in enumerate((60.0, 3660.0, 3780.0))]
        write_record(tmp_path, spec, 1 - len(miss) / N_TEST, preds=preds, wall_s=3780.0, epochs=ends)
        table, summary = decisive.pilot(PROFILE, tmp_path)
        assert list(table["epoch (min)"]) == [2.0] * len(table)
        if len(table) < len(specs):  # no statistics before the pilot is complete
            assert summary == {"runs": 1, "of": 2, "chosen": None}
            assert decisive.pilot_text(summary).startswith("1 of the pilot's 2 runs are stored.")
    assert summary["floor_sd"] == pytest.approx(12.5) and summary["ratio"] == pytest.approx(ratio)
    assert summary["rule"] == rule and summary["chosen"] is None
    assert decisive.pilot_text(summary).endswith(f"gives {rule} epochs. That length is not committed yet, "
                                                 "so the long arm's other runs are still held.")
    assert decisive.pilot_text({**summary, "chosen": 15}).endswith(
        "the length committed for the long arm." if rule == 15 else "the study does not follow its declared rule.")
    assert list(table["test acc (%)"]) == [100 * (1 - len(m) / N_TEST) for m in wrong]


def test_pilot_stays_the_same_runs_whatever_length_is_chosen(tmp_path, monkeypatch):
    before = [s.key() for s in pilot_specs()]
    monkeypatch.setitem(studies.POWERED_EPOCHS_LONG_CHOSEN, PROFILE, studies.POWERED_EPOCHS_LONG_ALT)
    assert [s.key() for s in pilot_specs()] == before
    assert decisive.pilot(PROFILE, tmp_path)[1]["chosen"] == studies.POWERED_EPOCHS_LONG_ALT


def test_budget_is_per_cpu_from_the_median_epoch_of_the_same_network(tmp_path):
    powered = get_study("powered").grid(PROFILE)
    small = get_study("reactivity-long").grid(PROFILE)
    assert powered[0].spec.model != small[0].spec.model and not small[0].spec.train_subset

    def ends(*epoch_s):  # cumulative wall times of the epochs
        return [{"epoch": e + 1, "wall_s": float(w)} for e, w in enumerate(np.cumsum(epoch_s))]

    # CPU "a": a ResNet run whose median epoch is 100 s (the 900 s epoch is a pause), a FastNet one of 10 s
    write_record(tmp_path, powered[0].spec, 0.5, epochs=ends(100, 900, 100), machine={"cpu": "a"})
    write_record(tmp_path, small[0].spec, 0.5, epochs=ends(10, 10), machine={"cpu": "a"})
    # CPU "b": a ResNet run only; a record that names no machine: a FastNet run only
    write_record(tmp_path, powered[1].spec, 0.5, epochs=ends(200, 200), machine={"cpu": "b"})
    write_record(tmp_path, small[1].spec, 0.5, epochs=ends(30, 30))
    missing = [i.spec for i in powered[2:] + small[2:]]
    resnet = sum(s.epochs for s in missing if s.model == powered[0].spec.model)
    fastnet = sum(s.epochs for s in missing if s.model == small[0].spec.model)
    t = decisive.budget_table(PROFILE, tmp_path)
    assert list(t.index) == ["a", "b", decisive.NOT_NAMED] and set(t["runs missing"]) == {len(missing)}
    assert t.loc["a", "CPU-hours"] == pytest.approx((100 * resnet + 10 * fastnet) / 3600)
    assert np.isnan(t.loc["b", "CPU-hours"]) and np.isnan(t.loc[decisive.NOT_NAMED, "CPU-hours"])
    assert list(t["runs timed"]) == [2, 1, 1]


def test_the_machines_table_counts_each_primary_tests_runs_per_machine_kind(tmp_path):
    # cpu grids: bf16 runs, so a run on fp32 kernels is a machine kind of its own
    short = [i.spec for i in get_study("powered").grid("cpu") if i.tags["arm"] == "short"]
    small = [i.spec for i in get_study("reactivity-long").grid("cpu")]
    assert short[0].precision == small[0].precision == "bf16"
    write_record(tmp_path, short[0], 0.5, machine={"cpu": "a", "bf16_kernels": "native"})
    write_record(tmp_path, short[1], 0.5, machine={"cpu": "a", "bf16_kernels": "fp32"})
    write_record(tmp_path, small[0], 0.5, machine={"cpu": "a", "bf16_kernels": "fp32"})
    write_record(tmp_path, small[1], 0.5, machine={"cpu": "a"})
    write_record(tmp_path, small[2], 0.5)
    t = decisive.machines_table("cpu", tmp_path)
    labels = [decisive.primary_label(s, a, "cpu") for s, a in decisive.PRIMARY]
    assert list(t.columns) == labels
    assert t.loc["a"].tolist() == [1, 0, 1]
    assert t.loc["a" + store.FP32_KERNELS].tolist() == [1, 0, 1]
    assert t.loc[decisive.NOT_NAMED].tolist() == [0, 0, 1]


def test_for_readers_names_columns_in_words_and_keeps_three_significant_figures():
    from vml.analysis.display import for_readers
    df = pd.DataFrame({"n_base": [5, 20], "base_sd": [0.72913, np.nan], "f_p": [1.0, 0.000123456],
                       "lag_sum": [-1621.968, 0.02049]}, index=pd.Index([1, 2], name="tau_star"))
    out = for_readers(df)
    assert list(out.columns) == ["runs Base", "SD Base (pp)", "F-test p", "lag sum"] and out.index.name == "τ*"
    assert out.loc[1].tolist() == ["5", "0.729", "1", "-1620"]  # positional, never "1.0000e+00" or "-1621.968"
    assert out.loc[2].tolist() == ["20", "–", "0.000123", "0.0205"]
