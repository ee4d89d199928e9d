"""Where bitwise reproducibility holds (the book's implementation notes state it; each condition is
tested here): the same spec, on the same machine (CPU model and the ISA level that ATen and oneDNN
dispatch to), with the same thread count and torch version, gives a bitwise-equal record, whatever
the process did before; and the record names each of these conditions, so that two records can be
told apart by the machine that made them."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from vml.spec import profile_spec
from vml.train import machine_info, train

ROOT = Path(__file__).resolve().parent.parent
SPEC = profile_spec("smoke", loss="vml", seed=1, epochs=1, vml={"warmup_steps": 8})
CAPPED = {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}  # `make test` runs nbval so too
TRAIN_AND_DIGEST = """
import json, sys
from vml.spec import RunSpec
from vml.train import train
sys.path.insert(0, "tests")
from test_reproducibility import digest
print(json.dumps(digest(train(RunSpec.from_dict(json.loads(sys.argv[1])), device="cpu"))))
"""


def digest(record, ignore: tuple[str, ...] = ()) -> dict:
    """What must be bitwise equal between two trainings of one spec (a hash of every array and of the
    record's numbers, wall times and the fields named in `ignore` left out), and the machine the record
    names."""
    d = record.to_json_dict()
    for k in ("wall_s", "started", "device", "machine", *ignore):
        d.pop(k)
    for e in d["epochs"]:
        e.pop("wall_s")
    h = hashlib.sha256(json.dumps(d, sort_keys=True).encode())
    for name, a in sorted(record.arrays().items()):
        h.update(name.encode() + a.dtype.str.encode() + a.tobytes())
    return {"sha256": h.hexdigest(), "machine": record.machine, "device": record.device}


def fresh_process(env: dict[str, str] | None = None) -> dict:
    """`digest` of `SPEC` trained in a new Python process with `env` added to this one's."""
    out = subprocess.run([sys.executable, "-c", TRAIN_AND_DIGEST, json.dumps(SPEC.to_dict())], cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.splitlines()[-1])


def test_a_fresh_process_repeats_the_run_bitwise_whatever_this_process_did_before():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as a notebook might, before it calls train()
    try:
        here = digest(train(SPEC, device="cpu"))
    finally:
        torch.set_num_threads(before)
    there = fresh_process()
    assert here == there
    # the record names the machine: CPU model, ISA level in use, caps, threads, torch version
    m = here["machine"]
    assert m["cpu"] and m["cpu"] in here["device"]
    assert m["aten_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert m["threads"] == int(os.environ.get("VML_THREADS") or len(os.sched_getaffinity(0)))
    assert f"{m['threads']} threads" in here["device"]
    assert m["torch"] == torch.__version__ and m == machine_info() | {"threads": m["threads"]}


def test_the_capped_isa_path_and_the_thread_count_are_recorded_and_repeat_bitwise():
    a, b = fresh_process({**CAPPED, "VML_THREADS": "1"}), fresh_process({**CAPPED, "VML_THREADS": "1"})
    assert a == b
    assert a["machine"]["threads"] == 1 and "1 threads" in a["device"]
    assert a["machine"]["aten_cpu_capability"] == "DEFAULT"
    assert a["machine"]["ATEN_CPU_CAPABILITY"] == "default" and a["machine"]["ONEDNN_MAX_CPU_ISA"] == "SSE41"


def test_a_replica_repeats_its_original_bitwise_under_a_key_of_its_own():
    import pytest

    from vml.spec import RunSpec
    rep = SPEC.replace(replica=1)
    assert rep.key() != SPEC.key() and SPEC.replace(replica=0).key() == SPEC.key()
    assert digest(train(rep, device="cpu"), ignore=("spec", "key")) == \
        digest(train(SPEC, device="cpu"), ignore=("spec", "key"))
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match=rf"^RunSpec.replica={bad!r} is not allowed; it must be an integer >= 0"):
            RunSpec(replica=bad)
