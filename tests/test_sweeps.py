"""Sweeps on the smoke profile: killed with SIGKILL and resumed; two sweeps sharing one store."""
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from vml import store
from vml.studies import get_study

pytestmark = pytest.mark.slow  # each test trains a sweep in subprocesses

STUDY = "seed-groups"  # 4 runs on the smoke profile


def sweep(root, *extra):
    env = dict(os.environ, PYTHONHASHSEED="0")
    return subprocess.Popen([sys.executable, "-m", "vml", "run", STUDY, "--profile", "smoke", "--root", str(root),
                             *extra], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def journal_events(root):
    path = root / "smoke" / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def expected_keys():
    return {i.spec.key() for i in get_study(STUDY).grid("smoke")}


def test_sigkill_mid_sweep_leaves_no_partial_record_and_rerun_completes(tmp_path):
    proc = sweep(tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "smoke").glob("*.json")):
        time.sleep(0.05)
    time.sleep(0.3)  # well inside the next run: its checkpoint or record is being written
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    stored = list(store.iter_records("smoke", tmp_path))
    assert 1 <= len(stored) < 4, "the kill should land mid-sweep"
    for path in stored:  # every record present is whole
        d = json.loads(path.read_text())
        assert d["key"] == path.stem and "test_acc" in d
    out = subprocess.run([sys.executable, "-m", "vml", "run", STUDY, "--profile", "smoke", "--root", str(tmp_path)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert {p.stem for p in store.iter_records("smoke", tmp_path)} == expected_keys()
    done = Counter(e["key"] for e in journal_events(tmp_path) if e["event"] == "done")
    assert set(done) == expected_keys() and max(done.values()) == 1  # nothing counted twice
    assert not list((tmp_path / "smoke").rglob(".*.tmp-*"))


def test_two_sweeps_at_once_never_train_the_same_run(tmp_path):
    a, b = sweep(tmp_path), sweep(tmp_path)
    outs = [p.communicate(timeout=300)[0].decode() for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0, outs
    assert {p.stem for p in store.iter_records("smoke", tmp_path)} == expected_keys()
    starts = Counter(e["key"] for e in journal_events(tmp_path) if e["event"] == "start")
    assert set(starts) == expected_keys() and max(starts.values()) == 1


def test_status_reports_counts(tmp_path, capsys):
    from vml.cli import main
    assert main(["run", STUDY, "--profile", "smoke", "--root", str(tmp_path), "--limit", "1"]) == 0
    assert main(["status", "--profile", "smoke", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith(STUDY))
    # runs, done, claimed, failed, missing, held, unavailable
    assert line.split()[-8:-1] == ["4", "1", "0", "0", "3", "0", "0"]
