"""The runner: trains the missing runs of studies into the store, here or on a Slurm cluster.

`run` trains in this process, or in `jobs` worker processes sharing the store. `submit` sends the
missing runs to submitit as one job array (`slurm`), or as local processes (`local`, the same jobs
without a cluster); every task trains its share of runs with `run` and writes into the shared store.
Runs are claimed in the store (`vml.store.claim`), so tasks, sweeps and hosts never train a run
twice. SIGTERM (Slurm's time limit or preemption) or SIGUSR2 (submitit's warning before the time
limit) stop a task at once: the run it was training keeps its last end-of-epoch checkpoint, no
partial record is written, the claim is released, and the next `run` resumes from the checkpoint.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Iterator, Sequence

import submitit
import torch
from tqdm import tqdm

from . import bf16, host, slurm, store
from . import device as devices
from .data import available, load_dataset  # `available` looks for files only: never loads or downloads
from .spec import PROFILES, RunSpec
from .studies import STUDIES, GridItem, get_study, plan, select_seeds

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR2)


# ---------------------------------------------------------------- data availability

_DATA: dict[str, Any] = {}


def dataset_or_none(name: str) -> Any:
    """The loaded dataset (cached per process), or None when it is not available on this machine."""
    if name not in _DATA:
        try:
            _DATA[name] = load_dataset(name)
        except FileNotFoundError:
            _DATA[name] = None
    return _DATA[name]


# ---------------------------------------------------------------- stopping on a signal

class Stopped(Exception):
    """Raised in the training process by SIGTERM / SIGUSR2: stop now, keep the checkpoint. `signum`:
    the signal (SIGUSR2 is Slurm's time-limit warning, on which a Slurm task requeues itself)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum = signum


def _raise_stopped(signum: int, frame: Any) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def _on_stop_signals(handler: Any) -> Iterator[None]:
    """Handle STOP_SIGNALS with `handler` inside the block (main thread only; handlers restored after)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold STOP_SIGNALS back while a record is saved: it is written and journalled whole, then we stop."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)


# ---------------------------------------------------------------- running here

def _task_id() -> str | None:
    """The Slurm job (array) task this process runs in, if any."""
    env = os.environ
    if "SLURM_ARRAY_JOB_ID" in env:
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env.get('SLURM_ARRAY_TASK_ID', '')}"
    return env.get("SLURM_JOB_ID")


def _cores() -> int:
    """CPU cores this process may use: its CPU affinity, at most Slurm's --cpus-per-task (a cluster
    without task pinning lets a task see every core of its node)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    slurm_cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
    return min(n, int(slurm_cpus)) if slurm_cpus.isdigit() and int(slurm_cpus) > 0 else n


def _todo(names: list[str], profile: str, seeds: Sequence[int] | None, keys: Sequence[str] | None,
          root: str | None) -> list[GridItem]:
    items = select_seeds(plan(names, profile), seeds)
    if keys is not None:
        unknown = sorted(set(keys) - {i.spec.key() for i in items})
        if unknown:
            raise ValueError(f"run keys {unknown} are not in the studies {names} under profile {profile!r}")
        items = [i for i in items if i.spec.key() in set(keys)]
    for item in items:
        if (moved := store.set_aside_if_corrupt(item.spec, root)) is not None:
            print(f"set aside the corrupt record {moved}; training its run again", file=sys.stderr)
    return [i for i in items if not i.held and not store.exists(i.spec, root)]


def held(names: list[str], profile: str, seeds: Sequence[int] | None = None, root: str | None = None
         ) -> dict[str, int]:
    """The runs of the named studies that are not stored and must wait: reason -> how many."""
    out: dict[str, int] = {}
    for i in select_seeds(plan(names, profile), seeds):
        if i.held and not store.exists(i.spec, root):
            out[i.held] = out.get(i.held, 0) + 1
    return out


def _print_held(names: list[str], profile: str, seeds: Sequence[int] | None, root: str | None) -> None:
    for reason, n in held(names, profile, seeds, root).items():
        print(f"{n} run(s) not started: {reason}")


def profile_device(profile: str) -> str:
    """The device class the runs of `profile` train on (`RunSpec.device`: cuda for gpu and paper)."""
    return PROFILES[profile].get("device", "cpu")


