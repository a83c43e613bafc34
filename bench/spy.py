"""Where a run's CPU goes: py-spy's samples of it and its children, summed per function.

    python bench/spy.py PROFILE.txt [--json]   # the summary of a recorded profile

bench/fleet.py ``--profile`` records one run with ``py-spy record --format raw
--subprocesses`` (collapsed stacks: one line per distinct stack, frames from the outside
in, separated by ``;``, then the number of samples; a child's stack starts with its
parent's ``process PID:"command"`` frames). py-spy samples only threads on a CPU (no
``--idle``), so samples are CPU time. ``summarise`` keeps the delivery path (every
stack of a delivery process, and the run process's stacks under ``deliver_pending``)
and ranks functions by their own samples (the innermost frame) and by their total
(own and everything they call, for the project's functions; a function counted once
per stack, recursion or not), and sums the own samples per library.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

# A frame is "function (file:line)"; the line is dropped so that a function is one row.
_LINE = re.compile(r":\d+\)$")
# A process frame quotes its command line, which may hold ";" (spawn's ``-c`` code).
_PROCESS = re.compile(r'process \d+:"[^"]*";')
_FILE = re.compile(r"\((.*)\)$")
PROJECT = ("dns_lifecycle/", "flows/", "models/")
DELIVERY_MARK = "deliver_pending ("


def command(output: Path, rate: int, args: list[str]) -> list[str]:
    """py-spy's command line recording ``args`` (a whole command) and its children."""
    return [
        "py-spy", "record",
        "--format", "raw",
        "--output", str(output),
        "--rate", str(rate),
        "--subprocesses",
        "--nonblocking",  # never pause the run to read it: its timing stays its own
        "--", *args,
    ]  # fmt: skip


def parse(path: Path) -> list[tuple[list[str], list[str], int]]:
    """(process frames, code frames, samples) per line of a raw profile."""
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        processes = _PROCESS.findall(stack)
        code = [_LINE.sub(")", f) for f in _PROCESS.sub("", stack).split(";") if f]
        stacks.append((processes, code, int(count)))
    return stacks


def process_kind(processes: list[str]) -> str:
    innermost = processes[-1] if processes else ""
    if "multiprocessing" in innermost:
        return "delivery processes"
    if "uvicorn" in innermost:
        return "Prefect API"
    return "run process"


def package(frame: str) -> str:
    """Where a frame's code lives: the project, or the library (its top-level module)."""
    found = _FILE.search(frame)
    path = found.group(1) if found else frame
    if path.startswith(PROJECT):
        return "the project"
    if path.startswith("<frozen importlib"):
        return "importlib (imports)"
    return path.split("/", 1)[0].removesuffix(".py")


def summarise(path: Path, top: int = 20) -> dict:
    """Samples per process kind, and the delivery path's top functions: by own samples,
    own samples per library, and own + called for the project's functions (the outer
    frames of asyncio, multiprocessing and Prefect would only repeat the whole)."""
    by_kind: Counter[str] = Counter()
    own: Counter[str] = Counter()
    own_by_package: Counter[str] = Counter()
    total: Counter[str] = Counter()
    delivery = 0
    for processes, code, count in parse(path):
        kind = process_kind(processes)
        by_kind[kind] += count
        in_delivery = kind == "delivery processes" or any(DELIVERY_MARK in f for f in code)
        if not in_delivery or not code:
            continue
        delivery += count
        own[code[-1]] += count
        own_by_package[package(code[-1])] += count
        for frame in set(code):
            if package(frame) == "the project":
                total[frame] += count
    return {
        "samples": dict(by_kind),
        "delivery_samples": delivery,
        "top_own": own.most_common(top),
        "own_by_package": own_by_package.most_common(top),
        "top_total": total.most_common(top),
    }


def table(summary: dict) -> str:
    """The summary as text: per process kind, then the two rankings."""
    delivery = summary["delivery_samples"] or 1
    lines = [
        "py-spy samples (on CPU) per process: "
        + ", ".join(f"{k} {n:,}" for k, n in summary["samples"].items()),
        f"delivery path: {summary['delivery_samples']:,} samples "
        "(delivery processes, and the run process under deliver_pending)",
    ]
    rankings = (
        ("own time", "top_own"),
        ("own time, per library", "own_by_package"),
        ("own + called, the project's functions", "top_total"),
    )
    for title, key in rankings:
        lines += ["", f"| delivery path, by {title} | share |", "|---|---|"]
        lines += [f"| `{frame}` | {100 * n / delivery:.1f} % |" for frame, n in summary[key]]
    return "\n".join(lines)


if __name__ == "__main__":
    result = summarise(Path(sys.argv[1]))
    print(json.dumps(result) if "--json" in sys.argv else table(result))
