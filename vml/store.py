"""The results store: one JSON file per run under `data/results/<profile>/`, keyed by the spec's hash.

Writes are atomic (temporary file, fsync, `os.replace`), so a run killed at any moment leaves either
no record or a whole one. Concurrent sweeps, on one machine or many hosts sharing the folder (NFS),
claim runs with exclusive lock files that their owners keep alive with a heartbeat, so no run is
trained twice and a claim left by a dead task is taken over. Arrays (predictions, per-iteration series, probabilities) are stored zlib-compressed
and base64-encoded inside the JSON; scalars and per-epoch series stay readable text.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import socket
import subprocess
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from ._io import atomic_write_text, remove_leftovers
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


def labels_sha(labels: np.ndarray) -> str:
    """The short hash of a test set's labels that each record carries (`labels_sha`): records of one
    store must all have been scored on the same labels."""
    return hashlib.sha256(np.ascontiguousarray(labels).tobytes()).hexdigest()[:16]


def record_to_json(record: Any, commit: str | None = None) -> dict[str, Any]:
    """The stored form of a `vml.train.RunRecord`: readable scalars, encoded arrays, provenance."""
    d = dict(record.to_json_dict())
    d["format"] = RECORD_FORMAT
    d["key"] = record.spec.key()
    d["spec"] = record.spec.to_dict()
    d["git_commit"] = commit if commit is not None else _git_commit()
    d["labels_sha"] = labels_sha(record.labels)
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
    sha = labels_sha(record.labels)
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
    remove_leftovers(path)  # of a save killed mid-write (the run's claim keeps other writers away)
    return path


# ---------------------------------------------------------------- claims (for concurrent sweeps)
#
# A claim is `.claims/<key>.lock`, created with O_EXCL (atomic on local disks and on NFS v3+). It
# holds one JSON line: host, pid, task (a Slurm job/array id, or null), since (epoch seconds) and
# kernel (boot id and pid namespace). Its *mtime is the heartbeat*: the owner touches the file
# every claim_timeout()/10 seconds while it trains (`Heartbeat`). A claim is stale, and any process
# on any host may take it over, when its heartbeat is older than claim_timeout() seconds
# ($VML_CLAIM_TIMEOUT, default 600), or at once when its owner is provably gone: same kernel boot and
# pid namespace, pid dead. Host clocks must agree to well within the timeout (NTP does).
# A takeover first creates, with O_EXCL, a token named after the stale file's identity (inode and
# mtime): `<key>.lock.takeover-<ino>-<mtime_ns>`. One racer gets it; the others give up. The holder
# looks again that the claim is still that very file (a racer that read it late would otherwise move
# the winner's new claim and leave the path empty for a moment, as a rename-only takeover did), moves
# it aside, drops the token (that file is gone for good, so a token for it means nothing any more)
# and creates its own claim with O_EXCL, which any other newcomer may win instead: one winner either
# way. A token older than claim_timeout() was left by a holder that died in the middle of a takeover
# and is removed by the next racer to find it.
# An owner whose claim was taken over finds the file at its path is no longer its own (`holds`) and
# does not save. Claims written by older versions ("host pid", one line, no heartbeat) stay live while
# that pid lives on this host, else until their mtime is claim_timeout() old.

CLAIM_TIMEOUT_S = 600.0


def claim_timeout() -> float:
    """Seconds without a heartbeat after which a claim is stale: $VML_CLAIM_TIMEOUT, else 600."""
    env = os.environ.get("VML_CLAIM_TIMEOUT")
    if env is None:
        return CLAIM_TIMEOUT_S
    try:
        value = float(env)
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise ValueError(f"VML_CLAIM_TIMEOUT={env!r} is not allowed; it must be a number of seconds > 0")
    return value


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kernel() -> str | None:
    """This process's kernel boot and pid namespace: equal only where pids mean the same process."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:  # not Linux: no shortcut, heartbeats only
        return None


