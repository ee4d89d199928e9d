"""The paper's experiments as named grids of runs, and the resumable runner that fills the store.

A study is a list of `GridItem`s (a `RunSpec` plus descriptive tags). Runs shared between studies
are trained once: the store is keyed by the spec, not by the study.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from . import store
from .spec import PROFILES, RunSpec, profile_spec

SEEDS_PAPER = 5      # the paper's S = {1, ..., 5}
SEEDS_POOL = 20      # the 20-seed CIFAR-10 pool of Table 3 / Table 4 / Fig. 1
SMOKE_SEEDS = 2      # the smoke profile shrinks every grid to keep tests fast

# Architectures (Table 2) at each profile's widths: settings that differ from the profile's own.
ARCHITECTURES = ("resnet14", "vgg16", "shufflenetv2", "mobilenetv2")
ARCH_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "smoke": {m: dict(width=0.25) for m in ARCHITECTURES},
    # the cpu profile's lr 0.8 + Nesterov was tuned for fastnet; the four networks train with the
    # paper's optimiser (lr 0.4, plain momentum) and one warm-up epoch, at widths that fit ~3 min here
    "cpu": {m: dict(width=w, lr=0.4, nesterov=False, warmup_epochs=1.0, **extra) for m, w, extra in (
        ("resnet14", 0.25, {}), ("vgg16", 0.25, {}), ("shufflenetv2", 0.25, {"precision": "fp32"}),
        ("mobilenetv2", 0.125, {}))},
    "gpu": {m: dict(width=1.0) for m in ARCHITECTURES},
    "paper": {m: dict(width=1.0) for m in ARCHITECTURES},
}

# Ablations (Fig. 3): one knob at a time around Table 5; the tag style is the paper's (SLA005: α = 0.05).
ABLATIONS: dict[str, tuple[str, tuple[float, ...]]] = {
    "SLA": ("alpha", (0.01, 0.05, 0.10, 0.20)),
    "SLB": ("beta", (0.05, 0.10, 0.20, 0.50)),
    "SLD": ("delta", (0.05, 0.10, 0.20, 0.50)),
    "SLW": ("warmup_steps", (0, 50, 100, 200)),
    "SW": ("lambda_base", (0.01, 0.05, 0.10, 0.50, 1.00)),
}
VPL_WEIGHT = 0.05  # the reconstructed within-class logit variance term: our choice, the paper gives none


@dataclass(frozen=True)
class GridItem:
    """One run of a study: its spec, tags that describe its role, whether to keep its probabilities."""

    spec: RunSpec
    tags: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    keep_probs: bool = False


@dataclass(frozen=True)
class Study:
    """A named experiment of the paper: `grid(profile)` lists its runs."""

    name: str
    paper: str
    make: Callable[[str], list[GridItem]]

    def grid(self, profile: str) -> list[GridItem]:
        """The runs of this study under `profile`."""
        if profile not in PROFILES:
            raise ValueError(f"unknown profile {profile!r}; use one of {sorted(PROFILES)}")
        return self.make(profile)


def _seeds(profile: str, n: int) -> range:
    return range(1, (min(n, SMOKE_SEEDS) if profile == "smoke" else n) + 1)


def _pool(profile: str, n: int = SEEDS_POOL) -> list[GridItem]:
    # seed outer, loss inner: a sweep stopped early leaves matched Base/VML pairs, not one arm
    return [GridItem(profile_spec(profile, loss=loss, seed=s), {"pool": "seed-groups"}, keep_probs=True)
            for s in _seeds(profile, n) for loss in ("base", "vml")]


def _sources(profile: str) -> list[GridItem]:
    items = []
    for vary in ("all", "init", "aug", "shuf"):
        for s in _seeds(profile, SEEDS_PAPER):
            for loss in ("base", "vml"):
                items.append(GridItem(profile_spec(profile, loss=loss, vary=vary, seed=s),
                                      keep_probs=vary == "all"))  # vary=all runs are also in the pool
    return items


def _arch_spec(profile: str, dataset: str, model: str, loss: str, seed: int) -> RunSpec:
    # one Table 2 cell's run: the network's profile settings; the smoke profile keeps its synthetic data
    over = dict(ARCH_SETTINGS[profile][model], model=model, loss=loss, seed=seed)
    if profile != "smoke":
        over["dataset"] = dataset
    return profile_spec(profile, **over)


def _architectures(profile: str) -> list[GridItem]:
    datasets = ("cifar10",) if profile == "smoke" else ("cifar10", "cifar100")  # smoke: synthetic only
    return [GridItem(_arch_spec(profile, dataset, model, loss, s))
            for dataset in datasets for model in ARCHITECTURES
            for s in _seeds(profile, SEEDS_PAPER) for loss in ("base", "vml")]


def ablation_tag(prefix: str, value: float) -> str:
    """The paper's tag for a setting: SLA005 for α = 0.05, SLW200 for W = 200, SW010 for λ_base = 0.10."""
    return f"{prefix}{int(value)}" if prefix == "SLW" else f"{prefix}{round(value * 100):03d}"


