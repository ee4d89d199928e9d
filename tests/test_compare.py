"""`python -m vml compare`: the book's verdict table on a user's own CSVs, and its refusals."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st

from vml import stats
from vml.analysis import compare as cmp
from vml.cli import main


def _csv(path, rows, header="seed,acc"):
    path.write_text(header + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return str(path)


@pytest.fixture
def runs(tmp_path):
    rng = np.random.default_rng(0)
    b = 74 + 0.7 * rng.standard_normal(20)
    m = 74 + 0.5 * (0.8 * (b - 74) / 0.7 + 0.6 * rng.standard_normal(20))
    return (b, m, _csv(tmp_path / "b.csv", zip(range(1, 21), b)),
            _csv(tmp_path / "m.csv", zip(range(20, 0, -1), m[::-1])))  # other row order: pairing is by seed


def test_compare_pairs_by_seed_whatever_the_row_order(runs, capsys):
    b, m, fb, fm = runs
    assert main(["compare", fb, fm]) == 0
    out = cmp.compare(cmp.read_runs(fb), cmp.read_runs(fm), n_boot=500)["table"]["value"]
    assert out["pairs"] == 20 and out["pair correlation"] == pytest.approx(np.corrcoef(b, m)[0, 1])
    assert out["Pitman-Morgan p"] == pytest.approx(st.pearsonr(m + b, m - b).pvalue)
    assert out["F p"] == pytest.approx(stats.f_test(b, m)[1])
    assert out["units"] == "percent"
    assert "Against a claimed reduction of 33.3%" in capsys.readouterr().out


def test_without_seeds_the_analysis_is_unpaired_and_fractions_are_said(tmp_path):
    f = _csv(tmp_path / "a.csv", [[0.70], [0.72], [0.71], [0.69]], header="accuracy")
    g = _csv(tmp_path / "b.csv", [[0.70], [0.705], [0.71], [0.702]], header="accuracy")
    out = cmp.compare(cmp.read_runs(f), cmp.read_runs(g), n_boot=200)["table"]["value"]
    assert "pairs" not in out and out["units"] == "fractions, shown in pp"
    assert out["base SD"] == pytest.approx(100 * np.std([0.70, 0.72, 0.71, 0.69], ddof=1))


def test_predictions_add_the_floor(runs, tmp_path):
    b, m, fb, fm = runs
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 500)
    preds = [np.where(rng.random((20, 500)) < 0.74, labels, (labels + 1) % 10) for _ in range(2)]
    for name, x in (("pb.npy", preds[0]), ("pm.npy", preds[1]), ("l.npy", labels)):
        np.save(tmp_path / name, x)
    assert main(["compare", fb, fm, "--predictions", str(tmp_path / "pb.npy"), str(tmp_path / "pm.npy"),
                 "--labels", str(tmp_path / "l.npy")]) == 0
    out = cmp.compare(cmp.read_runs(fb), cmp.read_runs(fm), (preds[0] == labels, preds[1] == labels), n_boot=200)
    v = stats.test_set_variance(preds[0] == labels)
    assert out["table"]["value"]["base floor"] == pytest.approx(100 * v["independent_sd"])


@pytest.mark.parametrize("rows, header, message", [
    ([[1, 0.7], [2, "x"], [3, 0.71]], "seed,acc", "line 3, column 'acc': 'x' is not a number"),
    ([[1, 0.7], [1, 0.72], [3, 0.71]], "seed,acc", "repeats seed 1"),
    ([[1, 0.7], [2, 0.72]], "seed,acc", "has 2 run(s); at least 3 are needed"),
    ([[1, 0.7, 3], [2, 0.72, 4], [3, 0.71, 5]], "seed,a,b", "name the accuracy column"),
    ([[1.5, 0.7], [2, 0.72], [3, 0.71]], "seed,acc", "'1.5' is not a whole number"),
])
def test_bad_csvs_end_in_one_line_and_exit_2(tmp_path, runs, capsys, rows, header, message):
    bad = _csv(tmp_path / "bad.csv", rows, header)
    assert main(["compare", bad, runs[3]]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("python -m vml compare: error:")


def test_mismatched_prediction_shapes_are_refused(runs, tmp_path, capsys):
    np.save(tmp_path / "l.npy", np.zeros(100, dtype=int))
    np.save(tmp_path / "p.npy", np.zeros((20, 99), dtype=int))
    assert main(["compare", runs[2], runs[3], "--predictions", str(tmp_path / "p.npy"), str(tmp_path / "p.npy"),
                 "--labels", str(tmp_path / "l.npy")]) == 2
    assert "have shape (20, 99); need (runs, 100)" in capsys.readouterr().err


def test_smaller_than_claimed_says_no_reduction_is_established_where_the_interval_reaches_zero(tmp_path):
    rng = np.random.default_rng(1)
    b = 74 + 0.7 * rng.standard_normal(40)
    m = 74 + (b - 74) + 0.1 * rng.standard_normal(40)  # the same spread, tightly paired: 33.3% ruled out, 0 inside
    out = cmp.compare(cmp.read_runs(_csv(tmp_path / "b.csv", zip(range(1, 41), b))),
                      cmp.read_runs(_csv(tmp_path / "m.csv", zip(range(1, 41), m))), n_boot=200)
    v = out["table"]["value"]
    assert v["verdict"] == "smaller than claimed" and v["paired low"] <= 0 <= v["paired high"] < 33.3
    assert out["text"].startswith("Against a claimed reduction of 33.3%: smaller than claimed (the claim is ruled "
                                  "out; no reduction is established). Var. Red.")
