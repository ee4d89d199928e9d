"""Merge another results store into this one: runs trained elsewhere (a cluster's store, a rented GPU
machine, a colleague's clone) join the store the book reads.

    python -m vml merge SRC [--profile P ...] [--root ROOT] [--dry-run]

SRC is a results root like `data/results`: one folder per profile, one `<key>.json` record per run. A
record joins when it is valid here: it parses, its arrays decode, its spec is one this version reads
and hashes to the file's name, it lies in the folder of its own profile, and it was scored on this
store's test labels (when this store has no labels of that dataset yet, SRC's come with it). The store
keeps one record per spec, so a record already here is never replaced: an identical copy is skipped,
and a run of the same spec made elsewhere (other digits: another machine) is reported and left out.
A run being trained here (a live claim) is left out too; merge again once it is done.

Each record is written atomically under the run's claim, the same claim sweeps take, so a merge beside
running sweeps or killed half way leaves only whole records and no run twice; running it again
completes it. SRC is only read: a corrupt file there is named, never moved or changed.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import store
from ._io import atomic_write_text
from .spec import PROFILES, RunSpec


@dataclass
class MergeReport:
    """What `merge` did (or, with dry_run, would do) per profile: keys added, already here (identical),
    differing from the record here, being trained here; files left out as invalid, with the reason."""

    added: dict[str, list[str]] = field(default_factory=dict)
    identical: dict[str, list[str]] = field(default_factory=dict)
    differ: dict[str, list[str]] = field(default_factory=dict)
    in_training: dict[str, list[str]] = field(default_factory=dict)
    invalid: list[tuple[Path, str]] = field(default_factory=list)

    def note(self, kind: str, profile: str, key: str) -> None:
        getattr(self, kind).setdefault(profile, []).append(key)


class _Invalid(Exception):
    """A record of SRC that cannot join this store (the message says why)."""


def _labels_sha(labels_file: Path) -> str:
    """The sha of the other store's labels file, checked against the labels it holds."""
    try:
        d = store.read_json(labels_file)
        sha = store.labels_sha(store.decode_array(d["labels"]))
    except Exception as e:  # not JSON, no labels, an array that does not decode: a damaged file
        raise _Invalid(f"its test labels {labels_file} are damaged ({type(e).__name__})") from None
    if d.get("sha") != sha:
        raise _Invalid(f"its test labels {labels_file} name sha {d.get('sha')} but hash to {sha}")
    return sha


def _check(path: Path, profile: str) -> tuple[RunSpec, dict[str, Any]]:
    """The spec and parsed record of SRC's file `path`, or `_Invalid` with the reason it cannot join."""
    try:
        rec = store.read_json(path)
    except store.CorruptRecord as e:
        raise _Invalid(f"not valid JSON ({e.why})") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("spec"), dict):
        raise _Invalid("no run spec in it: not a record of a results store")
    if rec.get("format") != store.RECORD_FORMAT:
        raise _Invalid(f"record format {rec.get('format')!r}; this version of vml reads format {store.RECORD_FORMAT}")
    try:
        spec = RunSpec.from_dict(rec["spec"])
    except (TypeError, ValueError) as e:
        raise _Invalid(f"its spec is not one this version of vml reads ({e})") from None
    if spec.key() != path.stem or rec.get("key") != path.stem:
        raise _Invalid(f"its spec hashes to {spec.key()}, not to its file name")
    if spec.profile != profile:
        raise _Invalid(f"a run of profile {spec.profile!r} in the {profile!r} folder")
    try:
        for d in (*rec.get("arrays", {}).values(), *rec.get("iters", {}).values()):
            store.decode_array(d)
    except Exception as e:  # truncated base64, bad zlib stream, wrong shape: all mean a damaged file
        raise _Invalid(f"an array does not decode ({type(e).__name__}: {e})") from None
    return spec, rec


def _profiles(src: Path, profiles: list[str] | None) -> list[str]:
    found = sorted(p.name for p in src.iterdir() if p.is_dir() and p.name in PROFILES)
    if profiles is None:
        if not found:
            hint = f"; {src} is itself a profile's folder: give {src.parent}" if src.name in PROFILES else ""
            raise ValueError(f"{src} holds no results store: expected folders named after profiles "
                             f"({', '.join(sorted(PROFILES))}) holding <key>.json records{hint}")
        return found
    for p in profiles:
        if p not in PROFILES:
            raise ValueError(f"profile {p!r} is not allowed; use one of {sorted(PROFILES)}")
        if p not in found:
            raise ValueError(f"{src} has no {p!r} folder (it has: {', '.join(found) or 'none'})")
    return list(profiles)


