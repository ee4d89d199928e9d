"""The results store: atomic records, array codec, claims, provenance."""
import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import pytest

from vml import store
from vml._io import atomic_write
from vml.spec import RunSpec, profile_spec


@dataclass
class FakeRecord:
    """The fields of a vml.train.RunRecord that the store reads."""

    spec: RunSpec
    test_acc: float = 0.5
    labels: np.ndarray = field(default_factory=lambda: np.arange(20, dtype=np.uint8) % 4)
    preds: np.ndarray = field(default_factory=lambda: np.arange(20, dtype=np.uint8) % 3)
    ema_preds: np.ndarray = field(default_factory=lambda: np.zeros(20, dtype=np.uint8))
    tta_preds: np.ndarray = field(default_factory=lambda: np.ones(20, dtype=np.uint8))
    iters: dict = field(default_factory=lambda: {"loss": np.linspace(2, 1, 7, dtype=np.float32),
                                                 "lambda": np.full(7, 0.1, dtype=np.float32)})
    probs: np.ndarray | None = None
    wall_s: float = 1.5

    def to_json_dict(self):
        return {"test_acc": self.test_acc, "wall_s": self.wall_s, "epochs": [{"epoch": 1, "test_acc": 0.5}]}


def test_array_codec_round_trips_exactly():
    for a in (np.arange(1000, dtype=np.uint8) % 7, np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32),
              np.array([], dtype=np.int16)):
        b = store.decode_array(json.loads(json.dumps(store.encode_array(a))))
        assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)


def test_save_and_read_round_trip_with_provenance(tmp_path):
    spec = profile_spec("smoke", seed=3)
    probs = np.random.default_rng(1).dirichlet(np.ones(4), size=20).astype(np.float16)
    rec = FakeRecord(spec, probs=probs)
    path = store.save(rec, tmp_path)
    assert path == tmp_path / "smoke" / f"{spec.key()}.json"
    d = store.read(spec, root=tmp_path)
    assert d["key"] == spec.key() and RunSpec.from_dict(d["spec"]) == spec
    assert d["test_acc"] == 0.5 and d["epochs"] == [{"epoch": 1, "test_acc": 0.5}]
    assert np.array_equal(d["arrays"]["preds"], rec.preds) and np.array_equal(d["iters"]["loss"], rec.iters["loss"])
    assert np.abs(d["arrays"]["probs"] - probs.astype(np.float32)).max() <= 0.5 / 255 + 1e-3
    assert "git_commit" in d and d["format"] == store.RECORD_FORMAT
    assert np.array_equal(store.labels("smoke", "synthetic", tmp_path), rec.labels)
    assert not list((tmp_path / "smoke").glob(".*tmp*"))  # no temp file left behind


def test_different_test_labels_in_one_store_rejected(tmp_path):
    store.save(FakeRecord(profile_spec("smoke", seed=1)), tmp_path)
    other = FakeRecord(profile_spec("smoke", seed=2), labels=np.zeros(20, dtype=np.uint8))
    with pytest.raises(ValueError, match="test labels of 'synthetic' differ"):
        store.save(other, tmp_path)


