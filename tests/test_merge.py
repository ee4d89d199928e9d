"""`python -m vml merge`: records of another store join this one, checked, never replacing one here."""
import json

import numpy as np
import pytest
from test_store import FakeRecord  # tests/ is on the path (rootdir conftest, no package)

from vml import cli, merge, store
from vml.spec import profile_spec


def _stores(tmp_path, seeds_here=(1, 2), seeds_there=(2, 3, 4)):
    here, there = tmp_path / "here", tmp_path / "there"
    for root, seeds in ((here, seeds_here), (there, seeds_there)):
        for s in seeds:
            store.save(FakeRecord(profile_spec("smoke", seed=s), test_acc=0.5), root)
    return here, there


def _files(root):
    return {p.relative_to(root): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_merge_adds_missing_records_and_keeps_those_here(tmp_path):
    here, there = _stores(tmp_path)
    # seed 2 trained in both stores, but with other results there (as on another machine)
    spec2 = profile_spec("smoke", seed=2)
    store.save(FakeRecord(spec2, test_acc=0.75), there)
    mine_before = store.record_path(spec2, here).read_bytes()
    report = merge.merge(there, here)
    keys = {s: profile_spec("smoke", seed=s).key() for s in (1, 2, 3, 4)}
    assert sorted(report.added["smoke"]) == sorted([keys[3], keys[4]])
    assert report.differ == {"smoke": [keys[2]]} and report.identical == {} and report.invalid == []
    assert store.record_path(spec2, here).read_bytes() == mine_before  # never replaced
    for s in (3, 4):  # the added records are the other store's, byte for byte, and read back
        spec = profile_spec("smoke", seed=s)
        assert store.record_path(spec, here).read_bytes() == store.record_path(spec, there).read_bytes()
        assert store.read(spec, root=here)["test_acc"] == 0.5
    again = merge.merge(there, here)  # idempotent: a second merge adds nothing
    assert again.added == {} and sorted(again.identical["smoke"]) == sorted([keys[3], keys[4]])
    events = [json.loads(line) for line in (here / "smoke" / "journal.jsonl").read_text().splitlines()]
    assert sorted(e["key"] for e in events if e["event"] == "merged") == sorted([keys[3], keys[4]])


def test_merge_brings_the_test_labels_when_this_store_has_none(tmp_path):
    here, there = _stores(tmp_path, seeds_here=())
    report = merge.merge(there, here)
    assert len(report.added["smoke"]) == 3
    assert np.array_equal(store.labels("smoke", "synthetic", here), store.labels("smoke", "synthetic", there))


def test_records_that_cannot_join_are_named_and_left_untouched(tmp_path):
    here, there = _stores(tmp_path, seeds_there=(3,))
    folder = there / "smoke"
    good = store.record_path(profile_spec("smoke", seed=3), there)
    (folder / "0123456789abcdef.json").write_text(good.read_text()[:500])  # a copy cut short
    (folder / "fedcba9876543210.json").write_text(good.read_text())  # renamed: not its spec's key
    rec = json.loads(good.read_text())
    sha = rec["labels_sha"]
    spec5 = profile_spec("smoke", seed=5)  # scored on other labels
    (folder / f"{spec5.key()}.json").write_text(json.dumps(
        {**rec, "spec": spec5.to_dict(), "key": spec5.key(), "labels_sha": "0" * 16}))
    spec6 = profile_spec("smoke", seed=6)  # an array damaged in transit
    bad = {**rec, "spec": spec6.to_dict(), "key": spec6.key()}
    bad["arrays"] = {**rec["arrays"], "preds": {**rec["arrays"]["preds"], "zlib_b64": "AAAA"}}
    (folder / f"{spec6.key()}.json").write_text(json.dumps(bad))
    (there / "cpu").mkdir()
    (there / "cpu" / good.name).write_text(good.read_text())  # a smoke run in the cpu folder
    before = _files(there)
    report = merge.merge(there, here)
    why = {p.name if p.parent.name == "smoke" else f"cpu/{p.name}": w for p, w in report.invalid}
    assert why[f"cpu/{good.name}"] == "a run of profile 'smoke' in the 'cpu' folder"
    assert why[f"{spec6.key()}.json"].startswith("an array does not decode (error: Error -3 while decompressing")
    assert why["0123456789abcdef.json"].startswith("not valid JSON (JSONDecodeError")
    assert why["fedcba9876543210.json"] == f"its spec hashes to {good.stem}, not to its file name"
    assert why[f"{spec5.key()}.json"] == (f"scored on other test labels of 'synthetic' than this store's "
                                          f"(sha {'0' * 16} vs {sha})")
    assert report.added == {"smoke": [good.stem]}
    assert _files(there) == before  # the other store is only read
    assert not store.exists(spec5, here)


def test_damaged_labels_in_the_other_store_leave_its_records_out(tmp_path):
    here, there = _stores(tmp_path, seeds_here=(), seeds_there=(1,))
    labels = there / "smoke" / "labels" / "synthetic.json"
    labels.write_text(labels.read_text()[:100])
    report = merge.merge(there, here)
    assert report.added == {} and [why for _, why in report.invalid] == [
        f"its test labels {labels} are damaged (CorruptRecord)"]
    assert not (here / "smoke" / "labels").exists()


def test_a_run_being_trained_here_is_left_out_until_it_is_done(tmp_path):
    here, there = _stores(tmp_path, seeds_there=(3,))
    spec3 = profile_spec("smoke", seed=3)
    assert store.claim(spec3, here)  # a sweep here holds it
    try:
        assert merge.merge(there, here, dry_run=True).in_training == {"smoke": [spec3.key()]}
        assert merge.merge(there, here).in_training == {"smoke": [spec3.key()]}
        assert not store.exists(spec3, here)
    finally:
        store.release(spec3, here)
    assert merge.merge(there, here).added == {"smoke": [spec3.key()]}


def test_dry_run_writes_nothing(tmp_path):
    here, there = _stores(tmp_path, seeds_here=())
    here.mkdir()
    report = merge.merge(there, here, dry_run=True)
    assert len(report.added["smoke"]) == 3 and _files(here) == {}
    assert merge.summary(report, dry_run=True)[0] == (
        "smoke: 3 to add, 0 already here, 0 made elsewhere too (kept this store's), 0 being trained here")


def test_cli_exit_status_and_one_line_errors(tmp_path, capsys):
    here, there = _stores(tmp_path)
    (there / "smoke" / "0123456789abcdef.json").write_text("{")
    assert cli.main(["merge", str(there), "--root", str(here)]) == 1  # a record left out
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "smoke: 2 added, 1 already here, 0 made elsewhere too (kept this store's), 0 being trained here"]
    assert err.startswith(f"left out {there / 'smoke' / '0123456789abcdef.json'}: not valid JSON")
    for argv, message in (
            ([str(tmp_path / "nowhere")], f"{tmp_path / 'nowhere'} is not a folder"),
            ([str(here)], f"{here} is this store itself"),
            ([str(there / "smoke")], f"is itself a profile's folder: give {there}"),
            ([str(there), "--profile", "cpu"], f"{there} has no 'cpu' folder (it has: smoke)")):
        assert cli.main(["merge", *argv, "--root", str(here)]) == 2
        out, err = capsys.readouterr()
        assert out == "" and len(err.splitlines()) == 1 and message in err and "Traceback" not in err


def test_chapter_7bs_gpu_column_fills_from_a_merged_gpu_store(tmp_path):
    from vml.analysis import decisive
    from vml.studies import get_study
    elsewhere, here = tmp_path / "elsewhere", tmp_path / "here"
    rng = np.random.default_rng(4)
    grid = get_study("reactivity-long").grid("gpu")  # test 3 of the gpu column: 20 seeds per arm
    for item in grid:
        assert item.spec.device == "cuda"
        store.save(FakeRecord(item.spec, test_acc=float(rng.normal(0.8, 0.01))), elsewhere)
    assert sorted(merge.merge(elsewhere, here).added["gpu"]) == sorted(i.spec.key() for i in grid)
    t = decisive.primary_table("gpu", here, n_boot=200).set_index("test")
    row = t.loc[decisive.primary_label("reactivity-long", "small-data", "gpu")]
    assert row["n (B/V)"] == "20/20 of 20" and 0 <= row["f_p"] <= 1 and not row["verdict"].startswith("pending")
    assert t["verdict"].str.startswith("pending").sum() == 2  # the powered arms: nothing stored yet
