"""This machine's CPU: its model name and instruction-set flags (the bottom layer; imports nothing from
vml). Records name the CPU they were trained on (`train.machine_info`); `runner.status` prefers the
wall times of runs made on the same CPU model when it estimates the time to finish."""
from __future__ import annotations

import platform


def cpu() -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo; where that file is missing (not Linux), the platform's
    processor string and no flags."""
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return model, flags
