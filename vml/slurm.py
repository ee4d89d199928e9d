"""What a submission to Slurm needs beyond submitit: which runs are still queued, what code the tasks
run, a requeue, the time limit's warning, and waiting for a job array to finish.

A submission notes its job and each task's runs in `<store>/<profile>/.submissions/<job>.json`; while
any of its tasks is in Slurm's queue (pending, running, requeued), the runs of those tasks are not
sent again (`queued_keys`). Each task checks that it runs the code that submitted it (`provenance`)
and notes its commit and interpreter in the journal (event ``task``).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from . import store
from ._io import atomic_write_text

PACKAGE_DIR = Path(__file__).resolve().parent

# Slurm sends the time-limit warning (submitit asks for SIGUSR2 90 s ahead, `--signal=USR2@90`) when
# it next checks its limits, about every 30 s: 90-120 s before the limit. A task needs a minute of
# training before the earliest warning, so --time is at least 3 minutes.
WARNING_S = (90, 120)
MIN_TIME_MIN = 3


class SlurmError(RuntimeError):
    """A Slurm command failed (the controller is down, or the command is missing)."""


def check_time(minutes: int) -> None:
    """Refuse a time limit that leaves no time to train before Slurm's warning signal."""
    if minutes < MIN_TIME_MIN:
        raise ValueError(f"--time {minutes} is not allowed: Slurm signals a task to stop {WARNING_S[0]}-"
                         f"{WARNING_S[1]} s before its time limit, which leaves no time to train; use "
                         f"--time >= {MIN_TIME_MIN} (minutes)")


# ---------------------------------------------------------------- the code a task runs

