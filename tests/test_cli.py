"""`python -m vml`: a bad value on the command line ends in one line `error: ...` naming the value and
what is allowed, exit status 2, no traceback (as argparse does for its own checks)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vml.cli import main

ROOT = Path(__file__).resolve().parent.parent

BAD = [
    (["train", "--profile", "smoke", "--seed", "-3"], "RunSpec.seed=-3 is not allowed; it must be an integer >= 0"),
    (["train", "--profile", "smoke", "--epochs", "0"], "RunSpec.epochs=0 is not allowed; it must be an integer >= 1"),
    (["train", "--profile", "smoke", "--lr", "-1"], "RunSpec.lr=-1.0 is not allowed; it must be > 0"),
    (["train", "--profile", "smoke", "--width", "0"], "RunSpec.width=0.0 is not allowed; it must be > 0"),
    (["train", "--profile", "smoke", "--label-smoothing", "2"],
     "RunSpec.label_smoothing=2.0 is not allowed; it must be in [0, 1)"),
    (["train", "--profile", "smoke", "--device", "nope"], "device 'nope' is not allowed; use cpu, cuda or cuda:N"),
    (["run", "nostudy"], "unknown study 'nostudy'; use one of ['seed-groups', "),
    (["run", "seed-groups", "--profile", "smoke", "--jobs", "0"], "jobs=0 is not allowed; it must be an integer >= 1"),
    (["run", "seed-groups", "--profile", "smoke", "--threads", "0"],
     "threads=0 is not allowed; it must be an integer >= 1"),
    (["run", "seed-groups", "--profile", "smoke", "--limit", "-1"], "limit=-1 is not allowed; it must be an integer >= 0"),
    (["run", "seed-groups", "--profile", "smoke", "--seeds", "9"],
     "seed 9 is not in these studies; their seeds are [1, 2]"),
]


@pytest.mark.parametrize("argv, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_a_bad_value_is_one_error_line_with_status_2(argv, message, capsys, tmp_path):
    argv = argv + (["--root", str(tmp_path)] if argv[0] == "run" else [])
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"python -m vml {argv[0]}: error: {message}")
    assert captured.err.count("\n") == 1 and captured.out == ""
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


def test_the_module_entry_point_prints_no_traceback():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "vml", "train", "--seed", "-3"], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 2
    assert out.stderr == "python -m vml train: error: RunSpec.seed=-3 is not allowed; it must be an integer >= 0\n"


def test_a_reader_that_stops_early_gets_no_traceback(tmp_path):
    # `python -m vml status | head -1`: the pipe closes after one line; status ends quietly
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "vml", "status", "--profile", "smoke", "--root", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and err == ""


@pytest.mark.parametrize("command", [["train", "--profile", "smoke", "--precision", "bf16"],
                                     ["run", "seed-groups", "--profile", "smoke"], ["status", "--profile", "smoke"]])
def test_a_bad_bf16_kernels_variable_is_one_error_line(command, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("VML_BF16_KERNELS", "fast")
    argv = command + (["--root", str(tmp_path)] if command[0] != "train" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == (f"python -m vml {command[0]}: error: VML_BF16_KERNELS='fast' is not allowed; "
                   "use one of ['native', 'fp32'] (or leave it unset)\n")
    assert not any(tmp_path.iterdir())


def test_status_names_this_machines_bf16_kernels(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("VML_BF16_KERNELS", "fp32")
    assert main(["status", "--profile", "smoke", "--root", str(tmp_path)]) == 0
    assert "; bf16 products on fp32 kernels (no bf16 hardware" in capsys.readouterr().out
