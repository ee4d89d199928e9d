"""The results store: one JSON file per run under `data/results/<profile>/`, keyed by the spec's hash.

Writes are atomic (temporary file, fsync, `os.replace`), so a run killed at any moment leaves either
no record or a whole one. Concurrent sweeps claim runs with exclusive lock files, so no run is
trained twice. Arrays (predictions, per-iteration series, probabilities) are stored zlib-compressed
and base64-encoded inside the JSON; scalars and per-epoch series stay readable text.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from .spec import RunSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
RECORD_FORMAT = 1


def results_root(root: str | Path | None = None) -> Path:
    """Where stores live: `root`, else $VML_RESULTS_DIR, else `data/results` in the repository."""
    if root is not None:
        return Path(root)
    return Path(os.environ.get("VML_RESULTS_DIR", REPO_ROOT / "data" / "results"))


def profile_dir(profile: str, root: str | Path | None = None) -> Path:
    """The folder of one profile's records."""
    return results_root(root) / profile


def record_path(spec: RunSpec, root: str | Path | None = None) -> Path:
    """The file that holds (or will hold) `spec`'s record."""
    return profile_dir(spec.profile, root) / f"{spec.key()}.json"


# ---------------------------------------------------------------- array codec

def encode_array(a: np.ndarray) -> dict[str, Any]:
    """A numpy array as {dtype, shape, zlib_b64}: compact, lossless, JSON-safe."""
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.str, "shape": list(a.shape),
            "zlib_b64": base64.b64encode(zlib.compress(a.tobytes(), 9)).decode("ascii")}


def decode_array(d: dict[str, Any]) -> np.ndarray:
    """Inverse of `encode_array`."""
    raw = zlib.decompress(base64.b64decode(d["zlib_b64"]))
    return np.frombuffer(raw, dtype=np.dtype(d["dtype"])).reshape(d["shape"]).copy()


