"""What /proc says of a process (Linux), for the benches that measure their children:
its peak resident memory and the fields of its ``stat`` line."""

from __future__ import annotations

import os
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")  # clock ticks per second, the unit of stat's CPU times


def vm_hwm(pid: int | str = "self") -> int | None:
    """Peak resident set of ``pid`` so far, in bytes (VmHWM); None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def stat_fields(pid: int | str = "self") -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command in parentheses (which may hold
    spaces): field N of proc(5) is item N - 3. None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()
