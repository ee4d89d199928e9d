"""`--executor slurm` on a real single-node Slurm (scripts/slurm-local.sh; root and apt, or Slurm installed):
a smoke study through `--wait`, a task cancelled and a task killed mid-run, a run that meets its time
limit, the threads of `--cpus 1` tasks and the files' permissions. The cluster runs with `task/none`, so a
task sees both cores and must keep to its allocation by itself. Skipped, with the reason, where the
cluster cannot be stood up."""
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from vml import store
from vml.studies import get_study

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "slurm-local.sh"
STUDY = "seed-groups"  # 4 runs on the smoke profile
SUBMIT = ["--executor", "slurm", "--partition", "debug", "--cpus", "1", "--time", "10", "--parallel", "2"]
UNTIMED = ("wall_s", "started")  # what differs between a run and its resumed twin


def _free_port_pair() -> int:
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port > 65000:
                continue
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port
    raise RuntimeError("no two free ports side by side")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The environment of a running single-node cluster (SLURM_CONF); torn down by pid afterwards."""
    if sys.platform != "linux":
        pytest.skip("the single-node Slurm runs on Linux only")
    folder = tmp_path_factory.mktemp("slurm")
    env = dict(os.environ, SLURM_LOCAL_DIR=str(folder), SLURM_LOCAL_PORT=str(_free_port_pair()),
               SLURM_LOCAL_TASK_PLUGIN="task/none")
    for name in ("VML_THREADS", "OMP_NUM_THREADS"):  # `make test` sets them; the tasks must find their threads
        env.pop(name, None)
    up = subprocess.run(["bash", str(SCRIPT), "up"], env=env, capture_output=True, text=True, timeout=300)
    try:
        if up.returncode == 3:
            pytest.skip(up.stderr.strip().splitlines()[-1])
        assert up.returncode == 0, up.stdout + up.stderr
        env["SLURM_CONF"] = up.stdout.strip().splitlines()[-1].split("=", 1)[1]
        yield env
    finally:
        down = subprocess.run(["bash", str(SCRIPT), "down"], env=env, capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr


def vml(env, *args, timeout=240):
    """`python -m vml ARGS` under umask 022, in the repository (where the tasks start too)."""
    return subprocess.run([sys.executable, "-m", "vml", *args], env=env, cwd=SCRIPT.parent.parent, text=True,
                          capture_output=True, timeout=timeout, preexec_fn=lambda: os.umask(0o022))


def slurm(env, *args):
    out = subprocess.run(list(args), env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, f"{' '.join(args)}: {out.stderr}"
    return out.stdout


def journal(root):
    path = root / "smoke" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def count(root, event):
    return Counter(e["key"] for e in journal(root) if e["event"] == event)


def keys(seeds=(1, 2)):
    return {i.spec.key() for i in get_study(STUDY).grid("smoke") if i.spec.seed in seeds}


def untimed(path):
    d = json.loads(path.read_text())
    for name in UNTIMED:
        d.pop(name)
    for row in d["epochs"]:
        row.pop("wall_s")
    return d


def wait_until_gone(env, job, timeout=120):
    deadline = time.time() + timeout
    while slurm(env, "squeue", "-h", "-j", job, "-o", "%i").strip():
        assert time.time() < deadline, slurm(env, "squeue")
        time.sleep(0.5)


def freeze_a_run_past_its_first_epoch(root, spare=(), timeout=120):
    """SIGSTOP a task whose run has written its first checkpoint and is not stored yet: a run frozen in
    the middle of training. Returns its claim."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for c in store.claims("smoke", root):
            ckpt = root / "smoke" / ".checkpoints" / f"{c.key}.pt"
            if c.pid is None or c.key in spare or not ckpt.exists():
                continue
            try:
                os.kill(c.pid, signal.SIGSTOP)
            except ProcessLookupError:
                continue
            if ckpt.exists() and not (root / "smoke" / f"{c.key}.json").exists():
                return c
            os.kill(c.pid, signal.SIGCONT)  # it finished meanwhile: let it go, try another
        time.sleep(0.01)
    raise AssertionError("no run reached its first checkpoint")


