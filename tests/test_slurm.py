"""The Slurm path without a cluster (issue 31): fake sbatch, squeue and scontrol on PATH; the tasks'
threads, self-requeue on the time-limit warning, the queue ledger, --wait, --time, the log path and the
code a task runs. tests/test_slurm_real.py runs the same path on a real single-node Slurm."""
import json
import os
import signal
import stat

import pytest
import submitit
import torch

from vml import runner, slurm, store
from vml.cli import main
from vml.studies import get_study

STUDY = "seed-groups"  # 4 runs on the smoke profile
KEYS = sorted(i.spec.key() for i in get_study(STUDY).grid("smoke"))


def _script(bin_dir, name, body):
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """sbatch (answers job 4242 and counts its calls), srun, scontrol (logs its arguments) and squeue
    (prints the lines of `queue.txt`, one `task|state|reason` a line) on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _script(bin_dir, "sbatch", f'echo x >> {tmp_path / "sbatch-calls"}\necho "Submitted batch job 4242"')
    _script(bin_dir, "srun", "exit 1")
    _script(bin_dir, "scontrol", f'echo "$@" >> {tmp_path / "scontrol-calls"}')
    _script(bin_dir, "squeue", f'cat {tmp_path / "queue.txt"} 2>/dev/null; true')
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return tmp_path


def sbatch_calls(tmp_path):
    path = tmp_path / "sbatch-calls"
    return len(path.read_text().splitlines()) if path.exists() else 0


def submit_args(root, *extra):
    return ["run", STUDY, "--profile", "smoke", "--root", str(root), "--executor", "slurm", *extra]


# ---------------------------------------------------------------- 1. threads follow the allocation

def test_a_task_runs_as_many_threads_as_slurm_gave_it_cpus(tmp_path, monkeypatch):
    """Without task pinning a task sees every core of its node; it must use SLURM_CPUS_PER_TASK of them."""
    seen = []
    monkeypatch.setattr(runner, "run", lambda *a, **kw: seen.append(kw["threads"]) or 0)
    monkeypatch.setattr(submitit, "JobEnvironment", lambda: type("Env", (), {"job_id": "4242_0"})())
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))  # every core of the node visible
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    runner.run_task([STUDY], "smoke", KEYS, str(tmp_path), 1, None)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    runner.run_task([STUDY], "smoke", KEYS, str(tmp_path), 2, None)  # two workers, two threads each
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    runner.run_task([STUDY], "smoke", KEYS, str(tmp_path), 1, None)  # outside Slurm: every core it may use
    assert seen == [1, 2, 8]


# ---------------------------------------------------------------- 2. a stopped task requeues itself

@pytest.fixture
def in_slurm_task(tmp_path, monkeypatch, fake_slurm):
    """This process as task 4242_1 of a Slurm array, as submitit's job environment sees it."""
    folder = tmp_path / "jobs" / "%j"
    for name, value in {"SUBMITIT_EXECUTOR": "slurm", "SUBMITIT_FOLDER": str(folder), "SLURM_JOB_ID": "4243",
                        "SLURM_ARRAY_JOB_ID": "4242", "SLURM_ARRAY_TASK_ID": "1", "SLURM_PROCID": "0"}.items():
        monkeypatch.setenv(name, value)
    env = submitit.JobEnvironment()
    env.paths.submitted_pickle.parent.mkdir(parents=True)
    return env


def stopped_by(signum):
    def run_task(*args):
        raise runner.Stopped(signum)
    return run_task


def journal(root):
    path = root / "smoke" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_task_stopped_by_its_time_limit_warning_requeues_itself_until_its_bound(tmp_path, monkeypatch,
                                                                                  in_slurm_task):
    monkeypatch.setattr(runner, "run_task", stopped_by(signal.SIGUSR2))
    args = ([STUDY], "smoke", KEYS[:2], str(tmp_path), 1, None)
    task = runner.Task(slurm.provenance(), requeues=2)
    with pytest.raises(SystemExit):  # ends this start without a result file: the job is not over
        task(*args)
    assert (tmp_path / "scontrol-calls").read_text() == "requeue 4242_1\n"
    assert not in_slurm_task.paths.result_pickle.exists()
    again = submitit.helpers.DelayedSubmission.load(in_slurm_task.paths.submitted_pickle)  # the next start
    assert isinstance(again.function, runner.Task) and again.function.requeued == 1 and again.args == args
    assert [(e["event"], e.get("requeued")) for e in journal(tmp_path)] == [("task", 0), ("requeued", 1)]
    with pytest.raises(SystemExit):
        again.function(*args)
    last = submitit.helpers.DelayedSubmission.load(in_slurm_task.paths.submitted_pickle).function
    assert last.requeued == 2
    with pytest.raises(runner.Stopped):  # the bound: no third requeue, the task ends as stopped
        last(*args)
    assert len((tmp_path / "scontrol-calls").read_text().splitlines()) == 2
    assert journal(tmp_path)[-1]["event"] == "requeues spent"
    assert last.checkpoint(*args) is None  # submitit's own checkpointing keeps the same bound


