"""The runner on a (simulated) cluster: submitit's local executor, SIGKILL and SIGTERM mid-run, the Slurm array."""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections import Counter

import pytest

from vml import device as devices
from vml import runner, store
from vml.cli import main
from vml.spec import profile_spec
from vml.studies import get_study

STUDY = "seed-groups"  # 4 runs on the smoke profile


def expected_keys(seeds=(1, 2)):
    return {i.spec.key() for i in get_study(STUDY).grid("smoke") if i.spec.seed in seeds}


def events(root, kind):
    path = root / "smoke" / "journal.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return Counter(e["key"] for e in lines if e["event"] == kind)


def wait_for_a_run_past_its_first_epoch(root, timeout=180):
    """A live claim whose run has written its end-of-epoch checkpoint: a run in the middle of training."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for c in store.claims("smoke", root):
            if (root / "smoke" / ".checkpoints" / f"{c.key}.pt").exists() and c.pid is not None:
                return c
        time.sleep(0.05)
    raise AssertionError("no run reached its first checkpoint")


def assert_every_run_stored_once_and_whole(root, seeds=(1, 2)):
    stored = list(store.iter_records("smoke", root))
    assert {p.stem for p in stored} == expected_keys(seeds)
    for path in stored:
        d = json.loads(path.read_text())
        assert d["key"] == path.stem and "test_acc" in d
    done = events(root, "done")
    assert set(done) == expected_keys(seeds) and max(done.values()) == 1  # nothing trained twice
    assert not list((root / "smoke").rglob(".*.tmp-*")) and not list((root / "smoke" / ".claims").iterdir())


def test_local_executor_sweep_survives_a_sigkilled_task_and_trains_every_run_once(tmp_path):
    jobs, folder, n = runner.submit([STUDY], "smoke", executor="local", root=str(tmp_path), tasks=3)
    assert (len(jobs), n) == (3, 4) and folder.parent == tmp_path / "smoke" / ".jobs"
    victim = wait_for_a_run_past_its_first_epoch(tmp_path)
    os.kill(victim.pid, signal.SIGKILL)
    errors = [j.exception() for j in jobs]
    assert sum(e is not None for e in errors) == 1  # the killed task, and only it
    assert not store.exists(get_spec(victim.key), tmp_path)  # no record, whole or partial
    assert (tmp_path / "smoke" / ".checkpoints" / f"{victim.key}.pt").exists()  # resumable
    # its claim is left behind; its owner is provably dead here, so the next submission takes it over
    again, _, n_again = runner.submit([STUDY], "smoke", executor="local", root=str(tmp_path), tasks=3)
    assert n_again == 4 - len(list(store.iter_records("smoke", tmp_path))) >= 1
    assert all(j.exception() is None for j in again)
    assert_every_run_stored_once_and_whole(tmp_path)
    assert events(tmp_path, "start")[victim.key] == 2  # started, killed, resumed
    assert runner.submit([STUDY], "smoke", executor="local", root=str(tmp_path))[0] == []  # nothing left


def get_spec(key):
    return next(i.spec for i in get_study(STUDY).grid("smoke") if i.spec.key() == key)


@pytest.mark.parametrize("jobs", [1, 2])  # 2: the parent forwards the signal to its worker processes
def test_sigterm_stops_at_once_releases_the_claim_and_keeps_the_checkpoint(tmp_path, jobs):
    cmd = [sys.executable, "-m", "vml", "run", STUDY, "--profile", "smoke", "--root", str(tmp_path), "--seeds", "1",
           "--jobs", str(jobs)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    victim = wait_for_a_run_past_its_first_epoch(tmp_path)
    proc.send_signal(signal.SIGTERM)
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 128 + signal.SIGTERM, out
    assert "stopped by SIGTERM: claims released, checkpoints kept" in out
    assert not store.exists(get_spec(victim.key), tmp_path) and not store.claims("smoke", tmp_path)
    assert (tmp_path / "smoke" / ".checkpoints" / f"{victim.key}.pt").exists()
    stopped = events(tmp_path, "stopped")
    assert stopped[victim.key] == 1 and set(stopped.values()) == {1} and len(stopped) <= jobs
    assert not any(store.exists(get_spec(k), tmp_path) for k in stopped)
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_every_run_stored_once_and_whole(tmp_path, seeds=(1,))


@pytest.fixture
def fake_sbatch(tmp_path, monkeypatch):
    """An `sbatch` on PATH that keeps the script it is given and answers like Slurm."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # submitit also looks for srun, which only the batch script (never run here) calls
    for name, body in (("sbatch", f'cp "$1" {tmp_path / "submitted.sh"}\necho "Submitted batch job 4242"'),
                       ("srun", "exit 1")):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "submitted.sh"