def merge(src: str | Path, root: str | Path | None = None, profiles: list[str] | None = None,
          dry_run: bool = False) -> MergeReport:
    """Copy the valid records of the results store `src` that this store (`root`) lacks; see the module
    docstring. With `dry_run`, write nothing and report what would be done."""
    src = Path(src)
    if not src.is_dir():
        raise ValueError(f"{src} is not a folder; give the results root of another store (like data/results)")
    if src.resolve() == store.results_root(root).resolve():
        raise ValueError(f"{src} is this store itself; give the results root of another store")
    report = MergeReport()
    for profile in _profiles(src, profiles):
        here = store.profile_dir(profile, root)
        labels: dict[str, str] = {}  # dataset -> this store's labels sha, once read (or brought)
        for path in store.iter_records(profile, src):
            try:
                spec, rec = _check(path, profile)
                sha = labels.get(spec.dataset) or _labels_here(here, src / profile, spec.dataset, dry_run)
                labels[spec.dataset] = sha
                if rec.get("labels_sha") != sha:
                    raise _Invalid(f"scored on other test labels of {spec.dataset!r} than this store's "
                                   f"(sha {rec.get('labels_sha')} vs {sha})")
            except _Invalid as e:
                report.invalid.append((path, str(e)))
                continue
            report.note(_merge_one(spec, path, root, dry_run), profile, spec.key())
    return report


def _labels_here(here: Path, there: Path, dataset: str, dry_run: bool) -> str:
    """This store's labels sha for `dataset`; when it has none, SRC's labels file is copied first (so a
    record never lands without its labels) and its sha returned."""
    mine, theirs = here / "labels" / f"{dataset}.json", there / "labels" / f"{dataset}.json"
    if mine.exists():
        return store.read_json(mine)["sha"]  # this store's own: `store.save` checked it
    if not theirs.exists():
        raise _Invalid(f"no test labels of {dataset!r} in either store ({theirs} is missing)")
    sha = _labels_sha(theirs)
    if not dry_run:
        atomic_write_text(mine, theirs.read_text(encoding="utf-8"))
    return sha


def _merge_one(spec: RunSpec, path: Path, root: str | Path | None, dry_run: bool) -> str:
    """Add one checked record of SRC; returns the report's kind for it."""
    mine = store.record_path(spec, root)
    text = path.read_text(encoding="utf-8")
    if mine.exists():
        return "identical" if mine.read_text(encoding="utf-8") == text else "differ"
    if dry_run:
        return "in_training" if any(c.key == spec.key() and not c.stale() for c in store.claims(spec.profile, root)) \
            else "added"
    if not store.claim(spec, root, task="merge"):  # a live claim here, or its record landed meanwhile
        return _merge_one(spec, path, root, dry_run=True) if mine.exists() else "in_training"
    try:
        atomic_write_text(mine, text)
        store.journal(spec.profile, "merged", spec.key(), root)
    finally:
        store.release(spec, root)
    return "added"


def summary(report: MergeReport, dry_run: bool = False) -> list[str]:
    """The report as lines for a terminal: one per profile, then one per record left out."""
    lines = []
    for profile in sorted({*report.added, *report.identical, *report.differ, *report.in_training}):
        n = {kind: len(getattr(report, kind).get(profile, [])) for kind in
             ("added", "identical", "differ", "in_training")}
        lines.append(f"{profile}: {n['added']} {'to add' if dry_run else 'added'}, {n['identical']} already here, "
                     f"{n['differ']} made elsewhere too (kept this store's), {n['in_training']} being trained here")
    for profile, keys in sorted(report.differ.items()):
        lines += [f"left out {profile}/{k}.json: this store holds another run of the same spec" for k in keys]
    for profile, keys in sorted(report.in_training.items()):
        lines += [f"left out {profile}/{k}.json: a sweep here is training it (merge again once it is done)"
                  for k in keys]
    lines += [f"left out {path}: {why}" for path, why in report.invalid]
    return lines


def _main(args: argparse.Namespace) -> int:
    report = merge(args.src, args.root, args.profile, args.dry_run)
    for line in summary(report, args.dry_run):
        print(line, file=sys.stderr if line.startswith("left out") else sys.stdout)
    return 1 if report.invalid else 0


def add_cli(sub: Any) -> None:
    """Register `merge` on the `python -m vml` parser."""
    p = sub.add_parser("merge", help="add the runs of another results store (a cluster's, a GPU machine's) to this one")
    p.add_argument("src", help="the other store's results root (holding one folder per profile)")
    p.add_argument("--profile", nargs="+", default=None, choices=sorted(PROFILES),
                   help="only these profiles (default: every profile folder in SRC)")
    p.add_argument("--root", default=None, help="this store's results root (default: data/results or $VML_RESULTS_DIR)")
    p.add_argument("--dry-run", action="store_true", help="write nothing; say what would be added")
    p.set_defaults(func=_main)