def code_fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """A hash of the package's Python sources (names and contents): equal only for the same code."""
    h = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        h.update(str(path.relative_to(package_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(package_dir: Path = PACKAGE_DIR) -> dict[str, Any]:
    """What code this process runs: the checkout's commit (and whether its files differ from it), the
    hash of the package's sources, where the package is, and the interpreter."""
    commit = _git(["rev-parse", "HEAD"], package_dir.parent)
    changes = _git(["status", "--porcelain", "--untracked-files=no"], package_dir.parent)
    return {"commit": commit, "dirty": bool(changes) if changes is not None else None,
            "code": code_fingerprint(package_dir), "package": str(package_dir), "python": sys.executable}


def same_code(here: dict[str, Any], origin: dict[str, Any]) -> bool:
    """Whether `here` runs what `origin` (the submitting process) ran: the same sources and interpreter."""
    return here["code"] == origin["code"] and here["python"] == origin["python"]


def task_package(cwd: str | Path, env: dict[str, str] | None = None) -> Path | None:
    """Where a task started in `cwd` with `env` by this interpreter imports `vml` from (submitit runs
    `python -m submitit...` there, so the working directory comes first on its path), without importing it."""
    probe = ("import importlib.util as u; s = u.find_spec('vml'); "
             "print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')")
    out = subprocess.run([sys.executable, "-c", probe], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    found = out.stdout.strip()
    return Path(found).resolve() if out.returncode == 0 and found else None


def check_tasks_import_this_code(cwd: str | Path | None = None) -> None:
    """Refuse a submission whose tasks would import another `vml` than the one submitting them."""
    cwd = Path(cwd if cwd is not None else os.getcwd())
    theirs = task_package(cwd, dict(os.environ))
    if theirs != PACKAGE_DIR:
        raise ValueError(f"the tasks would run other code than this checkout: started in {cwd}, they import "
                         f"vml from {theirs or 'nowhere'}, not from {PACKAGE_DIR}; submit from the checkout "
                         "whose code they should run (its root), or set PYTHONPATH to it")


# ---------------------------------------------------------------- submissions and the queue

def _ledger_dir(profile: str, root: str | Path | None) -> Path:
    return store.profile_dir(profile, root) / ".submissions"


def note_submission(profile: str, root: str | Path | None, tasks: Sequence[str], shares: Sequence[Sequence[str]]
                    ) -> str:
    """Note which runs each task of a Slurm submission trains (tasks[i], an array task `<job>_<i>` or, for
    one task, the job itself: shares[i]); returns the job id."""
    job = tasks[0].split("_")[0]
    atomic_write_text(_ledger_dir(profile, root) / f"{job}.json", json.dumps(
        {"job": job, "time": time.time(), "tasks": {t: list(s) for t, s in zip(tasks, shares)}}) + "\n")
    return job


def submission(profile: str, root: str | Path | None, job: str) -> dict[str, Any]:
    """The note of job `job`: {job, time (of the submission), tasks: {task id -> keys}}."""
    return store.read_json(_ledger_dir(profile, root) / f"{job}.json")


def submissions(profile: str, root: str | Path | None = None) -> dict[str, dict[str, list[str]]]:
    """job -> {task id -> keys} of every noted submission."""
    folder = _ledger_dir(profile, root)
    out = {}
    for path in sorted(folder.glob("*.json")) if folder.exists() else ():
        d = store.read_json(path)
        out[d["job"]] = d["tasks"]
    return out


def queue(jobs: Sequence[str] | None = None) -> dict[str, tuple[str, str]]:
    """Slurm's queue, one entry per job array task: task id -> (state, reason); only `jobs` when given."""
    if shutil.which("squeue") is None:
        raise SlurmError("no squeue on PATH")
    cmd = ["squeue", "--noheader", "--array", "--format=%i|%T|%r"]
    if jobs is not None:
        if not jobs:
            return {}
        cmd.append(f"--jobs={','.join(jobs)}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        if jobs is not None and "Invalid job id" in out.stderr:  # every one of them has left the queue
            return {}
        raise SlurmError(f"`{' '.join(cmd)}` failed: {out.stderr.strip() or out.returncode}")
    found = {}
    for line in out.stdout.splitlines():
        task, state, reason = line.strip().split("|", 2)
        found[task] = (state, reason)
    return found


def queued_tasks(profile: str, root: str | Path | None = None) -> dict[str, list[str]]:
    """Task id -> keys, for every noted task that is still in Slurm's queue; the notes of a job none
    of whose tasks is queued any more are removed."""
    noted = submissions(profile, root)
    if not noted:
        return {}
    in_queue = queue(list(noted))
    out = {}
    for job, tasks in noted.items():
        alive = {t: keys for t, keys in tasks.items() if t in in_queue}
        if not alive:
            (_ledger_dir(profile, root) / f"{job}.json").unlink(missing_ok=True)
        out.update(alive)
    return out


def queued_keys(profile: str, root: str | Path | None = None) -> set[str]:
    """Runs whose task is still in Slurm's queue: a new submission leaves them to it."""
    return {k for keys in queued_tasks(profile, root).values() for k in keys}


def requeue(task: str) -> None:
    """Put this running task back in Slurm's queue (it starts again under the same id)."""
    subprocess.run(["scontrol", "requeue", task], check=True, timeout=60)


def requeues(profile: str, root: str | Path | None = None) -> dict[str, int]:
    """Task id -> how many times it requeued itself (from the journal's ``requeued`` events)."""
    path = store.profile_dir(profile, root) / "journal.jsonl"
    counts: dict[str, int] = {}
    for line in path.read_text().splitlines() if path.exists() else ():
        e = json.loads(line)
        if e.get("event") == "requeued":
            counts[e["task"]] = counts.get(e["task"], 0) + 1
    return counts


def queue_lines(profile: str, root: str | Path | None, tasks: dict[str, list[str]]) -> list[str]:
    """For `status`: each job of `tasks` (`queued_tasks`), its tasks by state, the requeued ones and its
    runs not stored yet."""
    if not tasks:
        return []
    states = queue(sorted({t.split("_")[0] for t in tasks}))
    again = requeues(profile, root)
    lines = []
    for job in sorted({t.split("_")[0] for t in tasks}):
        mine = sorted(t for t in tasks if t.split("_")[0] == job)
        by_state: dict[str, int] = {}
        for t in mine:
            state = states.get(t, ("ended", ""))[0].lower()
            by_state[state] = by_state.get(state, 0) + 1
        left = sum(1 for t in mine for k in tasks[t] if not (store.profile_dir(profile, root) / f"{k}.json").exists())
        requeued = [f"{t} ({again[t]}x)" for t in mine if t in again]
        lines.append(f"  job {job}: " + ", ".join(f"{n} {s}" for s, n in sorted(by_state.items()))
                     + f"; {left} run(s) not stored yet"
                     + (f"; requeued after a stop: {', '.join(requeued)}" if requeued else ""))
    return lines


def wait(job: str, tasks: dict[str, list[str]], profile: str, root: str | Path | None, results: dict[str, Path],
         since: float, poll_s: float = 2.0) -> list[str]:
    """Wait until no task of `job` is in Slurm's queue, with a progress bar of its runs stored; returns
    one line per run that is not stored then (and why: its failure noted since `since`, the submission's
    time, or its task's error), empty when all are."""
    from tqdm import tqdm

    keys = [k for ks in tasks.values() for k in ks]
    folder = store.profile_dir(profile, root)

    def stored() -> int:
        return sum((folder / f"{k}.json").exists() for k in keys)

    bar = tqdm(total=len(keys), desc=f"job {job}", unit="run", dynamic_ncols=True, file=sys.stderr, disable=None)
    while True:
        in_queue = queue([job])
        bar.update(stored() - bar.n)
        states = [s for t, (s, _) in in_queue.items() if t in tasks]
        bar.set_postfix_str(", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states))))
        if not states:
            break
        time.sleep(poll_s)
    bar.update(stored() - bar.n)
    bar.close()
    failed = {k: f for k, f in store.failures(profile, root).items() if f["time"] >= since}
    problems = []
    for task, ks in tasks.items():
        why = _task_error(results.get(task))
        for k in ks:
            if (folder / f"{k}.json").exists():
                continue
            if k in failed:
                problems.append(f"run {k} failed in task {failed[k]['task']}: {failed[k]['error']}")
            else:
                problems.append(f"run {k} not stored: task {task} " + (f"failed: {why}" if why else
                                "ended without it (cancelled, killed, or out of requeues)"))
    return problems


def _task_error(result_pickle: Path | None) -> str | None:
    """The last line of the error a submitit task ended with, or None."""
    if result_pickle is None or not result_pickle.exists():
        return None
    import pickle
    try:
        outcome, value = pickle.loads(result_pickle.read_bytes())
    except Exception as e:  # cut short or unreadable: say so rather than guess
        return f"its result file {result_pickle} does not load ({type(e).__name__})"
    return str(value).strip().splitlines()[-1] if outcome == "error" else None