def received(pid, signum):
    """Whether `signum` is pending for the (stopped) process `pid`, or it has ended (Slurm may continue it)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except FileNotFoundError:
        return True
    return any(line.startswith(("SigPnd:", "ShdPnd:")) and int(line.split()[1], 16) >> (signum - 1) & 1
               for line in lines)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The study trained in one process, uninterrupted, on one thread: what every Slurm task must store."""
    root = tmp_path_factory.mktemp("reference")
    out = vml(dict(os.environ), "run", STUDY, "--profile", "smoke", "--root", str(root), "--threads", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    return {p.stem: untimed(p) for p in store.iter_records("smoke", root)}


def test_the_slurm_path_on_a_real_single_node_cluster(cluster, reference, tmp_path):
    """One test, so that pytest-xdist runs it in one worker: the three checks share one cluster."""
    a_study_through_slurm_wait_stores_every_run_once(cluster, reference, tmp_path / "study")
    tasks_cancelled_and_killed_mid_run_come_back_bitwise_equal(cluster, reference, tmp_path / "stopped")
    a_run_that_meets_its_time_limit_requeues_itself_and_finishes(cluster, reference, tmp_path / "timed-out")


def a_study_through_slurm_wait_stores_every_run_once(cluster, reference, tmp_path):
    root = tmp_path / "store"
    out = vml(cluster, "run", STUDY, "--profile", "smoke", "--root", str(root), *SUBMIT, "--wait")
    assert out.returncode == 0, out.stdout + out.stderr
    job = out.stdout.split("(slurm job ")[1].split(")")[0]
    assert f"logs in {root / 'smoke' / '.jobs'}/{job}_<task>" in out.stdout
    assert f"job {job} done: 4 run(s) stored, 0 not" in out.stdout
    stored = list(store.iter_records("smoke", root))
    assert {p.stem for p in stored} == keys() and set(count(root, "done").values()) == {1}
    tasks = {f"{job}_{i}" for i in range(4)}
    assert {e["task"] for e in journal(root) if e["event"] == "task"} == tasks  # each task noted its code
    assert {e["task"] for e in journal(root) if e["event"] in ("start", "done")} == tasks
    for path in stored:
        rec = json.loads(path.read_text())
        assert rec["machine"]["threads"] == 1, rec["device"]  # --cpus 1 on a node whose 2 cores it sees
        assert untimed(path) == reference[path.stem]  # bitwise, wall times aside
    for path in [*stored, *(root / "smoke" / "labels").iterdir()]:
        assert path.stat().st_mode & 0o777 == 0o644, path  # umask 022: colleagues read it
    status = vml(cluster, "status", "--profile", "smoke", "--root", str(root))
    line = next(l for l in status.stdout.splitlines() if l.startswith(STUDY))
    assert line.split()[-8:-1] == ["4", "4", "0", "0", "0", "0", "0"]  # runs done claimed failed missing held unav.
    assert "in Slurm's queue" not in status.stdout
    again = vml(cluster, "run", STUDY, "--profile", "smoke", "--root", str(root), *SUBMIT)
    assert again.stdout.startswith("nothing to submit"), again.stdout + again.stderr


def tasks_cancelled_and_killed_mid_run_come_back_bitwise_equal(cluster, reference, tmp_path):
    root = tmp_path / "store"
    sub = vml(cluster, "run", STUDY, "--profile", "smoke", "--root", str(root), *SUBMIT, "--tasks", "4")
    assert sub.returncode == 0, sub.stdout + sub.stderr
    job = sub.stdout.split("(slurm job ")[1].split(")")[0]
    cancelled = freeze_a_run_past_its_first_epoch(root)
    slurm(cluster, "scancel", cancelled.task)  # SIGCONT, then SIGTERM: the task stops, keeps its checkpoint
    killed = freeze_a_run_past_its_first_epoch(root, spare={cancelled.key})
    os.kill(killed.pid, signal.SIGKILL)
    wait_until_gone(cluster, job)
    stopped = count(root, "stopped")
    assert stopped[cancelled.key] == 1 and killed.key not in stopped
    for victim in (cancelled, killed):
        assert not (root / "smoke" / f"{victim.key}.json").exists()
        assert (root / "smoke" / ".checkpoints" / f"{victim.key}.pt").exists()
    status = vml(cluster, "status", "--profile", "smoke", "--root", str(root)).stdout
    assert f"  {cancelled.key} epoch 1 of 2: resumed when a `run` reaches it" in status
    again = vml(cluster, "run", STUDY, "--profile", "smoke", "--root", str(root), *SUBMIT, "--wait")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "submitted 2 run(s)" in again.stdout  # the two victims, nothing else
    starts = count(root, "start")
    assert starts[cancelled.key] == starts[killed.key] == 2 and set(count(root, "done").values()) == {1}
    for path in store.iter_records("smoke", root):
        assert untimed(path) == reference[path.stem], path.stem  # resumed runs too, bitwise
    assert not list((root / "smoke" / ".checkpoints").glob("*.pt"))


def a_run_that_meets_its_time_limit_requeues_itself_and_finishes(cluster, reference, tmp_path):
    root = tmp_path / "store"
    sub = vml(cluster, "run", STUDY, "--profile", "smoke", "--root", str(root), *SUBMIT, "--tasks", "1",
              "--seeds", "1")
    assert sub.returncode == 0, sub.stdout + sub.stderr
    job = sub.stdout.split("(slurm job ")[1].split(")")[0]
    frozen = freeze_a_run_past_its_first_epoch(root)
    task = frozen.task
    assert task == job  # one task: a job, not an array
    # 2 minutes from its start: Slurm's next check of its limits (every 30 s) sends the warning, SIGUSR2
    slurm(cluster, "scontrol", "update", f"JobId={task}", "TimeLimit=2")
    deadline = time.time() + 60
    while not received(frozen.pid, signal.SIGUSR2) and not count(root, "stopped"):
        assert time.time() < deadline, "Slurm sent no time-limit warning"
        time.sleep(0.1)
    slurm(cluster, "scontrol", "update", f"JobId={task}", "TimeLimit=10")  # the requeued task gets room again
    with contextlib.suppress(ProcessLookupError):
        os.kill(frozen.pid, signal.SIGCONT)
    deadline = time.time() + 60
    while not any(e["event"] == "requeued" for e in journal(root)):
        assert time.time() < deadline, "the task did not requeue itself"
        time.sleep(0.2)
    slurm(cluster, "scontrol", "hold", task)  # requeued, it starts again within ~10 s: held while we look
    status = vml(cluster, "status", "--profile", "smoke", "--root", str(root)).stdout
    again = vml(cluster, "run", STUDY, "--profile", "smoke", "--root", str(root), *SUBMIT, "--seeds", "1")
    slurm(cluster, "scontrol", "release", task)
    assert again.stdout.startswith("nothing to submit"), again.stdout + again.stderr  # the queued task has them
    left = len(keys(seeds=(1,)) - {p.stem for p in store.iter_records("smoke", root)})
    assert f"  job {task}: 1 pending; {left} run(s) not stored yet; requeued after a stop: {task} (1x)" in status, status
    assert f"  {frozen.key} epoch 1 of 2: resumed by Slurm task {task}, queued" in status, status
    wait_until_gone(cluster, job)
    assert {p.stem for p in store.iter_records("smoke", root)} == keys(seeds=(1,))
    assert [(e["key"], e["reason"]) for e in journal(root) if e["event"] == "stopped"] == [
        (frozen.key, "stopped by SIGUSR2")]
    assert count(root, "start")[frozen.key] == 2
    assert [e["requeued"] for e in journal(root) if e["event"] == "task"] == [0, 1]
    for path in store.iter_records("smoke", root):
        assert untimed(path) == reference[path.stem], path.stem