def test_atomic_write_keeps_old_file_when_writer_dies(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    store.atomic_write_text(target, '{"ok": 1}')

    def boom(*a, **k):
        raise OSError("disk gone")
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        store.atomic_write_text(target, '{"ok": 2}')
    assert json.loads(target.read_text()) == {"ok": 1}


def test_atomic_write_removes_its_temporary_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "ckpt.pt"
    atomic_write(target, lambda f: f.write(b"old"))

    def half_then_fail(f):
        f.write(b"new, but only half")
        raise RuntimeError("writer died")
    with pytest.raises(RuntimeError, match="writer died"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_claims_are_exclusive_and_stale_claims_are_taken_over(tmp_path):
    spec = profile_spec("smoke", seed=4)
    assert store.claim(spec, tmp_path)
    assert not store.claim(spec, tmp_path)  # held by a live process (us)
    store.release(spec, tmp_path)
    lock = tmp_path / "smoke" / ".claims" / f"{spec.key()}.lock"
    import socket
    lock.write_text(f"{socket.gethostname()} 999999999")  # an older version's claim, its owner dead ...
    assert not store.claim(spec, tmp_path)  # ... but written less than the claim timeout ago
    old = lock.stat().st_mtime - store.claim_timeout() - 1
    os.utime(lock, (old, old))
    assert store.claim(spec, tmp_path)
    store.release(spec, tmp_path)
    store.save(FakeRecord(spec), tmp_path)
    assert not store.claim(spec, tmp_path)  # already done


def test_spec_key_is_stable_and_distinguishes_specs():
    a, b = profile_spec("cpu", seed=1), profile_spec("cpu", seed=1)
    assert a.key() == b.key() and len(a.key()) == 16
    assert a.key() != profile_spec("cpu", seed=2).key()
    assert a.key() != a.replace(vml={"alpha": 0.1}).key()
    assert RunSpec.from_dict(json.loads(json.dumps(a.to_dict()))) == a


def test_fields_added_later_keep_the_keys_of_stored_records():
    # a record trained before `train_subset` existed: its stored key is still its spec's key
    records = (json.loads(path.read_text()) for path in store.iter_records("cpu"))
    rec = next((r for r in records if "train_subset" not in r["spec"]), None)
    if rec is None:
        pytest.skip("no committed cpu store in this checkout")
    spec = RunSpec.from_dict(rec["spec"])
    assert spec.train_subset == 0 and spec.replica == 0 and spec.key() == rec["key"]
    assert spec.replace(train_subset=5000).key() != rec["key"] != spec.replace(replica=1).key()


def _truncate(path, keep=0.5):
    text = path.read_text()
    path.write_text(text[:int(len(text) * keep)])
    return text[:int(len(text) * keep)]


def test_every_reader_names_a_corrupt_file_and_what_to_do(tmp_path, capsys):
    from vml import results, runner
    from vml.cli import main
    from vml.studies import get_study

    spec = get_study("sources").grid("smoke")[0].spec
    path = store.save(FakeRecord(spec), tmp_path)
    _truncate(path)
    readers = {"read": lambda: store.read(spec, root=tmp_path),
               "load": lambda: results.load("sources", "smoke", root=tmp_path),
               "status": lambda: runner.status("smoke", tmp_path)}
    for name, reader in readers.items():
        with pytest.raises(store.CorruptRecord) as e:
            reader()
        assert e.value.path == path, name
        assert str(path) in str(e.value) and "python -m vml run` set it aside" in str(e.value), name
    assert main(["status", "--profile", "smoke", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"python -m vml status: error: corrupt results file {path} (JSONDecodeError")
    assert err.count("\n") == 1 and "Traceback" not in err
    labels = tmp_path / "smoke" / "labels" / "synthetic.json"
    _truncate(labels)
    with pytest.raises(store.CorruptRecord, match="corrupt results file .*synthetic.json"):
        store.labels("smoke", "synthetic", tmp_path)


def test_run_sets_a_corrupt_record_aside_and_trains_its_run_again(tmp_path, capsys):
    from vml import runner, studies

    base1 = studies.plan(["seed-groups"], "smoke")[0].spec
    assert (base1.seed, base1.loss) == (1, "base")
    path = store.save(FakeRecord(base1), tmp_path)
    (tmp_path / "smoke" / "labels" / "synthetic.json").unlink()  # the fake's labels are not the dataset's
    left = _truncate(path)
    assert runner.run(["seed-groups"], "smoke", root=tmp_path, seeds=[1], limit=1) == 1
    aside = [p for p in path.parent.iterdir() if p.name.startswith(f"{path.name}.corrupt-")]
    assert len(aside) == 1 and aside[0].read_text() == left  # renamed, never deleted or changed
    assert f"set aside the corrupt record {aside[0]}; training its run again" in capsys.readouterr().err
    d = store.read(base1, root=tmp_path, arrays=False)
    assert d["key"] == base1.key() and d["spec"]["loss"] == "base" and "machine" in d
    assert [p.name for p in store.iter_records("smoke", tmp_path)] == [path.name]  # the set-aside file is no record
    assert store.set_aside_if_corrupt(base1, tmp_path) is None  # a whole record stays where it is


def test_median_epoch_leaves_out_a_pause_between_sessions():
    # cumulative wall times: epochs of 60 s, 3600 s (a run resumed an hour later) and 120 s
    rec = {"epochs": [{"epoch": 1, "wall_s": 60.0}, {"epoch": 2, "wall_s": 3660.0}, {"epoch": 3, "wall_s": 3780.0}]}
    assert store.median_epoch_s(rec) == 120.0
    assert math.isnan(store.median_epoch_s({"epochs": []}))


def test_a_record_names_its_machine_kind_with_the_bf16_path_only_where_it_matters():
    def rec(precision, machine):
        return {"spec": {"precision": precision}, "machine": machine}
    assert store.made_on(rec("bf16", {"cpu": "Xeon", "bf16_kernels": "fp32"})) == "Xeon" + store.FP32_KERNELS
    assert store.made_on(rec("bf16", {"cpu": "Xeon", "bf16_kernels": "native"})) == "Xeon"
    assert store.made_on(rec("bf16", {"cpu": "Xeon"})) == "Xeon"  # written before vml.bf16: bf16 kernels
    assert store.made_on(rec("fp32", {"cpu": "Xeon", "bf16_kernels": "fp32"})) == "Xeon"  # no bf16 product
    assert store.made_on(rec("bf16", None)) is None


def test_every_committed_record_is_filed_under_its_specs_key():
    # the committed cpu store: each file is named by the key its own spec hashes to today, so no field
    # added to RunSpec since (train_subset, device: `KEY_OMITTED_AT_DEFAULT`) moved a stored run
    paths = list(store.iter_records("cpu", store.REPO_ROOT / "data" / "results"))
    assert len(paths) > 300
    moved = [p.name for p in paths if RunSpec.from_dict(json.loads(p.read_text())["spec"]).key() != p.stem]
    assert moved == []


def test_the_device_class_is_in_the_key_of_cuda_runs_only():
    cpu = profile_spec("cpu", seed=3)
    assert cpu.device == "cpu"
    cuda = cpu.replace(device="cuda")
    assert cuda.key() != cpu.key() and RunSpec.from_dict(cuda.to_dict()).key() == cuda.key()
    legacy = {k: v for k, v in cpu.to_dict().items() if k != "device"}  # a record written before the field
    assert RunSpec.from_dict(legacy).key() == cpu.key()
    assert profile_spec("gpu").device == profile_spec("paper").device == "cuda"
    with pytest.raises(ValueError, match=r"RunSpec.device='mps' is not allowed; use one of \('cpu', 'cuda'\)"):
        RunSpec(device="mps")


def test_a_cuda_record_is_made_on_its_gpu():
    cpu = {"spec": {"precision": "bf16"}, "machine": {"cpu": "AMD EPYC 9654", "bf16_kernels": "native"}}
    assert store.made_on(cpu) == "AMD EPYC 9654"
    gpu = {"spec": {"precision": "bf16"}, "machine": {**cpu["machine"], "cuda": {"gpu": "NVIDIA H100 80GB HBM3"}}}
    assert store.made_on(gpu) == "NVIDIA H100 80GB HBM3"  # not the host's CPU