@dataclass(frozen=True)
class ClaimInfo:
    """What a claim file says, and its heartbeat (the file's mtime)."""

    key: str
    path: Path
    host: str | None
    pid: int | None
    task: str | None
    since: float | None
    heartbeat: float
    kernel: str | None = None
    legacy: bool = False  # "host pid", written by an older version: no heartbeat

    def stale(self, now: float | None = None, timeout: float | None = None) -> bool:
        """Whether anyone may take this claim over (see the comment above `claim_timeout`)."""
        old = (time.time() if now is None else now) - self.heartbeat > (claim_timeout() if timeout is None
                                                                         else timeout)
        if self.legacy:
            return not (self.host == socket.gethostname() and _pid_alive(self.pid)) and old
        mine = self.kernel is not None and self.kernel == _kernel()
        return old or (mine and self.pid is not None and not _pid_alive(self.pid))


def _parse_claim(path: Path, text: str, mtime: float) -> ClaimInfo:
    key = path.name.split(".")[0]
    try:
        d = json.loads(text)
        return ClaimInfo(key, path, d["host"], int(d["pid"]), d.get("task"), float(d["since"]), mtime,
                         d.get("kernel"))
    except (ValueError, KeyError, TypeError):
        pass
    parts = text.split()
    if len(parts) == 2 and parts[1].isdigit():
        return ClaimInfo(key, path, parts[0], int(parts[1]), None, mtime, mtime, legacy=True)
    # empty or cut short: being written this instant, or its writer died while writing it
    return ClaimInfo(key, path, None, None, None, None, mtime)


def read_claim(path: Path) -> tuple[ClaimInfo, tuple[int, int, str]] | None:
    """A claim file's content and identity (inode, mtime, text: inodes alone are reused), read through one
    open file; None if there is none."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        text = os.read(fd, 4096).decode("utf-8", "replace")
    finally:
        os.close(fd)
    return _parse_claim(path, text, st.st_mtime), (st.st_ino, st.st_mtime_ns, text)


def claims(profile: str, root: str | Path | None = None) -> list[ClaimInfo]:
    """Every claim of a profile's store, live or stale (for `python -m vml status`)."""
    folder = profile_dir(profile, root) / ".claims"
    found = (read_claim(p) for p in sorted(folder.glob("*.lock"))) if folder.exists() else ()
    return [c for c, _ in filter(None, found)]


def _lock_path(spec: RunSpec, root: str | Path | None) -> Path:
    return profile_dir(spec.profile, root) / ".claims" / f"{spec.key()}.lock"


_HELD: dict[Path, int] = {}  # claims this process holds: lock path -> open file descriptor
_HELD_LOCK = threading.Lock()