def run(names: list[str], profile: str, *, jobs: int = 1, root: str | None = None, quiet: bool = True,
        limit: int | None = None, threads: int | None = None, seeds: Sequence[int] | None = None,
        keys: Sequence[str] | None = None, task: str | None = None, device: str | None = None) -> int:
    """Train every missing run of the named studies (only `seeds`, only `keys`, when given); returns
    how many runs this call trained. `jobs` > 1: that many worker processes (on CUDA, spread over the
    visible GPUs, `gpu_layout`). `device`: cuda:N picks the GPU of a cuda profile (default: the
    profile's device class; a CUDA profile where torch sees no GPU stops here, in one line)."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs!r} is not allowed; it must be an integer >= 1")
    if threads is not None and threads < 1:
        raise ValueError(f"threads={threads!r} is not allowed; it must be an integer >= 1")
    if limit is not None and limit < 0:
        raise ValueError(f"limit={limit!r} is not allowed; it must be an integer >= 0")
    _todo(names, profile, seeds, keys, root)  # fail before starting workers
    bf16.kernels()  # a bad VML_BF16_KERNELS fails here too
    dev = devices.resolve(profile_device(profile), device, f"the {profile} profile")
    task = task if task is not None else _task_id()
    if jobs > 1:
        return _run_parallel(names, profile, jobs=jobs, root=root, limit=limit, seeds=seeds, keys=keys, task=task,
                             threads=threads, device=device if dev.type == "cpu" or dev.index is not None else None)
    from .train import train  # here, not at the top: it imports torchvision and the networks (~2 s), which
    # `status` and `submit` do not need (torch itself is loaded already, by the loss via spec)

    if threads:
        os.environ["VML_THREADS"] = str(threads)  # the trainer sets its thread count from this
        torch.set_num_threads(threads)
    todo = _todo(names, profile, seeds, keys, root)
    done, skipped = 0, set()
    bar = tqdm(todo, desc=f"{','.join(names)} [{profile}]", unit="run", disable=None, dynamic_ncols=True)
    with store.Heartbeat(), _on_stop_signals(_raise_stopped):
        for item in bar:
            if limit is not None and done >= limit:
                break
            spec = item.spec
            data = dataset_or_none(spec.dataset)
            if data is None:
                skipped.add(spec.dataset)
                continue
            if not store.claim(spec, root, task=task):
                continue
            key = spec.key()
            try:
                store.journal(profile, "start", key, root, task=task)
                ckpt = store.checkpoint_dir(profile, root)
                rec = train(spec, device=dev, quiet=quiet, checkpoint_dir=ckpt, keep_probs=item.keep_probs, data=data)
                if not store.holds(spec, root):  # our heartbeat stalled and another task took the run
                    store.journal(profile, "lost", key, root, task=task)
                    continue
                with _signals_held():
                    store.save(rec, root)
                    store.clear_failed(spec, root)
                    store.journal(profile, "done", key, root, task=task, wall_s=rec.wall_s)
                done += 1
                bar.set_postfix(acc=f"{rec.test_acc:.4f}", wall=f"{rec.wall_s:.0f}s")
            except Stopped as e:
                if not store.exists(spec, root):
                    store.journal(profile, "stopped", key, root, task=task, reason=str(e))
                raise
            except Exception as e:
                store.mark_failed(spec, f"{type(e).__name__}: {e}", root, task=task)
                store.journal(profile, "failed", key, root, task=task, error=f"{type(e).__name__}: {e}")
                raise
            finally:
                store.release(spec, root)
    for name in sorted(skipped):
        print(f"skipped the {name} runs: no {name} data here (see `python -m vml status`)", file=sys.stderr)
    return done


def gpu_layout(jobs: int, gpus: Sequence[str]) -> list[str]:
    """The GPU of each of `jobs` workers: round-robin over `gpus` (CUDA_VISIBLE_DEVICES names), so a node's
    GPUs share the workers evenly, and each GPU runs jobs / len(gpus) runs at once (more than one where
    its memory allows: `python -m vml status` shows each GPU's memory)."""
    return [gpus[i % len(gpus)] for i in range(jobs)]


def _run_parallel(names: list[str], profile: str, *, jobs: int, root: str | None, limit: int | None,
                  seeds: Sequence[int] | None = None, keys: Sequence[str] | None = None,
                  task: str | None = None, threads: int | None = None, device: str | None = None) -> int:
    """`jobs` worker processes of `run`. On a cuda profile without a GPU index (`device` None), each worker
    sees one GPU (CUDA_VISIBLE_DEVICES, `gpu_layout`); with one (cuda:N), all use that GPU."""
    threads = threads or max(1, _cores() // jobs)
    cmd = [sys.executable, "-m", "vml", "run", *names, "--profile", profile, "--threads", str(threads)]
    for flag, value in (("--root", root), ("--limit", limit), ("--task", task)):
        if value is not None:
            cmd += [flag, str(value)]
    if seeds is not None:
        cmd += ["--seeds", *map(str, seeds)]
    if keys is not None:
        cmd += ["--keys", *keys]
    if device is not None:
        cmd += ["--device", str(device)]
    before = sum(1 for _ in store.iter_records(profile, root))
    env = dict(os.environ, VML_THREADS=str(threads))  # jobs x threads <= cores: no oversubscription
    envs = [env] * jobs
    if profile_device(profile) == "cuda" and device is None:
        layout = gpu_layout(jobs, devices.gpus_visible())
        envs = [dict(env, CUDA_VISIBLE_DEVICES=g) for g in layout]
        per_gpu = ", ".join(f"{g}: {layout.count(g)}" for g in sorted(set(layout)))
        print(f"{jobs} workers on {len(set(layout))} GPU(s) ({per_gpu})", file=sys.stderr)
    procs = [subprocess.Popen(cmd, env=e) for e in envs]
    stopped: list[int] = []

    def forward(signum: int, frame: Any) -> None:  # the workers stop (and release) on their own
        stopped.append(signum)
        for p in procs:
            p.send_signal(signum)

    with _on_stop_signals(forward):
        codes = [p.wait() for p in procs]
    if stopped:
        raise Stopped(stopped[0])
    if any(codes):
        raise RuntimeError(f"a worker of `{' '.join(cmd[1:])}` failed with exit codes {codes}")
    return sum(1 for _ in store.iter_records(profile, root)) - before


# ---------------------------------------------------------------- running on a cluster (submitit)

@dataclass(frozen=True)
class SlurmOptions:
    """What one task of the job array asks Slurm for (None: the cluster's default)."""

    partition: str | None = None
    time: int = 240            # minutes per task
    gpus: int | None = None    # per task
    cpus: int | None = None    # per task
    mem: str | None = None     # per task, Slurm syntax: "32G"
    account: str | None = None
    qos: str | None = None
    parallel: int | None = None  # tasks of the array running at once (sbatch --array=0-N%parallel)
    setup: tuple[str, ...] = ()  # shell lines run before each task (module load ..., source venv)
    requeues: int = 3          # times a task stopped by its time-limit warning puts itself back in the queue


def load_slurm_config(path: str | Path) -> SlurmOptions:
    """SlurmOptions from a JSON object whose keys are SlurmOptions' fields (unknown keys are an error)."""
    d = json.loads(Path(path).read_text())
    allowed = [f.name for f in fields(SlurmOptions)]
    bad = sorted(set(d) - set(allowed))
    if bad:
        raise ValueError(f"unknown key(s) {bad} in {path}; allowed: {allowed}")
    if "setup" in d:
        d["setup"] = tuple(d["setup"])
    return SlurmOptions(**d)


def slurm_parameters(opts: SlurmOptions, profile: str) -> dict[str, Any]:
    """submitit.SlurmExecutor parameters for `opts`: one node and one task per array element."""
    p: dict[str, Any] = {"job_name": f"vml-{profile}", "time": opts.time, "nodes": 1, "ntasks_per_node": 1,
                         "signal_delay_s": slurm.WARNING_S[0]}
    for name, value in (("partition", opts.partition), ("gpus_per_node", opts.gpus),
                        ("cpus_per_task", opts.cpus), ("mem", opts.mem), ("account", opts.account),
                        ("qos", opts.qos), ("array_parallelism", opts.parallel)):
        if value is not None:
            p[name] = value
    if opts.setup:
        p["setup"] = list(opts.setup)
    return p


class NoSlurm(RuntimeError):
    """Slurm's sbatch is not on this machine."""


def make_executor(kind: str, folder: Path, opts: SlurmOptions, profile: str) -> submitit.Executor:
    """A submitit executor: `slurm` (needs sbatch on PATH) or `local` (the same jobs as local processes)."""
    if kind == "slurm":
        missing = [c for c in ("sbatch", "srun") if shutil.which(c) is None]
        if missing:
            raise NoSlurm(f"--executor slurm needs Slurm's {' and '.join(missing)} on PATH (run it on the "
                          "cluster's login node); `--executor local` runs the same jobs as local processes")
        ex: submitit.Executor = submitit.SlurmExecutor(folder=folder)
        ex.update_parameters(**slurm_parameters(opts, profile))
        return ex
    if kind == "local":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(timeout_min=opts.time)
        return ex
    raise ValueError(f"executor {kind!r} is not allowed; use one of {list(EXECUTORS)}")


def run_task(names: list[str], profile: str, keys: list[str], root: str, jobs: int, threads: int | None,
             device: str | None = None) -> int:
    """One task of a submission: train `keys` (those still missing and unclaimed) into the store at `root`,
    `jobs` at a time, on `threads` CPU threads in all (None: the cores Slurm gave the task, `_cores`), on `device`
    (None: the profile's; a local task of a cuda profile gets its own GPU, cuda:N)."""
    task = submitit.JobEnvironment().job_id
    per_worker = max(1, (threads or _cores()) // jobs)
    return run(names, profile, jobs=jobs, root=root, keys=keys, task=task, threads=per_worker, device=device)


class Task:
    """The callable each task of a submission runs (`run_task`'s arguments), pickled by submitit.

    It first checks that it runs the code that submitted it (`origin`, `slurm.provenance`) and notes its
    commit and interpreter in the journal. On Slurm, a task stopped by the time-limit warning (SIGUSR2)
    has kept its checkpoints and released its claims; it then puts itself back in the queue, at most
    `requeues` times, and the next start resumes its runs. submitit's own checkpointing (`checkpoint`)
    does the same for a warning that arrives outside training. A task stopped by SIGTERM (scancel,
    preemption) is not requeued by us."""

    def __init__(self, origin: dict[str, Any], requeues: int, requeued: int = 0) -> None:
        self.origin, self.requeues, self.requeued = origin, requeues, requeued

    def __call__(self, *args: Any) -> int:
        """`run_task(*args)`, whose second and fourth arguments are the profile and the store's root."""
        profile, root = args[1], args[3]
        env = submitit.JobEnvironment()
        here = slurm.provenance()
        store.journal(profile, "task", None, root, task=env.job_id, requeued=self.requeued,
                      **{k: here[k] for k in ("commit", "dirty", "code", "python")})
        if not slurm.same_code(here, self.origin):
            raise RuntimeError(f"task {env.job_id} would run other code than the checkout that submitted it "
                               f"(sources {here['code']} in {here['package']} with {here['python']}, not "
                               f"{self.origin['code']} in {self.origin['package']} with {self.origin['python']}); "
                               "nothing trained: submit again from the checkout whose code should run")
        try:
            return run_task(*args)
        except Stopped as e:
            if e.signum != signal.SIGUSR2 or env.name() != "slurm":
                raise
            if self.requeued >= self.requeues:
                store.journal(profile, "requeues spent", None, root, task=env.job_id, requeued=self.requeued)
                raise
            self._requeue(env, profile, root, args)
            raise  # not reached: _requeue exits

    def checkpoint(self, *args: Any) -> submitit.helpers.DelayedSubmission | None:
        """submitit's checkpointing protocol: the same task, once more requeued (None: no requeue left)."""
        if self.requeued >= self.requeues:
            return None
        return submitit.helpers.DelayedSubmission(Task(self.origin, self.requeues, self.requeued + 1), *args)

    def _requeue(self, env: Any, profile: str, root: str, args: tuple[Any, ...]) -> None:
        """Save the next start (the same arguments) where submitit loads it, requeue, and end this start."""
        delayed = self.checkpoint(*args)
        delayed.dump(env.paths.submitted_pickle)  # type: ignore[union-attr]
        store.journal(profile, "requeued", None, root, task=env.job_id, requeued=self.requeued + 1)
        slurm.requeue(env.job_id)
        print(f"task {env.job_id} stopped by its time-limit warning: requeued ({self.requeued + 1} of at most "
              f"{self.requeues}); its runs resume from their checkpoints", file=sys.stderr, flush=True)
        sys.exit(-1)  # as submitit does: no result file, the job is not over, Slurm starts it again


def submittable(names: list[str], profile: str, root: str | None, seeds: Sequence[int] | None = None
                ) -> list[GridItem]:
    """The runs a submission sends: not stored, no live claim, not in a task of an earlier submission
    that is still in Slurm's queue (`slurm.queued_keys`), dataset present here."""
    busy = {c.key for c in store.claims(profile, root) if not c.stale()} | slurm.queued_keys(profile, root)
    return [i for i in _todo(names, profile, seeds, None, root)
            if i.spec.key() not in busy and available(i.spec.dataset)]


def submit(names: list[str], profile: str, *, executor: str, root: str | None = None, tasks: int | None = None,
           jobs: int = 1, seeds: Sequence[int] | None = None, opts: SlurmOptions = SlurmOptions(),
           log_dir: str | Path | None = None, device: str | None = None) -> tuple[list[submitit.Job], Path, int]:
    """Send the missing runs as one job array of `tasks` tasks (default: one per run); each trains its
    share, `jobs` at a time. Returns the jobs, the log folder and the number of runs sent.
    submitit's local executor has no queue (it starts every task at once), so a local submission has at
    most `opts.parallel` tasks (default: one per visible GPU on a cuda profile, else no limit), each on
    its own GPU, round-robin."""
    if tasks is not None and tasks < 1:
        raise ValueError(f"tasks={tasks!r} is not allowed; it must be an integer >= 1")
    if opts.requeues < 0:
        raise ValueError(f"--requeues {opts.requeues} is not allowed; it must be an integer >= 0")
    if executor == "slurm":
        slurm.check_time(opts.time)
    slurm.check_tasks_import_this_code()
    items = submittable(names, profile, root, seeds)
    abs_root = str(store.results_root(root).resolve())  # the tasks may start elsewhere
    folder = Path(log_dir) if log_dir is not None else store.profile_dir(profile, abs_root) / ".jobs"
    folder = folder.resolve() / "%j"
    if not items:
        return [], folder, 0
    n = min(tasks or len(items), len(items))
    gpus = devices.gpus_visible() if executor == "local" and profile_device(profile) == "cuda" else []
    if executor == "local" and (opts.parallel or gpus):
        n = min(n, opts.parallel or len(gpus))  # no more local tasks than may run at once
    shares = [[i.spec.key() for i in items[t::n]] for t in range(n)]
    ex = make_executor(executor, folder, opts, profile)
    threads = max(1, _cores() // n) if executor == "local" else None  # local tasks share this machine's cores
    per_task = [device] * n if device or not gpus else [f"cuda:{t % len(gpus)}" for t in range(n)]
    task = Task(slurm.provenance(), opts.requeues)
    jobs_ = ex.map_array(task, [names] * n, [profile] * n, shares, [abs_root] * n, [jobs] * n, [threads] * n,
                         per_task)
    if executor == "slurm" and jobs_:
        slurm.note_submission(profile, abs_root, [j.job_id for j in jobs_], shares)
    return jobs_, folder, len(items)


# ---------------------------------------------------------------- status

def _cost_kind(spec: RunSpec) -> tuple[Any, ...]:
    """What a run's wall time per epoch mostly depends on: network, width, precision, data and batch size."""
    return (spec.model, spec.width, spec.precision, spec.dataset, spec.train_subset, spec.batch_size)


def estimate_seconds(missing: Sequence[RunSpec], walls: Sequence[tuple[RunSpec, float, str | None]],
                     cpu: str | None = None, done: dict[str, int] | None = None,
                     bf16_kernels: str = "native") -> float | None:
    """Time to train `missing`, from stored runs' (spec, wall time, machine kind `store.made_on`): per
    run, its epochs not yet done (`done`: key -> epochs in its checkpoint) times the median wall time per
    epoch of stored runs of its kind, counting only those made on this machine's kind (`cpu`, its CPU
    model, with `bf16_kernels`, its path for bf16 products) when there are any, else those made on its
    CPU model on the other path, else all; a kind with no stored run counts the median run of all,
    scaled by the share of epochs left."""
    if not walls:
        return None
    by_kind: dict[tuple[Any, ...], list[tuple[float, str | None]]] = {}
    for spec, w, made_on in walls:
        by_kind.setdefault(_cost_kind(spec), []).append((w / spec.epochs, made_on))
    overall = statistics.median(w for _, w, _ in walls)
    total = 0.0
    for s in missing:
        left = max(s.epochs - (done or {}).get(s.key(), 0), 0)
        runs = by_kind.get(_cost_kind(s))
        if not runs:
            total += overall * left / s.epochs
            continue
        kind = store.machine_kind(cpu, s.precision, bf16_kernels) if cpu is not None else None
        here = [t for t, made_on in runs if kind is not None and made_on == kind]
        same_cpu = [t for t, made_on in runs
                    if cpu is not None and (made_on or "").removesuffix(store.FP32_KERNELS) == cpu]
        total += left * statistics.median(here or same_cpu or [t for t, _ in runs])
    return total


def status(profile: str, root: str | None = None) -> list[dict[str, Any]]:
    """Per study: runs in the grid, stored, claimed (live claim), failed (last attempt raised, no live
    claim), missing (the rest, dataset here), held (waiting for a design choice, see `GridItem.held`),
    unavailable here, and an estimated time to finish the missing, claimed and failed ones on this
    machine (`estimate_seconds`; a run with a checkpoint counts only its epochs left)."""
    walls = []
    for path in store.iter_records(profile, root):
        rec = store.read_json(path)
        spec = RunSpec.from_dict(rec["spec"])
        wall = store.median_epoch_s(rec) * spec.epochs if rec.get("epochs") else rec.get("wall_s")
        if wall is not None:  # a pause in a resumed run does not count
            walls.append((spec, float(wall), store.made_on(rec)))
    done = store.checkpoint_epochs(profile, root)
    live = {c.key for c in store.claims(profile, root) if not c.stale()}
    failed = set(store.failures(profile, root)) - live
    cpu, kernels = host.cpu()[0], bf16.kernels()
    rows = []
    for name, study in STUDIES.items():
        grid = study.grid(profile)
        todo = [i.spec for i in grid if not store.exists(i.spec, root)]
        waiting = {i.spec.key() for i in grid if i.held}
        here = [s for s in todo if available(s.dataset) and s.key() not in waiting]
        on_hold = [s for s in todo if available(s.dataset) and s.key() in waiting]
        claimed = [s for s in here if s.key() in live]
        failing = [s for s in here if s.key() in failed]
        missing = [s for s in here if s.key() not in live and s.key() not in failed]
        rows.append({"study": name, "paper": study.paper, "runs": len(grid), "done": len(grid) - len(todo),
                     "claimed": len(claimed), "failed": len(failing), "missing": len(missing),
                     "held": len(on_hold), "unavailable": len(todo) - len(here) - len(on_hold),
                     "eta_s": estimate_seconds(here, walls, cpu, done, kernels)})
    return rows


def _fmt_eta(s: float | None) -> str:
    if s is None:
        return "?"
    return time.strftime("%H:%M:%S", time.gmtime(s)) if s < 86400 else f"{s / 3600:.0f} h"


def _fmt_time(t: float | None) -> str:
    return "?" if t is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(t))


# ---------------------------------------------------------------- command line

EXECUTORS = {"inline": "this process (--jobs 1) or --jobs worker processes (the default)",
             "processes": "--jobs worker processes on this machine",
             "slurm": "one Slurm job array (submitit; needs sbatch)",
             "local": "the same job array as local processes (submitit's LocalExecutor)"}


SLURM_FLAGS = {"partition": (str, "Slurm partition"),
               "time": (int, f"time limit per task, minutes (default {SlurmOptions.time}; at least "
                             f"{slurm.MIN_TIME_MIN}: Slurm's warning comes {slurm.WARNING_S[0]}-{slurm.WARNING_S[1]} s "
                             "before the limit, and the task then stops and requeues itself)"),
               "gpus": (int, "GPUs per task"), "cpus": (int, "CPUs per task"),
               "mem": (str, "memory per task, e.g. 32G"), "account": (str, "Slurm account"),
               "qos": (str, "Slurm quality of service"),
               "parallel": (int, "tasks of the array running at once (default: no limit)"),
               "requeues": (int, f"times a task stopped by its time limit requeues itself (default "
                                 f"{SlurmOptions.requeues})")}


def add_cli(sub: Any) -> None:
    """Register `run` and `status` on the `python -m vml` parser."""
    p = sub.add_parser("run", help="train the missing runs of one or more studies (resumable)")
    p.add_argument("studies", nargs="+", help=f"study names ({', '.join(STUDIES)}) or 'all'")
    p.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    p.add_argument("--executor", default="inline", choices=list(EXECUTORS),
                   help="; ".join(f"{k}: {v}" for k, v in EXECUTORS.items()))
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes sharing the store (with slurm/local: runs at once inside each task)")
    p.add_argument("--limit", type=int, default=None, help="stop after this many runs (per worker)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N, of the profile's device class (cuda for gpu and paper, which refuse to "
                        "start without it); default: the profile's, and --jobs workers spread over the visible GPUs")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="only these seeds (e.g. `--seeds 1` for a first look at every setting)")
    p.add_argument("--root", default=None, help="results root (default: data/results or $VML_RESULTS_DIR)")
    p.add_argument("--verbose", action="store_true", help="a progress bar per run, not only per sweep")
    p.add_argument("--claim-timeout", type=float, default=None,
                   help=f"seconds without heartbeat before a claim is stale (default $VML_CLAIM_TIMEOUT "
                        f"or {store.CLAIM_TIMEOUT_S:.0f})")
    g = p.add_argument_group("slurm / local executors")
    g.add_argument("--tasks", type=int, default=None, help="tasks in the job array (default: one per run)")
    g.add_argument("--slurm-config", default=None, help="JSON file with the options below (flags override it)")
    g.add_argument("--log-dir", default=None, help="submitit's folder (default: <store>/.jobs)")
    g.add_argument("--wait", action="store_true",
                   help="slurm: wait for the job array, with a progress bar of its runs; exit 1 if a run is not stored")
    for name, (kind, text) in SLURM_FLAGS.items():
        g.add_argument(f"--{name}", type=kind, default=None, help=text)
    p.add_argument("--keys", nargs="+", default=None, help=argparse.SUPPRESS)
    p.add_argument("--task", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_cli_run)
    s = sub.add_parser("status", help="done, claimed, failed and missing runs of each study; time to finish")
    s.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    s.add_argument("--root", default=None)
    s.add_argument("--claim-timeout", type=float, default=None, help="as for `run`")
    s.set_defaults(func=_cli_status)


def _set_claim_timeout(value: float | None) -> None:
    if value is not None:
        if not value > 0:
            raise ValueError(f"--claim-timeout {value!r} is not allowed; it must be a number of seconds > 0")
        os.environ["VML_CLAIM_TIMEOUT"] = str(value)  # inherited by workers and local tasks
    store.claim_timeout()  # a bad $VML_CLAIM_TIMEOUT fails here, before anything starts


def _cli_run(args: Any) -> int:
    names = args.studies
    for n in names:
        if n != "all":
            get_study(n)
    _set_claim_timeout(args.claim_timeout)
    if args.wait and args.executor != "slurm":
        raise ValueError(f"--wait is for --executor slurm, not {args.executor} (which waits for its runs anyway)")
    if args.device is not None or args.executor != "slurm":  # a login node needs no GPU to submit
        devices.resolve(profile_device(args.profile), args.device, f"the {args.profile} profile")
    if args.executor in ("slurm", "local"):
        return _cli_submit(args)
    if args.executor == "processes" and args.jobs < 2:
        raise ValueError(f"--executor processes needs --jobs >= 2, not {args.jobs}")
    try:
        n = run(names, args.profile, jobs=args.jobs, root=args.root, quiet=not args.verbose, limit=args.limit,
                threads=args.threads, seeds=args.seeds, keys=args.keys, task=args.task, device=args.device)
    except Stopped as e:
        print(f"{e}: claims released, checkpoints kept; `python -m vml run` again resumes", file=sys.stderr)
        return 128 + signal.SIGTERM
    print(f"trained {n} run(s)")
    _print_held(names, args.profile, args.seeds, args.root)
    return 0


def _cli_submit(args: Any) -> int:
    opts = load_slurm_config(args.slurm_config) if args.slurm_config else SlurmOptions()
    opts = replace(opts, **{k: getattr(args, k) for k in SLURM_FLAGS if getattr(args, k) is not None})
    if args.executor == "slurm" and profile_device(args.profile) == "cuda" and not opts.gpus:
        raise ValueError(f"the {args.profile} profile trains on CUDA, and its tasks would get no GPU: give each task "
                         "one with --gpus N (or \"gpus\" in --slurm-config)")
    try:
        jobs, folder, n = submit(args.studies, args.profile, executor=args.executor, root=args.root,
                                 tasks=args.tasks, jobs=args.jobs, seeds=args.seeds, opts=opts, log_dir=args.log_dir,
                                 device=args.device)
    except NoSlurm as e:
        print(e, file=sys.stderr)
        return 2
    except slurm.SlurmError as e:  # cannot tell which runs earlier submissions still hold
        print(f"cannot submit: {e}", file=sys.stderr)
        return 1
    if not jobs:
        print("nothing to submit: every run is stored, claimed, held, or lacks its dataset here "
              "(`python -m vml status`)")
        _print_held(args.studies, args.profile, args.seeds, args.root)
        return 0
    ids = sorted({j.job_id.split("_")[0] for j in jobs})  # Slurm: one array; local: one process per task
    logs = (str(folder).replace("%j", f"{ids[0]}_<task>" if len(jobs) > 1 else ids[0]) if args.executor == "slurm"
            else str(folder).replace("%j", "<job id>"))  # submitit names an array task's folder <job>_<task>
    print(f"submitted {n} run(s) as {len(jobs)} task(s) ({args.executor} job{'s' * (len(ids) > 1)} "
          f"{', '.join(ids)}); logs in {logs}")
    _print_held(args.studies, args.profile, args.seeds, args.root)
    if args.executor == "slurm":
        print(f"Slurm warns each task {slurm.WARNING_S[0]}-{slurm.WARNING_S[1]} s before its --time limit; "
              f"the task then stops, keeps its checkpoints and requeues itself (at most {opts.requeues} times)")
        return _wait(args, jobs) if args.wait else 0
    failed = [(j.job_id, e) for j in jobs if (e := j.exception()) is not None]  # waits for the local tasks
    for job_id, e in failed:
        print(f"task {job_id} failed: {str(e).strip().splitlines()[-1]}", file=sys.stderr)
    return 1 if failed else 0


def _wait(args: Any, jobs: list[submitit.Job]) -> int:
    """`--wait`: until the array has left Slurm's queue; 1 (and why) if any of its runs is not stored."""
    job = jobs[0].job_id.split("_")[0]
    root = store.results_root(args.root).resolve()
    noted = slurm.submission(args.profile, root, job)
    tasks = noted["tasks"]
    results = {j.job_id: j.paths.result_pickle for j in jobs}
    try:
        problems = slurm.wait(job, tasks, args.profile, root, results, since=noted["time"])
    except slurm.SlurmError as e:
        print(f"cannot follow job {job} any more: {e}; `python -m vml status` shows where it stands", file=sys.stderr)
        return 1
    for line in problems:
        print(line, file=sys.stderr)
    stored = sum(len(keys) for keys in tasks.values()) - len(problems)
    print(f"job {job} done: {stored} run(s) stored, {len(problems)} not")
    return 1 if problems else 0


def _print_checkpoints(profile: str, root: str | None, live: set[str], queued: dict[str, list[str]]) -> None:
    """One line per run trained part way: its epochs done of all, and who resumes it (`queued`: Slurm
    task -> its runs, for the tasks still in Slurm's queue)."""
    done = store.checkpoint_epochs(profile, root)
    if not done:
        return
    specs = {i.spec.key(): i.spec for i in plan(["all"], profile)}
    in_task = {k: t for t, keys in queued.items() for k in keys}
    print("\ncheckpoints (runs trained part way):")
    for key, n in done.items():
        spec = specs.get(key)
        of = f" of {spec.epochs}" if spec else " (a run of no study)"
        state = ("in training" if key in live else
                 "stored since (the checkpoint is left over)" if spec and store.exists(spec, root) else
                 f"resumed by Slurm task {in_task[key]}, queued" if key in in_task else
                 "resumed when a `run` reaches it")
        print(f"  {key} epoch {n}{of}: {state}")


def _gpu_line() -> str:
    """The GPUs a cuda profile's `run` would use here, and how `--jobs` shares them."""
    gpus = devices.gpus_visible()
    if not gpus:
        return (f"GPUs: none ({devices.why_no_cuda()}); this profile's runs train where there is one "
                "(`run --executor slurm --gpus 1`, or a store of their own merged here with `python -m vml merge`)")
    names = [f"{g}: {torch.cuda.get_device_name(i)}, {torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB"
             for i, g in enumerate(gpus)]
    return (f"GPUs: {len(gpus)} ({'; '.join(names)}); `run --jobs J` puts J workers round-robin on them, more than "
            "one per GPU where its memory holds them (benchmarks/gpu_check.py measures a run's peak memory)")


def _cli_status(args: Any) -> int:
    _set_claim_timeout(args.claim_timeout)
    rows = status(args.profile, args.root)
    kernels = bf16.kernels()
    print(f"profile {args.profile} (eta: one run after another, at the speed of stored runs of the same kind, "
          "made on this CPU model, with bf16 on the same kernels, when there are any)")
    print(f"this machine: {host.cpu()[0]}; bf16 products on {kernels} kernels"
          + (" (no bf16 hardware, or oneDNN capped below it: vml.bf16)" if kernels == "fp32" else ""))
    if profile_device(args.profile) == "cuda":
        print(_gpu_line())
    ws, wp = (max(len(x) for x in [head] + [r[head] for r in rows]) for head in ("study", "paper"))
    nums = ("runs", "done", "claimed", "failed", "missing", "held", "unavailable")
    print(f"{'study':<{ws}} {'paper':<{wp}} " + " ".join(f"{h if len(h) <= 8 else h[:7] + '.':>8}" for h in nums)
          + f" {'eta':>9}")
    for r in rows:
        print(f"{r['study']:<{ws}} {r['paper']:<{wp}} " + " ".join(f"{r[h]:>8}" for h in nums)
              + f" {_fmt_eta(r['eta_s']):>9}")
    now = time.time()
    found = store.claims(args.profile, args.root)
    if found:
        print(f"\nclaims (stale after {store.claim_timeout():.0f} s without heartbeat):")
        for c in found:
            print(f"  {c.key} {'stale' if c.stale(now) else 'live '} host {c.host} pid {c.pid} task {c.task} "
                  f"since {_fmt_time(c.since)}, heartbeat {now - c.heartbeat:.0f} s ago"
                  + (" (older version: no heartbeat)" if c.legacy else ""))
    try:
        queued = slurm.queued_tasks(args.profile, args.root)
        lines = slurm.queue_lines(args.profile, args.root, queued)
    except slurm.SlurmError as e:
        queued, lines = {}, [f"  cannot ask Slurm which submitted tasks are queued: {e}"]
    _print_checkpoints(args.profile, args.root, {c.key for c in found if not c.stale(now)}, queued)
    if lines:
        print("\nin Slurm's queue (submitted; a task stopped by its time limit requeues itself):")
        for line in lines:
            print(line)
    failed = store.failures(args.profile, args.root)
    if failed:
        print("\nfailed (last attempt; `python -m vml run` retries them):")
        for key, f in failed.items():
            print(f"  {key} host {f['host']} task {f['task']} at {_fmt_time(f['time'])}: {f['error']}")
    notes = [f"held: {n} run(s) {reason.removeprefix('held ')}"
             for reason, n in held(list(STUDIES), args.profile, None, args.root).items()]
    if notes or any(r["unavailable"] for r in rows):
        print()
    for line in notes:
        print(line)
    if any(r["unavailable"] for r in rows):
        print("unavailable: runs whose dataset is not on this machine (CIFAR-100 needs the official data: "
              "set VML_DATA_DIR or let torchvision download it, then `python -m vml run architectures`)")
    return 0
