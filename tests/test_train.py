"""vml.train on the smoke profile: determinism, isolation of each randomness source, the logs,
checkpoint/resume, and the command line."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from vml import data as vdata
from vml import store
from vml import train as vtrain
from vml.spec import profile_spec
from vml.train import RunRecord, RunSpec, lr_at, make_generators, train, tta_views_list

TIME_FIELDS = {"wall_s", "started"}


def _trace():
    log = {"epochs": []}

    def hook(event, *args):
        if event == "init":
            log["init"] = torch.cat([t.detach().flatten().clone() for t in args[0].state_dict().values()
                                     if t.is_floating_point()])
        elif event == "epoch":
            log["epochs"].append(tuple(a.clone() for a in args[1:]))
        elif event == "final":
            log["final"] = [{k: v.clone() for k, v in m.state_dict().items()} for m in args]
    return log, hook


def run(spec, **kw):
    log, hook = _trace()
    rec = train(spec, trace=hook, **kw)
    return rec, log


def assert_same_record(a: RunRecord, b: RunRecord):
    ja, jb = a.to_json_dict(), b.to_json_dict()
    for d in (ja, jb):
        for f in TIME_FIELDS:
            d.pop(f)
        for e in d["epochs"]:
            e.pop("wall_s")
    assert ja == jb
    for k, v in a.arrays().items():
        assert np.array_equal(v, b.arrays()[k]), k
        assert v.dtype == b.arrays()[k].dtype


@pytest.fixture(scope="module")
def smoke():
    return profile_spec("smoke")


@pytest.fixture(scope="module")
def base_pair(smoke):
    return run(smoke.replace(seed=1)), run(smoke.replace(seed=1))


@pytest.mark.slow  # trains on the smoke profile
def test_same_spec_gives_bitwise_identical_weights_and_record(base_pair):
    (a, la), (b, lb) = base_pair
    assert_same_record(a, b)
    for ma, mb in zip(la["final"], lb["final"]):
        assert all(torch.equal(ma[k], mb[k]) for k in ma)


@pytest.mark.slow  # trains on the smoke profile
def test_smoke_learns_and_record_is_complete(base_pair, smoke):
    rec = base_pair[0][0]
    assert rec.test_acc > 0.9 and rec.tta_acc > 0.9
    assert 0 <= rec.ema_acc <= 1 and rec.tta_views == smoke.tta_views
    steps = math.ceil(1024 / smoke.batch_size)
    assert rec.steps_per_epoch == steps and len(rec.epochs) == smoke.epochs
    assert set(rec.iters) == {"loss", "lambda", "delta", "sigma"}
    for v in rec.iters.values():
        assert v.dtype == np.float32 and v.shape == (steps * smoke.epochs,) and np.isfinite(v).all()
    assert rec.preds.dtype == np.uint8 and rec.preds.shape == (256,)
    assert rec.labels.dtype == np.uint8 and rec.tta_preds.dtype == np.uint8 and rec.probs is None
    assert rec.test_acc == pytest.approx(float((rec.preds == rec.labels).mean()))
    e = rec.epochs[-1]
    assert set(e) >= {"epoch", "lr", "train_loss", "test_loss", "test_acc", "lambda_mean", "sigma_mean", "wall_s"}
    assert e["train_loss"] == pytest.approx(float(rec.iters["loss"][-steps:].mean()), rel=1e-5)
    assert e["test_acc"] == rec.test_acc and e["test_loss"] == pytest.approx(rec.test_loss)
    d = json.loads(json.dumps(rec.to_json_dict()))
    assert {"test_acc", "test_loss", "wall_s", "spec", "epochs", "key", "device", "versions"} <= set(d)
    assert RunSpec.from_dict(d["spec"]) == smoke.replace(seed=1) and d["key"] == smoke.replace(seed=1).key()
    assert_same_record(RunRecord.from_parts(d, rec.arrays()), rec)
    assert rec.device.startswith("cpu (") and set(rec.versions) >= {"python", "torch", "numpy", "vml"}
    assert "test acc" in rec.summary()


@pytest.mark.slow  # trains on the smoke profile
@pytest.mark.parametrize("vary", ["init", "aug", "shuf", "all"])
def test_vary_changes_only_its_own_source(smoke, vary):
    (_, a), (_, b) = run(smoke.replace(seed=1, vary=vary, epochs=1)), run(smoke.replace(seed=2, vary=vary, epochs=1))
    same_init = torch.equal(a["init"], b["init"])
    pa, pb = a["epochs"][0], b["epochs"][0]
    same_shuf = torch.equal(pa[0], pb[0])
    same_aug = all(torch.equal(u, v) for u, v in zip(pa[1:], pb[1:]))
    assert same_init == (vary not in ("init", "all"))
    assert same_shuf == (vary not in ("shuf", "all"))
    assert same_aug == (vary not in ("aug", "all"))


def test_generators_are_independent_streams(smoke):
    g = make_generators(smoke.replace(seed=5), torch.device("cpu"))
    a = torch.randint(0, 2**30, (8,), generator=g["shuf"])
    b = torch.randint(0, 2**30, (8,), generator=g["aug"])
    c = torch.randint(0, 2**30, (8,), generator=g["init"])
    assert not torch.equal(a, b) and not torch.equal(b, c)


@pytest.mark.slow  # trains on the smoke profile
def test_base_seed_sets_the_fixed_sources(smoke):
    (_, a), (_, b) = run(smoke.replace(seed=1, vary="init", epochs=1)), run(smoke.replace(seed=1, vary="init", base_seed=9, epochs=1))
    assert torch.equal(a["init"], b["init"]) and not torch.equal(a["epochs"][0][0], b["epochs"][0][0])


@pytest.mark.slow  # trains on the smoke profile
def test_observer_never_touches_the_gradient_of_base_runs(smoke, base_pair):
    ref = base_pair[0][0]
    other = train(smoke.replace(seed=1, vml={"lambda_base": 1.0, "warmup_steps": 3, "alpha": 0.5}))
    assert np.array_equal(other.iters["loss"], ref.iters["loss"]) and np.array_equal(other.preds, ref.preds)
    assert not np.array_equal(other.iters["lambda"], ref.iters["lambda"])


@pytest.mark.slow  # trains on the smoke profile
def test_vml_changes_training_and_logs_the_controller(smoke, base_pair):
    ref = base_pair[0][0]
    spec = smoke.replace(seed=1, loss="vml", vml={"warmup_steps": 5, "lambda_base": 1.0})
    a, b = train(spec), train(spec)
    assert_same_record(a, b)
    assert a.iters["loss"][0] == ref.iters["loss"][0]  # same first batch and weights
    assert not np.array_equal(a.iters["loss"], ref.iters["loss"])
    lam = a.iters["lambda"]
    assert np.all(lam[:5] == np.float32(1.0)) and lam[5:].std() > 0  # latched after the warmup


@pytest.mark.slow  # trains on the smoke profile
@pytest.mark.parametrize("stop", [1, 2])
def test_resume_after_any_epoch_is_bitwise_identical(tmp_path, smoke, stop, monkeypatch):
    monkeypatch.setattr(vtrain, "CHECKPOINT_EVERY_S", 0.0)  # a checkpoint after every epoch, not only the first
    spec = smoke.replace(seed=4, epochs=3, loss="vml", vml={"warmup_steps": 10})
    full = train(spec)
    assert train(spec, checkpoint_dir=tmp_path, stop_after=stop) is None
    ckpt = tmp_path / f"{spec.key()}.pt"
    assert ckpt.exists() and not list(tmp_path.glob("*.tmp"))
    resumed = train(spec, checkpoint_dir=tmp_path)
    assert_same_record(full, resumed)
    assert resumed.trained_on is None and "trained_on" not in resumed.to_json_dict()  # one machine trained it
    assert not ckpt.exists()


@pytest.mark.slow  # trains on the smoke profile
def test_a_run_resumed_on_another_machine_names_both_in_its_record(tmp_path, smoke, monkeypatch, capsys):
    spec = smoke.replace(seed=6, epochs=3)
    assert train(spec, checkpoint_dir=tmp_path, stop_after=1) is None
    here = vtrain.machine_info()
    there = {**here, "cpu": "Other CPU", "threads": here["threads"] + 1}
    monkeypatch.setattr(vtrain, "machine_info", lambda device="cpu": dict(there))
    rec = train(spec, checkpoint_dir=tmp_path)
    assert rec.machine == there
    assert rec.trained_on == [{"from_epoch": 1, "machine": here}, {"from_epoch": 2, "machine": there}]
    kind = store.machine_kind(here["cpu"], spec.precision, here["bf16_kernels"])
    store.save(rec, tmp_path / "store")
    stored = store.read(spec, root=tmp_path / "store", arrays=False)
    assert stored["trained_on"] == rec.trained_on and store.made_on(stored) == f"{kind} + Other CPU"
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"run {spec.key()}: epochs 1-1 trained on {here['cpu']} ({here['aten_cpu_capability']}, bf16 on "
        f"{here['bf16_kernels']} kernels, {here['threads']} threads, torch {here['torch']}), the rest trains on "
        f"Other CPU ({here['aten_cpu_capability']}, bf16 on {here['bf16_kernels']} kernels, {there['threads']} "
        f"threads, torch {here['torch']}); its record names both (trained_on)")


@pytest.mark.slow  # trains on the smoke profile
def test_a_checkpoint_that_does_not_name_its_machine_leaves_that_stretch_unnamed(tmp_path, smoke):
    spec = smoke.replace(seed=7, epochs=2)
    assert train(spec, checkpoint_dir=tmp_path, stop_after=1) is None
    path = tmp_path / f"{spec.key()}.pt"
    state = torch.load(path, weights_only=False)
    del state["machines"]  # as written before checkpoints named their machine
    torch.save(state, path)
    rec, here = train(spec, checkpoint_dir=tmp_path), vtrain.machine_info()
    assert rec.trained_on == [{"from_epoch": 1, "machine": None}, {"from_epoch": 2, "machine": here}]
    kind = store.machine_kind(here["cpu"], spec.precision, here["bf16_kernels"])
    assert store.made_on(rec.to_json_dict()) == f"{store.MACHINE_NOT_NAMED} + {kind}"


@pytest.mark.slow  # trains on the smoke profile
def test_keep_probs_and_data_argument(smoke):
    ds = vdata.synthetic(n_train=256, n_test=64, num_classes=3, seed=1)
    rec = train(smoke.replace(epochs=1), data=ds, keep_probs=True)
    assert rec.probs.dtype == np.float16 and rec.probs.shape == (64, 3)
    assert np.allclose(rec.probs.astype(np.float32).sum(1), 1, atol=1e-2)
    assert np.array_equal(rec.probs.argmax(1), rec.preds) or (rec.probs.argmax(1) != rec.preds).mean() < 0.05


def test_lr_schedule_and_tta_views():
    assert lr_at(0, 100, 10, 0.4) == pytest.approx(0.04)
    assert lr_at(9, 100, 10, 0.4) == pytest.approx(0.4)
    assert lr_at(10, 100, 10, 0.4) == pytest.approx(0.4)
    assert lr_at(99, 100, 0, 0.4) < 1e-3
    assert lr_at(50, 100, 0, 0.4) == pytest.approx(0.2)
    assert tta_views_list(2) == [(0, 0, False), (0, 0, True)]
    assert len(set(tta_views_list(18))) == 18
    with pytest.raises(ValueError):
        tta_views_list(19)


@pytest.mark.slow  # trains on the smoke profile
def test_cli_train_json(capsys):
    from vml.cli import main

    assert main(["train", "--profile", "smoke", "--loss", "vml", "--seed", "3", "--epochs", "1", "--quiet", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    d = json.loads(out[-1])
    assert d["spec"]["loss"] == "vml" and d["spec"]["seed"] == 3 and d["spec"]["model"] == "tiny"
    assert {"test_acc", "test_loss", "wall_s", "epochs"} <= set(d)
    assert {"train_loss", "test_loss", "test_acc", "lambda_mean"} <= set(d["epochs"][0])
    assert any("test acc" in line for line in out[:-1])