def quantize_probs(p: np.ndarray) -> np.ndarray:
    """Probabilities to uint8 (p·255 rounded): 1/510 resolution, enough to average ensembles."""
    return np.clip(np.rint(np.asarray(p, dtype=np.float32) * 255.0), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- writing

def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def _labels_sha(labels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(labels).tobytes()).hexdigest()[:16]


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file, or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def record_to_json(record: Any, commit: str | None = None) -> dict[str, Any]:
    """The stored form of a `vml.train.RunRecord`: readable scalars, encoded arrays, provenance."""
    d = dict(record.to_json_dict())
    d["format"] = RECORD_FORMAT
    d["key"] = record.spec.key()
    d["spec"] = record.spec.to_dict()
    d["git_commit"] = commit if commit is not None else _git_commit()
    d["labels_sha"] = _labels_sha(record.labels)
    d["arrays"] = {name: encode_array(getattr(record, name)) for name in ("preds", "ema_preds", "tta_preds")}
    d["iters"] = {name: encode_array(np.asarray(series, dtype=np.float32))
                  for name, series in record.iters.items()}
    if getattr(record, "probs", None) is not None:
        d["arrays"]["probs_u8"] = encode_array(quantize_probs(record.probs))
    return d


def save(record: Any, root: str | Path | None = None) -> Path:
    """Store one finished run atomically; also stores the dataset's test labels once per profile."""
    spec: RunSpec = record.spec
    folder = profile_dir(spec.profile, root)
    labels_file = folder / "labels" / f"{spec.dataset}.json"
    sha = _labels_sha(record.labels)
    if labels_file.exists():
        stored = read_json(labels_file)
        if stored["sha"] != sha:
            raise ValueError(f"test labels of {spec.dataset!r} differ from those already stored in "
                             f"{labels_file} (sha {stored['sha']} vs {sha}): one store, one test set")
    else:
        atomic_write_text(labels_file, json.dumps({"dataset": spec.dataset, "sha": sha,
                                                   "labels": encode_array(record.labels)}, indent=1) + "\n")
    path = record_path(spec, root)
    atomic_write_text(path, json.dumps(record_to_json(record), indent=1, sort_keys=True) + "\n")
    return path


# ---------------------------------------------------------------- claims (for concurrent sweeps)

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(spec: RunSpec, root: str | Path | None = None) -> bool:
    """Take the exclusive right to train `spec`; False if it is done or another live process has it.

    A claim left by a process that died (same host, pid gone) is taken over.
    """
    if record_path(spec, root).exists():
        return False
    lock = profile_dir(spec.profile, root) / ".claims" / f"{spec.key()}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                host, pid = lock.read_text().split()
            except (OSError, ValueError):
                return False  # being written this instant by its owner
            if host == socket.gethostname() and not _pid_alive(int(pid)):
                lock.unlink(missing_ok=True)  # its owner died: take over
                continue
            return False
        with os.fdopen(fd, "w") as f:
            f.write(f"{socket.gethostname()} {os.getpid()}")
        if record_path(spec, root).exists():  # finished between our check and the claim
            release(spec, root)
            return False
        return True
    return False


def release(spec: RunSpec, root: str | Path | None = None) -> None:
    """Drop our claim on `spec`."""
    (profile_dir(spec.profile, root) / ".claims" / f"{spec.key()}.lock").unlink(missing_ok=True)


def journal(profile: str, event: str, key: str, root: str | Path | None = None, **extra: Any) -> None:
    """Append one line to the profile's journal (O_APPEND: lines from many processes never interleave)."""
    folder = profile_dir(profile, root)
    folder.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"time": time.time(), "event": event, "key": key, "pid": os.getpid(), **extra}) + "\n"
    fd = os.open(folder / "journal.jsonl", os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


# ---------------------------------------------------------------- reading

class CorruptRecord(ValueError):
    """A file of the store that is not valid JSON (e.g. truncated by a full disk or a copy cut short)."""

    def __init__(self, path: Path, why: str) -> None:
        self.path = path
        super().__init__(f"corrupt results file {path} ({why}): restore it (`git checkout -- {path}`), or let "
                         "`python -m vml run` set it aside and train its run again")


def read_json(path: Path) -> Any:
    """The parsed JSON file `path` of the store; a file that does not parse raises `CorruptRecord`
    naming it and what to do."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptRecord(Path(path), f"{type(e).__name__}: {e}") from None


def set_aside(path: Path) -> Path:
    """Rename the corrupt file `path` to ``<name>.corrupt-<UTC time>`` (never deleted; not read as a
    record any more) and return the new path."""
    path = Path(path)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}-{os.getpid()}")
    os.rename(path, target)
    return target


def set_aside_if_corrupt(spec: RunSpec, root: str | Path | None = None) -> Path | None:
    """When `spec`'s record exists but does not parse, set it aside (`set_aside`) and return where it
    went, so that the run counts as missing; else None."""
    path = record_path(spec, root)
    try:
        before = os.stat(path)
        read_json(path)
    except FileNotFoundError:
        return None
    except CorruptRecord:
        try:
            if os.stat(path).st_ino != before.st_ino:  # replaced by a whole record meanwhile
                return None
            return set_aside(path)
        except FileNotFoundError:  # another worker set it aside first
            return None
    return None


def exists(spec: RunSpec, root: str | Path | None = None) -> bool:
    """Whether `spec` has a stored record."""
    return record_path(spec, root).exists()


def read(spec_or_key: RunSpec | str, profile: str | None = None, root: str | Path | None = None,
         arrays: bool = True) -> dict[str, Any]:
    """One stored record as a dict; with `arrays`, predictions and series decoded to numpy."""
    if isinstance(spec_or_key, RunSpec):
        path = record_path(spec_or_key, root)
    else:
        if profile is None:
            raise ValueError("read(key) needs the profile the key belongs to")
        path = profile_dir(profile, root) / f"{spec_or_key}.json"
    d = read_json(path)
    if arrays:
        d["arrays"] = {k: decode_array(v) for k, v in d.get("arrays", {}).items()}
        d["iters"] = {k: decode_array(v) for k, v in d.get("iters", {}).items()}
        if "probs_u8" in d["arrays"]:
            d["arrays"]["probs"] = d["arrays"].pop("probs_u8").astype(np.float32) / 255.0
    return d


def labels(profile: str, dataset: str, root: str | Path | None = None) -> np.ndarray:
    """The test labels stored once per profile and dataset."""
    path = profile_dir(profile, root) / "labels" / f"{dataset}.json"
    return decode_array(read_json(path)["labels"])


def iter_records(profile: str, root: str | Path | None = None) -> Iterator[Path]:
    """Paths of every record of a profile."""
    folder = profile_dir(profile, root)
    return iter(sorted(folder.glob("*.json"))) if folder.exists() else iter(())


SCALARS = ("test_acc", "test_loss", "ema_acc", "tta_acc", "tta_views", "wall_s")


def row(spec: RunSpec, rec: dict[str, Any]) -> dict[str, Any]:
    """One tidy row of a record: the spec's descriptive fields and the run's scalars."""
    r = {"key": rec["key"], "profile": spec.profile, "dataset": spec.dataset, "model": spec.model,
         "width": spec.width, "loss": spec.loss, "vary": spec.vary, "seed": spec.seed, "epochs": spec.epochs}
    r.update({k: rec.get(k) for k in SCALARS})
    return r


def load(study: str, profile: str = "cpu", root: str | Path | None = None):
    """A tidy DataFrame of a study's stored runs: one row per run (missing runs are absent)."""
    import pandas as pd

    from .studies import get_study

    rows = []
    for item in get_study(study).grid(profile):
        path = record_path(item.spec, root)
        if not path.exists():
            continue
        rec = read_json(path)
        rows.append({**row(item.spec, rec), **item.tags})
    return pd.DataFrame(rows)