def test_slurm_submission_is_one_job_array_with_the_requested_resources(tmp_path, fake_sbatch):
    config = tmp_path / "slurm.json"
    config.write_text(json.dumps({"partition": "gpu", "time": 90, "gpus": 1, "cpus": 8, "mem": "32G",
                                  "account": "proj", "qos": "normal", "setup": ["module load cuda"]}))
    root = tmp_path / "store"
    code = main(["run", STUDY, "--profile", "smoke", "--root", str(root), "--executor", "slurm", "--tasks", "3",
                 "--parallel", "2", "--cpus", "16", "--slurm-config", str(config), "--jobs", "2"])
    assert code == 0
    sbatch = fake_sbatch.read_text()
    lines = {line for line in sbatch.splitlines() if line.startswith("#SBATCH")}
    folder = root.resolve() / "smoke" / ".jobs" / "%A_%a"
    assert {"#SBATCH --array=0-2%2", "#SBATCH --partition=gpu", "#SBATCH --time=90", "#SBATCH --gpus-per-node=1",
            "#SBATCH --cpus-per-task=16", "#SBATCH --mem=32G", "#SBATCH --account=proj", "#SBATCH --qos=normal",
            "#SBATCH --job-name=vml-smoke", "#SBATCH --nodes=1", "#SBATCH --ntasks-per-node=1",
            f"#SBATCH --output={folder}/%A_%a_0_log.out"} <= lines
    assert "module load cuda" in sbatch and "srun" in sbatch
    # the three tasks share the four missing runs, each run in exactly one task, two at a time
    tasks = sorted((root / "smoke" / ".jobs").glob("4242_*/4242_*_submitted.pkl"))
    assert [p.parent.name for p in tasks] == ["4242_0", "4242_1", "4242_2"]
    import submitit
    args = [submitit.core.utils.DelayedSubmission.load(p).args for p in tasks]
    shares = [a[2] for a in args]
    assert sorted(k for share in shares for k in share) == sorted(expected_keys())
    assert [len(s) for s in shares] == [2, 1, 1] and {(a[4], a[5]) for a in args} == {(2, None)}  # Slurm's cores
    assert {a[3] for a in args} == {str(root.resolve())}


def test_slurm_without_sbatch_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch anywhere
    code = main(["run", STUDY, "--profile", "smoke", "--root", str(tmp_path), "--executor", "slurm"])
    err = capsys.readouterr().err
    assert code == 2 and err.strip().splitlines() == [
        "--executor slurm needs Slurm's sbatch and srun on PATH (run it on the cluster's login node); "
        "`--executor local` runs the same jobs as local processes"]