def _ablations(profile: str) -> list[GridItem]:
    items = []
    for prefix, (knob, values) in ABLATIONS.items():
        for value in values:
            for s in _seeds(profile, SEEDS_PAPER):
                spec = profile_spec(profile, loss="vml", seed=s, vml={knob: value})
                items.append(GridItem(spec, {"knob": knob, "value": value, "tag": ablation_tag(prefix, value)},
                                      keep_probs=spec == profile_spec(profile, loss="vml", seed=s)))
    return items


def _vpl(profile: str) -> list[GridItem]:
    return [GridItem(profile_spec(profile, loss="vml", seed=s, vml={"vpl_weight": w}), {"vpl_weight": w},
                     keep_probs=w == 0.0)
            for w in (0.0, VPL_WEIGHT) for s in _seeds(profile, SEEDS_PAPER)]


REPLICATION_MODEL = "vgg16"  # the Table 2 network whose verdict went against VML (chapter 6)


def _replication(profile: str) -> list[GridItem]:
    # Table 2's CIFAR-10 cell for REPLICATION_MODEL on new seeds (6-10): does its verdict hold on fresh draws?
    first = SEEDS_PAPER + 1
    return [GridItem(_arch_spec(profile, "cifar10", REPLICATION_MODEL, loss, s))
            for s in range(first, first + len(_seeds(profile, SEEDS_PAPER))) for loss in ("base", "vml")]


# The decisive test (chapter "The decisive test"): pre-registered before any of its runs was trained.
# Every number here is fixed in advance; n is not changed after looking at the data.
POWERED_MODEL = "resnet14"   # the paper's network, at its cpu Table 2 settings (where seed spread is real)
POWERED_N_SHORT = 50         # seeds per arm at the Table 2 length (seeds 1-5 are the stored Table 2 runs)
POWERED_N_LONG = 30          # seeds per arm at the long length
POWERED_EPOCHS_LONG = 15     # 1470 steps: 86% of them after sigma_ref latches at step 200 (W = 200)
POWERED_EPOCHS_LONG_ALT = 11  # the pilot's alternative (81% after the latch), see `long_epochs`
PILOT_SEEDS = (1, 2, 3, 4, 5)  # Base only, at POWERED_EPOCHS_LONG: no look at the VML arm
# small-data, long-run protocol for Fig. 1 and a second variance test: FastNet (the cpu net) on a
# class-balanced 10% of CIFAR-10, batch 128 (lr scaled linearly from 0.8 at batch 512), 40 epochs:
# 40 steps per epoch, 1600 steps, sigma_ref latched at step 200 = 12.5% of the run
SMALL_DATA = dict(train_subset=5000, batch_size=128, lr=0.2, epochs=40)
SMALL_N = 20