def _make_token(token: Path) -> bool:
    """Create the takeover token; False while another racer holds it (a token older than
    claim_timeout() was left by a racer that died holding it: it is removed and made anew)."""
    for _ in range(2):
        try:
            os.close(os.open(token, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            return True
        except FileExistsError:
            try:
                if time.time() - token.stat().st_mtime <= claim_timeout():
                    return False
                token.unlink()
            except FileNotFoundError:
                pass
    return False


def _take_over(lock: Path, stale: tuple[int, int, str]) -> bool:
    """Remove the stale claim `lock`, identified by `stale` (inode, mtime, text); True for one racer only."""
    ino, mtime_ns, _ = stale
    token = lock.with_name(f"{lock.name}.takeover-{ino}-{mtime_ns}")
    if not _make_token(token):
        return False
    try:
        now = read_claim(lock)
        if now is None or now[1] != stale:  # released, taken over already, or its owner came back
            return False
        aside = lock.with_name(f"{lock.name}.stale-{uuid.uuid4().hex}")
        os.rename(lock, aside)
        moved = read_claim(aside)
        if moved is not None and moved[1] == stale:
            aside.unlink()
            return True
        # its owner beat or released it between our look and the move: put back what we moved
        try:
            os.link(aside, lock)
        except FileExistsError:
            pass  # a newcomer claimed meanwhile; the owner finds its claim lost (`holds`) and does not save
        os.unlink(aside)
        return False
    except FileNotFoundError:  # released under our feet
        return False
    finally:
        token.unlink(missing_ok=True)


def claim(spec: RunSpec, root: str | Path | None = None, task: str | None = None) -> bool:
    """Take the exclusive right to train `spec`; False if it is done or has a live claim.

    A stale claim (see `ClaimInfo.stale`) is taken over. `task` names the job that claims (Slurm).
    """
    if record_path(spec, root).exists():
        return False
    lock = _lock_path(spec, root)
    lock.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
        except FileExistsError:
            seen = read_claim(lock)
            if seen is None:
                continue  # released between our two calls
            info, ident = seen
            if not info.stale() or not _take_over(lock, ident):
                return False
            continue
        content = {"host": socket.gethostname(), "pid": os.getpid(), "task": task, "since": time.time(),
                   "kernel": _kernel(), "token": uuid.uuid4().hex}
        os.write(fd, (json.dumps(content) + "\n").encode())
        os.fsync(fd)
        with _HELD_LOCK:
            _HELD[lock] = fd
        if record_path(spec, root).exists():  # finished between our check and the claim
            release(spec, root)
            return False
        return True
    return False


def _is_ours(lock: Path, fd: int) -> bool:
    try:
        return os.stat(lock).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def holds(spec: RunSpec, root: str | Path | None = None) -> bool:
    """Whether this process still holds its claim on `spec` (False once another took it over)."""
    lock = _lock_path(spec, root)
    with _HELD_LOCK:
        fd = _HELD.get(lock)
        return fd is not None and _is_ours(lock, fd)


def release(spec: RunSpec, root: str | Path | None = None) -> None:
    """Drop our claim on `spec` (a claim another process took over is left alone)."""
    lock = _lock_path(spec, root)
    with _HELD_LOCK:
        fd = _HELD.pop(lock, None)
        if fd is None:
            return
        ours = _is_ours(lock, fd)
        os.close(fd)  # before the unlink: NFS keeps unlinked files that are still open (.nfsXXXX)
        if ours:
            lock.unlink(missing_ok=True)


def beat() -> None:
    """Refresh the heartbeat (mtime) of every claim this process holds."""
    with _HELD_LOCK:
        for fd in _HELD.values():
            os.utime(fd)


class Heartbeat:
    """`with Heartbeat(): ...` refreshes this process's claims every claim_timeout()/10 seconds."""

    def __init__(self, interval: float | None = None):
        self.interval = claim_timeout() / 10 if interval is None else interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="vml-heartbeat", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            beat()

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()


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


def _failed_path(spec: RunSpec, root: str | Path | None) -> Path:
    return profile_dir(spec.profile, root) / ".failed" / f"{spec.key()}.json"


def mark_failed(spec: RunSpec, error: str, root: str | Path | None = None, task: str | None = None) -> None:
    """Note that training `spec` raised `error` (one file per run: safe on NFS, unlike appends)."""
    atomic_write_text(_failed_path(spec, root), json.dumps(
        {"key": spec.key(), "error": error, "host": socket.gethostname(), "task": task, "time": time.time()}) + "\n")


def clear_failed(spec: RunSpec, root: str | Path | None = None) -> None:
    """Forget an earlier failure of `spec` (it has been trained since)."""
    _failed_path(spec, root).unlink(missing_ok=True)


def failures(profile: str, root: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Runs whose last attempt failed: key -> {error, host, task, time}."""
    folder = profile_dir(profile, root) / ".failed"
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.exists() else {}


# ---------------------------------------------------------------- reading

class CorruptRecord(ValueError):
    """A file of the store that is not valid JSON (e.g. truncated by a full disk or a copy cut short)."""

    def __init__(self, path: Path, why: str) -> None:
        self.path, self.why = path, why
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


def checkpoint_dir(profile: str, root: str | Path | None = None) -> Path:
    """Where the runs of a profile keep their end-of-epoch checkpoints (`vml.train.train` writes
    ``<key>.pt`` there and deletes it when the run is stored)."""
    return profile_dir(profile, root) / ".checkpoints"


def checkpoint_epochs(profile: str, root: str | Path | None = None) -> dict[str, int]:
    """key -> epochs done, for every run of the profile with a checkpoint (a run killed or stopped part
    way resumes from there). The checkpoints are memory-mapped, so their tensors are not read; one that
    does not load counts as no progress (it is only a count here: resuming from it is `train`'s job)."""
    done = {}
    folder = checkpoint_dir(profile, root)
    for path in sorted(folder.glob("*.pt")) if folder.exists() else ():
        try:
            done[path.stem] = int(torch.load(path, map_location="cpu", weights_only=False, mmap=True)["epoch"])
        except Exception:  # cut short, or not a checkpoint at all: no progress to count
            continue
    return done


def iter_records(profile: str, root: str | Path | None = None) -> Iterator[Path]:
    """Paths of every record of a profile."""
    folder = profile_dir(profile, root)
    return iter(sorted(folder.glob("*.json"))) if folder.exists() else iter(())


SCALARS = ("test_acc", "test_loss", "ema_acc", "tta_acc", "tta_views", "wall_s")


def median_epoch_s(rec: dict[str, Any]) -> float:
    """The median wall time of a stored record's epochs (its per-epoch log holds the cumulative wall
    time): unlike `wall_s`, not inflated by a pause between the sessions of a resumed run."""
    ends = [e["wall_s"] for e in rec.get("epochs") or []]
    return float(np.median(np.diff([0.0, *ends]))) if ends else math.nan


FP32_KERNELS = " (bf16 on fp32 kernels)"  # marks a bf16 run whose products ran on fp32 kernels (`vml.bf16`)
MACHINE_NOT_NAMED = "machine not named"  # a stretch of a resumed run whose checkpoint did not name its machine
MIXED = " + "  # joins the kinds of a run resumed on another machine kind (`made_on`)


def machine_kind(cpu: str, precision: str, bf16_kernels: str | None) -> str:
    """What a run's speed depends on beyond its spec: the CPU model, and for a bf16 run whether its
    convolutions and matrix products ran on bf16 kernels or on fp32 ones (`vml.bf16`: about twice
    as fast on a CPU without bf16 hardware)."""
    return cpu + FP32_KERNELS if precision == "bf16" and bf16_kernels == "fp32" else cpu


def made_on(rec: dict[str, Any]) -> str | None:
    """The machine kind (`machine_kind`) a stored record was trained on (None for records written
    before they named their machine; records written before `vml.bf16` ran bf16 on bf16 kernels);
    for a CUDA run, its GPU model (`machine["cuda"]`). A run resumed on another machine kind
    (`trained_on`) names each kind in the order they trained it, joined by " + " (a kind of its own)."""
    if rec.get("trained_on"):
        precision = rec["spec"].get("precision")
        return MIXED.join(dict.fromkeys(_kind(s["machine"], precision) or MACHINE_NOT_NAMED for s in rec["trained_on"]))
    return _kind(rec.get("machine"), rec["spec"].get("precision"))


def _kind(m: dict[str, Any] | None, precision: str | None) -> str | None:
    """`made_on` of one machine (`vml.train.machine_info`) that trained a run of this precision."""
    m = m or {}
    if (m.get("cuda") or {}).get("gpu"):
        return m["cuda"]["gpu"]
    return machine_kind(m["cpu"], precision, m.get("bf16_kernels")) if m.get("cpu") else None


def row(spec: RunSpec, rec: dict[str, Any]) -> dict[str, Any]:
    """One tidy row of a record: the spec's descriptive fields and the run's scalars."""
    r = {"key": rec["key"], "profile": spec.profile, "dataset": spec.dataset, "model": spec.model,
         "width": spec.width, "loss": spec.loss, "vary": spec.vary, "seed": spec.seed, "epochs": spec.epochs}
    r.update({k: rec.get(k) for k in SCALARS})
    return r