def test_slurm_config_rejects_unknown_keys(tmp_path):
    config = tmp_path / "slurm.json"
    config.write_text(json.dumps({"partition": "gpu", "gres": "gpu:1"}))
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['gres'\] in .*slurm.json; allowed: \['partition', "):
        runner.load_slurm_config(config)
    config.write_text(json.dumps({"partition": "gpu", "time": 30}))
    assert runner.load_slurm_config(config) == runner.SlurmOptions(partition="gpu", time=30)


def test_status_lists_claims_from_other_hosts_and_failed_runs(tmp_path, capsys):
    specs = [i.spec for i in get_study(STUDY).grid("smoke")]
    lock = tmp_path / "smoke" / ".claims" / f"{specs[0].key()}.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": "node-7", "pid": 31, "task": "4242_1", "since": 0.0, "kernel": "x"}))
    store.mark_failed(specs[1], "RuntimeError: CUDA out of memory", tmp_path, task="4242_2")
    assert main(["status", "--profile", "smoke", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith(STUDY))
    # runs, done, claimed, failed, missing, held, unavailable
    assert line.split()[-8:-1] == ["4", "0", "1", "1", "2", "0", "0"]
    assert f"{specs[0].key()} live  host node-7 pid 31 task 4242_1 since 1970-01-01 00:00:00 UTC" in out
    assert f"{specs[1].key()} host " in out and "task 4242_2" in out and "RuntimeError: CUDA out of memory" in out
    # a submission leaves the claimed run to its owner and retries the failed one
    assert {i.spec.key() for i in runner.submittable([STUDY], "smoke", str(tmp_path))} == {
        s.key() for s in specs[1:]}


@pytest.mark.slow  # trains one epoch on the smoke profile
def test_status_shows_runs_trained_part_way(tmp_path, capsys):
    from vml.train import train
    spec = next(i.spec for i in get_study(STUDY).grid("smoke"))
    assert train(spec, checkpoint_dir=store.checkpoint_dir("smoke", tmp_path), stop_after=1) is None
    (store.checkpoint_dir("smoke", tmp_path) / "0123456789abcdef.pt").write_bytes(b"cut short")
    assert store.checkpoint_epochs("smoke", tmp_path) == {spec.key(): 1}  # the broken one counts no progress
    assert main(["status", "--profile", "smoke", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"  {spec.key()} epoch 1 of {spec.epochs}: resumed when a `run` reaches it\n" in out
    ckpt = store.checkpoint_dir("smoke", tmp_path) / f"{spec.key()}.pt"
    other = profile_spec("smoke", seed=99)  # a checkpoint of no study's run
    shutil.copy(ckpt, ckpt.with_name(f"{other.key()}.pt"))
    shutil.copy(ckpt, tmp_path / "kept.pt")
    store.save(train(spec, checkpoint_dir=ckpt.parent), tmp_path)  # finished (it deletes its checkpoint) ...
    shutil.copy(tmp_path / "kept.pt", ckpt)  # ... but one is left over, as after a merge of its record
    assert main(["status", "--profile", "smoke", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"  {spec.key()} epoch 1 of {spec.epochs}: stored since (the checkpoint is left over)\n" in out
    assert f"  {other.key()} epoch 1 (a run of no study): resumed when a `run` reaches it\n" in out


def test_held_runs_are_neither_trained_nor_submitted_and_status_says_why(tmp_path, capsys):
    grid = get_study("powered").grid("smoke")  # the long arm's VML runs wait for the pilot's choice
    held = {i.spec.key() for i in grid if i.held}
    assert len(held) == 2
    assert {i.spec.key() for i in runner.submittable(["powered"], "smoke", str(tmp_path))} == {
        i.spec.key() for i in grid} - held
    assert main(["run", "powered", "--profile", "smoke", "--root", str(tmp_path), "--limit", "0"]) == 0
    out = capsys.readouterr().out
    assert "trained 0 run(s)\n2 run(s) not started: held until the pilot's choice" in out
    assert main(["status", "--profile", "smoke", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("powered"))
    assert line.split()[-8:-1] == [str(len(grid)), "0", "0", "0", str(len(grid) - 2), "2", "0"]
    assert "held: 2 run(s) until the pilot's choice of the long arm's length is committed" in out


# ---------------------------------------------------------------- on GPUs (issue 30)

class FakeExecutor:
    """Records what a submission hands to submitit, starts nothing."""

    def __init__(self):
        self.calls = []

    def map_array(self, fn, *columns):
        self.calls.append(columns)
        return [type("Job", (), {"job_id": f"local_{i}"})() for i in range(len(columns[0]))]


def test_the_local_executor_never_starts_more_tasks_than_parallel_allows(tmp_path, monkeypatch):
    ex = FakeExecutor()
    monkeypatch.setattr(runner, "make_executor", lambda kind, folder, opts, profile: ex)
    jobs, _, n = runner.submit([STUDY], "smoke", executor="local", root=str(tmp_path),
                               opts=runner.SlurmOptions(parallel=2))
    shares = ex.calls[0][2]
    assert n == 4 and len(jobs) == len(shares) == 2  # submitit's local executor starts every task at once
    assert sorted(k for share in shares for k in share) == sorted(expected_keys())


def test_a_local_submission_of_a_cuda_profile_runs_one_task_per_gpu(tmp_path, monkeypatch):
    ex = FakeExecutor()
    monkeypatch.setattr(runner, "make_executor", lambda kind, folder, opts, profile: ex)
    monkeypatch.setattr(devices, "gpus_visible", lambda: ["0", "1"])
    monkeypatch.setattr(runner, "available", lambda name: True)
    jobs, _, n = runner.submit(["powered"], "gpu", executor="local", root=str(tmp_path))
    assert n > 50 and len(jobs) == 2 and list(ex.calls[0][-1]) == ["cuda:0", "cuda:1"]


def test_jobs_spread_the_workers_over_the_visible_gpus(tmp_path, monkeypatch, capsys):
    started = []

    class Worker:
        def __init__(self, cmd, env):
            started.append((cmd, env))

        def wait(self):
            return 0

    monkeypatch.setattr(runner.subprocess, "Popen", Worker)
    monkeypatch.setattr(devices, "gpus_visible", lambda: ["2", "5"])
    runner._run_parallel(["powered"], "gpu", jobs=3, root=str(tmp_path), limit=None)
    assert [env["CUDA_VISIBLE_DEVICES"] for _, env in started] == ["2", "5", "2"]
    assert "--device" not in started[0][0]  # each worker sees its one GPU as cuda
    assert capsys.readouterr().err == "3 workers on 2 GPU(s) (2: 2, 5: 1)\n"
    assert runner.gpu_layout(4, ["0"]) == ["0"] * 4  # more than one run per GPU


def test_a_cuda_profile_without_cuda_does_not_start(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runner.torch.cuda, "is_available", lambda: False)
    assert main(["run", "powered", "--profile", "gpu", "--root", str(tmp_path), "--limit", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m vml run: error: the gpu profile needs CUDA, and ")
    assert main(["run", "powered", "--profile", "smoke", "--root", str(tmp_path), "--device", "cuda"]) == 2
    assert "is not of the class the smoke profile trains on (cpu;" in capsys.readouterr().err
    assert main(["status", "--profile", "gpu", "--root", str(tmp_path)]) == 0
    assert "\nGPUs: none (" in capsys.readouterr().out


def test_a_cuda_profile_is_not_submitted_to_slurm_without_gpus(tmp_path, fake_sbatch, capsys):
    argv = ["run", "powered", "--profile", "gpu", "--root", str(tmp_path / "store"), "--executor", "slurm"]
    assert main(argv) == 2 and not fake_sbatch.exists()
    assert capsys.readouterr().err == ("python -m vml run: error: the gpu profile trains on CUDA, and its tasks would "
                                       "get no GPU: give each task one with --gpus N (or \"gpus\" in --slurm-config)\n")


@pytest.mark.slow  # trains one smoke run
def test_a_checkpoint_from_another_device_fails_its_run_once_then_the_next_run_trains_it(tmp_path, capsys):
    import torch

    from vml.train import train
    spec = next(i.spec for i in get_study(STUDY).grid("smoke"))
    assert train(spec, checkpoint_dir=store.checkpoint_dir("smoke", tmp_path), stop_after=1) is None
    path = store.checkpoint_dir("smoke", tmp_path) / f"{spec.key()}.pt"
    state = torch.load(path, weights_only=False)
    state.pop("device", None)  # written on CUDA by a version whose checkpoints did not name their device
    state["gens"] = {s: torch.zeros(16, dtype=torch.uint8) for s in ("shuf", "aug")}
    torch.save(state, path)
    argv = ["run", STUDY, "--profile", "smoke", "--root", str(tmp_path), "--keys", spec.key()]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"python -m vml run: error: checkpoint {path.name} was written on cuda, and this run trains on "
                   f"cpu: its random streams cannot go on here; moved it to {path.name}.cuda, so the run starts "
                   "afresh when it is tried again"]
    assert "was written on cuda" in store.failures("smoke", tmp_path)[spec.key()]["error"]
    assert main(argv) == 0 and store.exists(spec, tmp_path)  # tried again: trained from the start, once
    assert store.failures("smoke", tmp_path) == {} and events(tmp_path, "done")[spec.key()] == 1


@pytest.mark.slow  # trains one smoke run
def test_a_stored_run_removes_what_killed_writes_of_its_record_and_checkpoint_left_and_nothing_else(tmp_path):
    from vml.train import train
    spec = next(i.spec for i in get_study(STUDY).grid("smoke"))
    ckpt_dir, folder = store.checkpoint_dir("smoke", tmp_path), store.profile_dir("smoke", tmp_path)
    ckpt_dir.mkdir(parents=True)
    left = [ckpt_dir / f".{spec.key()}.pt.tmp-0badcafe.tmp", folder / f".{spec.key()}.json.tmp-0badcafe.tmp"]
    other = [ckpt_dir / f".0123456789abcdef.pt.tmp-0badcafe.tmp", folder / ".0123456789abcdef.json.tmp-0badcafe.tmp"]
    for path in left + other:  # as a SIGKILL during `atomic_write` leaves them
        path.write_bytes(b"half a file")
    store.save(train(spec, checkpoint_dir=ckpt_dir), tmp_path)
    assert store.exists(spec, tmp_path)
    assert [p.exists() for p in left + other] == [False, False, True, True]