def long_epochs(pilot_observed_sd: float | None = None, pilot_floor_sd: float | None = None) -> int:
    """The long arm's epoch count, by the rule declared before the pilot: POWERED_EPOCHS_LONG unless the
    pilot's Base spread is mostly test-set noise (observed SD <= 1.25 x the independent-errors floor),
    in which case the shorter POWERED_EPOCHS_LONG_ALT, where more seed variance is left."""
    if pilot_observed_sd is None or pilot_floor_sd is None:
        return POWERED_EPOCHS_LONG
    return POWERED_EPOCHS_LONG_ALT if pilot_observed_sd <= 1.25 * pilot_floor_sd else POWERED_EPOCHS_LONG


def _powered(profile: str, epochs_long: int = POWERED_EPOCHS_LONG) -> list[GridItem]:
    # seed outer, loss inner: a sweep stopped early leaves matched pairs; the pilot (Base, seeds 1-5 of
    # the long arm) first, then the short arm, then the rest of the long arm
    n_short = SMOKE_SEEDS if profile == "smoke" else POWERED_N_SHORT
    n_long = SMOKE_SEEDS if profile == "smoke" else POWERED_N_LONG
    short = [GridItem(_arch_spec(profile, "cifar10", POWERED_MODEL, loss, s), {"arm": "short"})
             for s in range(1, n_short + 1) for loss in ("base", "vml")]
    long = [GridItem(_arch_spec(profile, "cifar10", POWERED_MODEL, loss, s).replace(epochs=epochs_long),
                     {"arm": "long"}) for s in range(1, n_long + 1) for loss in ("base", "vml")]
    pilot = [i for i in long if i.spec.loss == "base" and i.spec.seed in PILOT_SEEDS]
    return pilot + short + [i for i in long if i not in pilot]


def _reactivity_long(profile: str) -> list[GridItem]:
    over = {} if profile == "smoke" else SMALL_DATA
    n = SMOKE_SEEDS if profile == "smoke" else SMALL_N
    return [GridItem(profile_spec(profile, loss=loss, seed=s, **over), {"arm": "small-data"}, keep_probs=True)
            for s in range(1, n + 1) for loss in ("base", "vml")]


STUDIES: dict[str, Study] = {s.name: s for s in (
    Study("seed-groups", "Table 3, Fig. 2", _pool),
    Study("sources", "Table 1", _sources),
    Study("architectures", "Table 2", _architectures),
    Study("comparison", "Table 4", _pool),
    Study("reactivity", "Fig. 1", lambda p: [i for i in _pool(p) if i.spec.loss == "vml"]),
    Study("ablations", "Fig. 3", _ablations),
    Study("vpl", "ours (appendix A.1)", _vpl),
    Study("replication", "ours (Table 2, new seeds)", _replication),
    Study("powered", "ours (Table 2's ResNet-14, 50 + 30 seeds)", _powered),
    Study("reactivity-long", "Fig. 1 (ours: 40 epochs, 10% of the data)", _reactivity_long),
)}


def get_study(name: str) -> Study:
    """The study called `name`."""
    if name not in STUDIES:
        raise ValueError(f"unknown study {name!r}; use one of {list(STUDIES)} or 'all'")
    return STUDIES[name]


def plan(names: list[str], profile: str) -> list[GridItem]:
    """The unique runs of the named studies, in order (a run shared by studies appears once)."""
    seen: dict[str, GridItem] = {}
    for name in (list(STUDIES) if names == ["all"] else names):
        for item in get_study(name).grid(profile):
            key = item.spec.key()
            if key not in seen or (item.keep_probs and not seen[key].keep_probs):
                seen[key] = item if key not in seen else GridItem(seen[key].spec, seen[key].tags, True)
    return list(seen.values())


# ---------------------------------------------------------------- data availability

_DATA: dict[str, Any] = {}


def dataset_or_none(name: str) -> Any:
    """The loaded dataset (cached per process), or None when it is not available on this machine."""
    if name not in _DATA:
        from .data import load_dataset

        try:
            _DATA[name] = load_dataset(name)
        except FileNotFoundError:
            _DATA[name] = None
    return _DATA[name]


# ---------------------------------------------------------------- running

def select_seeds(items: list[GridItem], seeds: Sequence[int] | None) -> list[GridItem]:
    """The items whose seed is in `seeds` (all items when None); a seed that no item has is an error."""
    if seeds is None:
        return items
    have = sorted({i.spec.seed for i in items})
    for s in seeds:
        if s not in have:
            raise ValueError(f"seed {s!r} is not in these studies; their seeds are {have}")
    return [i for i in items if i.spec.seed in set(seeds)]