def test_a_task_stopped_by_sigterm_is_not_requeued(tmp_path, monkeypatch, in_slurm_task):
    """scancel (and preemption) send SIGTERM: the user's decision, or Slurm's own requeue."""
    monkeypatch.setattr(runner, "run_task", stopped_by(signal.SIGTERM))
    with pytest.raises(runner.Stopped):
        runner.Task(slurm.provenance(), requeues=3)([STUDY], "smoke", KEYS, str(tmp_path), 1, None)
    assert not (tmp_path / "scontrol-calls").exists()


# ---------------------------------------------------------------- 3. queued runs are not sent again

def test_runs_of_tasks_still_in_the_queue_are_not_submitted_again(tmp_path, fake_slurm, capsys):
    root = tmp_path / "store"
    assert main(submit_args(root, "--tasks", "2")) == 0
    assert sbatch_calls(tmp_path) == 1
    (tmp_path / "queue.txt").write_text("4242_0|PENDING|Priority\n4242_1|RUNNING|None\n")
    capsys.readouterr()
    assert main(submit_args(root)) == 0  # both tasks are queued: every run is taken
    assert sbatch_calls(tmp_path) == 1
    assert capsys.readouterr().out.startswith("nothing to submit")
    share0 = slurm.submissions("smoke", root.resolve())["4242"]["4242_0"]
    store.checkpoint_dir("smoke", root).mkdir()
    torch.save({"epoch": 1}, store.checkpoint_dir("smoke", root) / f"{share0[0]}.pt")  # stopped part way, requeued
    store.journal("smoke", "requeued", None, root, task="4242_0", requeued=1)
    assert main(["status", "--profile", "smoke", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "in Slurm's queue" in out
    assert "  job 4242: 1 pending, 1 running; 4 run(s) not stored yet; requeued after a stop: 4242_0 (1x)" in out
    assert f"  {share0[0]} epoch 1 of 2: resumed by Slurm task 4242_0, queued" in out
    (tmp_path / "queue.txt").write_text("4242_1|RUNNING|None\n")  # task 0 ended without its runs
    assert {i.spec.key() for i in runner.submittable([STUDY], "smoke", str(root.resolve()))} == set(share0)
    (tmp_path / "queue.txt").write_text("")  # the array has left the queue
    assert main(submit_args(root)) == 0
    assert sbatch_calls(tmp_path) == 2
    assert "submitted 4 run(s)" in capsys.readouterr().out


# ---------------------------------------------------------------- 4. files follow the umask

@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_writes_follow_the_umask(tmp_path, umask, mode):
    from vml._io import atomic_write_text
    before = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "record.json", "{}\n")
        atomic_write_text(tmp_path / "record.json", "{}\n")  # replaced: the new file's mode, not the old one's
    finally:
        os.umask(before)
    assert stat.S_IMODE((tmp_path / "record.json").stat().st_mode) == mode
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


# ---------------------------------------------------------------- 5. --wait

def test_wait_follows_the_array_until_it_leaves_the_queue_and_fails_when_a_run_is_missing(
        tmp_path, fake_slurm, capsys):
    root = tmp_path / "store"
    spec = next(i.spec for i in get_study(STUDY).grid("smoke") if i.spec.key() == KEYS[3])
    store.mark_failed(spec, "RuntimeError: an earlier attempt", root, task="17_0")  # before this submission
    # squeue shows the array on its first two calls, then nothing; its second call stores two of the runs,
    # and a task notes that a third one raised
    failed = root / "smoke" / ".failed" / f"{KEYS[2]}.json"
    (tmp_path / "bin" / "squeue").write_text(f"""#!/bin/sh
n=$(cat {tmp_path}/n 2>/dev/null || echo 0); echo $((n + 1)) > {tmp_path}/n
[ $n -eq 1 ] && for k in {' '.join(KEYS[:2])}; do echo {{}} > {root}/smoke/$k.json; done
[ $n -eq 1 ] && echo '{{"key": "{KEYS[2]}", "error": "RuntimeError: boom", "task": "4242_0", "time": '$(date +%s)'}}' > {failed}
[ $n -lt 2 ] && echo "4242_0|RUNNING|None" && echo "4242_1|PENDING|None"
true
""")
    code = main(submit_args(root, "--tasks", "2", "--wait"))
    captured = capsys.readouterr()
    assert code == 1
    assert "job 4242 done: 2 run(s) stored, 2 not" in captured.out
    missing = sorted(line for line in captured.err.splitlines() if line.startswith("run "))
    assert [line.split()[1] for line in missing] == KEYS[2:]
    assert f"run {KEYS[2]} failed in task 4242_0: RuntimeError: boom" in missing
    task = next(t for t, keys in slurm.submission("smoke", root.resolve(), "4242")["tasks"].items() if KEYS[3] in keys)
    assert f"run {KEYS[3]} not stored: task {task} ended without it (cancelled, killed, or out of requeues)" in missing


def test_wait_is_for_slurm_only(tmp_path, capsys):
    assert main(["run", STUDY, "--profile", "smoke", "--root", str(tmp_path), "--executor", "local", "--wait"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "python -m vml run: error: --wait is for --executor slurm, not local (which waits for its runs anyway)"]


def test_wait_exits_0_when_every_run_is_stored(tmp_path, fake_slurm, capsys):
    root = tmp_path / "store"
    (tmp_path / "bin" / "squeue").write_text(f"""#!/bin/sh
for k in {' '.join(KEYS)}; do echo {{}} > {root}/smoke/$k.json; done
true
""")
    assert main(submit_args(root, "--wait")) == 0
    assert "job 4242 done: 4 run(s) stored, 0 not" in capsys.readouterr().out


# ---------------------------------------------------------------- 6. time limit, log path, the code a task runs

def test_a_time_limit_that_leaves_no_time_to_train_is_refused(tmp_path, fake_slurm, capsys):
    assert main(submit_args(tmp_path / "store", "--time", "2")) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "python -m vml run: error: --time 2 is not allowed: Slurm signals a task to stop 90-120 s before its "
        "time limit, which leaves no time to train; use --time >= 3 (minutes)"]
    assert sbatch_calls(tmp_path) == 0


def test_the_printed_log_folder_is_the_array_tasks_folder(tmp_path, fake_slurm, capsys):
    root = tmp_path / "store"
    assert main(submit_args(root, "--tasks", "2")) == 0
    out = capsys.readouterr().out
    logs = root.resolve() / "smoke" / ".jobs"
    assert f"(slurm job 4242); logs in {logs}/4242_<task>\n" in out
    assert {"4242_0", "4242_1"} <= {p.name for p in logs.iterdir() if p.is_dir()}  # the tasks write there
    assert "Slurm warns each task 90-120 s before its --time limit" in out


def test_a_submission_whose_tasks_would_import_other_code_is_refused(tmp_path, fake_slurm, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "vml").mkdir(parents=True)
    (elsewhere / "vml" / "__init__.py").write_text("")
    monkeypatch.chdir(elsewhere)  # a task starts here, and `python -m` puts its working directory first
    assert main(submit_args(tmp_path / "store")) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("python -m vml run: error: the tasks would run other code than this "
                                               f"checkout: started in {elsewhere}, they import vml from "
                                               f"{elsewhere.resolve() / 'vml'}, not from {slurm.PACKAGE_DIR}")
    assert sbatch_calls(tmp_path) == 0


def test_a_task_notes_its_commit_and_interpreter_and_refuses_other_code(tmp_path, monkeypatch, in_slurm_task):
    ran = []
    monkeypatch.setattr(runner, "run_task", lambda *a: ran.append(a) or 0)
    args = ([STUDY], "smoke", KEYS, str(tmp_path), 1, None)
    origin = slurm.provenance()
    assert runner.Task(origin, requeues=3)(*args) == 0 and len(ran) == 1
    noted = journal(tmp_path)[-1]
    assert noted["event"] == "task" and noted["task"] == "4242_1"
    assert {k: noted[k] for k in ("commit", "code", "python")} == {k: origin[k] for k in ("commit", "code", "python")}
    changed = dict(origin, code="0" * 16, package="/elsewhere/vml")  # the checkout changed after the submission
    with pytest.raises(RuntimeError, match="would run other code than the checkout that submitted it"):
        runner.Task(changed, requeues=3)(*args)
    assert len(ran) == 1  # nothing trained


def test_provenance_names_the_sources_exactly(tmp_path):
    (tmp_path / "vml").mkdir()
    (tmp_path / "vml" / "a.py").write_text("x = 1\n")
    before = slurm.code_fingerprint(tmp_path / "vml")
    (tmp_path / "vml" / "a.py").write_text("x = 2\n")
    assert slurm.code_fingerprint(tmp_path / "vml") != before