def run(names: list[str], profile: str, *, jobs: int = 1, root: str | None = None, quiet: bool = True,
        limit: int | None = None, threads: int | None = None, seeds: Sequence[int] | None = None) -> int:
    """Train every missing run of the named studies (only `seeds`, when given); returns how many
    runs this call trained."""
    if jobs < 1:
        raise ValueError(f"jobs={jobs!r} is not allowed; it must be an integer >= 1")
    if threads is not None and threads < 1:
        raise ValueError(f"threads={threads!r} is not allowed; it must be an integer >= 1")
    if limit is not None and limit < 0:
        raise ValueError(f"limit={limit!r} is not allowed; it must be an integer >= 0")
    select_seeds(plan(names, profile), seeds)  # fail before starting workers
    if jobs > 1:
        return _run_parallel(names, profile, jobs=jobs, root=root, limit=limit, seeds=seeds)
    import torch
    from tqdm import tqdm

    from .train import train

    if threads:
        os.environ["VML_THREADS"] = str(threads)  # the trainer sets its thread count from this
        torch.set_num_threads(threads)
    items = select_seeds(plan(names, profile), seeds)
    for item in items:
        if (moved := store.set_aside_if_corrupt(item.spec, root)) is not None:
            print(f"set aside the corrupt record {moved}; training its run again", file=sys.stderr)
    todo = [i for i in items if not store.exists(i.spec, root)]
    done, skipped = 0, set()
    bar = tqdm(todo, desc=f"{','.join(names)} [{profile}]", unit="run", disable=None, dynamic_ncols=True)
    for item in bar:
        if limit is not None and done >= limit:
            break
        spec = item.spec
        data = dataset_or_none(spec.dataset)
        if data is None:
            skipped.add(spec.dataset)
            continue
        if not store.claim(spec, root):
            continue
        try:
            store.journal(profile, "start", spec.key(), root)
            ckpt = store.profile_dir(profile, root) / ".checkpoints"
            rec = train(spec, quiet=quiet, checkpoint_dir=ckpt, keep_probs=item.keep_probs, data=data)
            store.save(rec, root)
            store.journal(profile, "done", spec.key(), root, wall_s=rec.wall_s)
            done += 1
            bar.set_postfix(acc=f"{rec.test_acc:.4f}", wall=f"{rec.wall_s:.0f}s")
        finally:
            store.release(spec, root)
    for name in sorted(skipped):
        print(f"skipped the {name} runs: no {name} data here (see `python -m vml status`)", file=sys.stderr)
    return done


def _run_parallel(names: list[str], profile: str, *, jobs: int, root: str | None, limit: int | None,
                  seeds: Sequence[int] | None = None) -> int:
    threads = max(1, (os.cpu_count() or 1) // jobs)
    cmd = [sys.executable, "-m", "vml", "run", *names, "--profile", profile, "--threads", str(threads)]
    if root is not None:
        cmd += ["--root", str(root)]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    if seeds is not None:
        cmd += ["--seeds", *map(str, seeds)]
    before = sum(1 for _ in store.iter_records(profile, root))
    env = dict(os.environ, VML_THREADS=str(threads))  # jobs x threads <= cores: no oversubscription
    procs = [subprocess.Popen(cmd, env=env) for _ in range(jobs)]
    codes = [p.wait() for p in procs]
    if any(codes):
        raise RuntimeError(f"a worker of `{' '.join(cmd[1:])}` failed with exit codes {codes}")
    return sum(1 for _ in store.iter_records(profile, root)) - before


def _cost_kind(spec: RunSpec) -> tuple[Any, ...]:
    """What a run's wall time mostly depends on: network, width, precision, epochs, dataset."""
    return (spec.model, spec.width, spec.precision, spec.epochs, spec.dataset)


def estimate_seconds(missing: Sequence[RunSpec], walls: Sequence[tuple[RunSpec, float]]) -> float | None:
    """Time to train `missing`: per run, the median wall time of stored runs of its kind, else of all runs."""
    if not walls:
        return None
    by_kind: dict[tuple[Any, ...], list[float]] = {}
    for spec, w in walls:
        by_kind.setdefault(_cost_kind(spec), []).append(w)
    overall = statistics.median(w for _, w in walls)
    return sum(statistics.median(by_kind[k]) if (k := _cost_kind(s)) in by_kind else overall for s in missing)


def status(profile: str, root: str | None = None) -> list[dict[str, Any]]:
    """Per study: runs in the grid, stored, missing, unavailable here, and an estimated time to finish."""
    from .data import available  # looks for files only: never loads or downloads a dataset

    walls = []
    for path in store.iter_records(profile, root):
        rec = store.read_json(path)
        if rec.get("wall_s") is not None:
            walls.append((RunSpec.from_dict(rec["spec"]), float(rec["wall_s"])))
    rows = []
    for name, study in STUDIES.items():
        grid = study.grid(profile)
        todo = [i.spec for i in grid if not store.exists(i.spec, root)]
        done = len(grid) - len(todo)
        missing = [s for s in todo if available(s.dataset)]
        rows.append({"study": name, "paper": study.paper, "runs": len(grid), "done": done,
                     "missing": len(missing), "unavailable": len(todo) - len(missing),
                     "eta_s": estimate_seconds(missing, walls)})
    return rows


def _fmt_eta(s: float | None) -> str:
    if s is None:
        return "?"
    return time.strftime("%H:%M:%S", time.gmtime(s)) if s < 86400 else f"{s / 3600:.0f} h"


# ---------------------------------------------------------------- command line

def add_cli(sub: Any) -> None:
    """Register `run` and `status` on the `python -m vml` parser."""
    p = sub.add_parser("run", help="train the missing runs of one or more studies (resumable)")
    p.add_argument("studies", nargs="+", help=f"study names ({', '.join(STUDIES)}) or 'all'")
    p.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    p.add_argument("--jobs", type=int, default=1, help="worker processes sharing the store")
    p.add_argument("--limit", type=int, default=None, help="stop after this many runs (per worker)")
    p.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="only these seeds (e.g. `--seeds 1` for a first look at every setting)")
    p.add_argument("--root", default=None, help="results root (default: data/results or $VML_RESULTS_DIR)")
    p.add_argument("--verbose", action="store_true", help="a progress bar per run, not only per sweep")
    p.set_defaults(func=_cli_run)
    s = sub.add_parser("status", help="how many runs each study has, misses, and the time to finish")
    s.add_argument("--profile", default="cpu", choices=sorted(PROFILES))
    s.add_argument("--root", default=None)
    s.set_defaults(func=_cli_status)


def _cli_run(args: Any) -> int:
    names = args.studies
    for n in names:
        if n != "all":
            get_study(n)
    n = run(names, args.profile, jobs=args.jobs, root=args.root, quiet=not args.verbose, limit=args.limit,
            threads=args.threads, seeds=args.seeds)
    print(f"trained {n} run(s)")
    return 0


def _cli_status(args: Any) -> int:
    rows = status(args.profile, args.root)
    print(f"profile {args.profile}")
    ws, wp = (max(len(x) for x in [head] + [r[head] for r in rows]) for head in ("study", "paper"))
    print(f"{'study':<{ws}} {'paper':<{wp}} {'runs':>5} {'done':>5} {'missing':>8} {'unavail.':>8} {'eta':>9}")
    for r in rows:
        print(f"{r['study']:<{ws}} {r['paper']:<{wp}} {r['runs']:>5} {r['done']:>5} {r['missing']:>8} "
              f"{r['unavailable']:>8} {_fmt_eta(r['eta_s']):>9}")
    unavailable = sum(r["unavailable"] for r in rows)
    if unavailable:
        print("unavailable: runs whose dataset is not on this machine (CIFAR-100 needs the official data: "
              "set VML_DATA_DIR or let torchvision download it, then `python -m vml run architectures`)")
    return 0
