"""One measured `dns-lifecycle run`, in this process, for the benchmark.

    python bench/run_daily.py METRICS.json AS_OF

Runs the real command (``dns_lifecycle.admin.cli.main``: settings from the environment,
the daily flow through a temporary Prefect API) and writes what it measured to
METRICS.json: the run's own report, its wall time, the time spent delivering (claim,
render, send, mark) and inside each channel's ``send``, and this process's peak RSS.
The timing wrappers only read the clock; they change nothing the run does.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import sys
import threading
import time

from procfs import TICK, stat_fields, vm_hwm  # bench/, this script's folder


def peak_rss() -> int:
    """This process's peak resident memory, in bytes.

    VmHWM, not ``getrusage``'s ru_maxrss: Linux carries ru_maxrss over a fork and exec,
    so a run started by a bench that had just seeded a large fleet in its own memory
    would report the bench's peak instead of its own."""
    peak = vm_hwm()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 if peak is None else peak


def own_cpu() -> tuple[float, float]:
    """This process's CPU seconds, and its reaped children's (the kernel's cutime and
    cstime: every child waited for, with what its own reaped children used)."""
    fields = stat_fields()
    assert fields is not None  # this process is alive
    # utime, stime, cutime, cstime are fields 14-17 of proc(5), in clock ticks.
    utime, stime, cutime, cstime = (int(fields[n - 3]) for n in (14, 15, 16, 17))
    return (utime + stime) / TICK, (cutime + cstime) / TICK


def record_reaped_children() -> dict[int, float]:
    """CPU seconds of each child this process reaps, by pid, from then on.

    Both ``subprocess`` (the Prefect API) and ``multiprocessing`` (the delivery
    processes) reap through ``os.waitpid``; ``os.wait4`` does the same and also returns
    the child's rusage, exact to its last tick (sampling /proc would miss what a child
    used after its last sample)."""
    reaped: dict[int, float] = {}

    def waitpid(pid: int, options: int) -> tuple[int, int]:
        done, status, usage = os.wait4(pid, options)
        if done:
            reaped[done] = usage.ru_utime + usage.ru_stime
        return done, status

    os.waitpid = waitpid
    return reaped


def child_kind(cmdline: list[str]) -> str:
    """``pool`` for a delivery process (multiprocessing's spawn), ``server`` otherwise
    (the temporary Prefect API)."""
    return "pool" if any("multiprocessing" in part for part in cmdline) else "server"


def cpu_split(reaped: dict[int, float], kinds: dict[int, str]) -> dict:
    """CPU seconds of the run process, of its delivery processes and of the Prefect API,
    once all of them have ended. The children's total is the kernel's (cutime, cstime);
    the API's share is its own rusage when it was reaped (``record_reaped_children``);
    the delivery processes get the rest (and the pool's resource tracker, which does
    next to nothing)."""
    run, children = own_cpu()
    server = sum(cpu for pid, cpu in reaped.items() if kinds.get(pid) == "server")
    pool = sum(cpu for pid, cpu in reaped.items() if kinds.get(pid) == "pool")
    return {
        "run_seconds": run,
        "children_seconds": children,
        "server_seconds": server,
        # Clock ticks against rusage's microseconds: never below nothing.
        "pool_seconds": max(0.0, children - server),
        "pool_seconds_reaped": pool,
        "reaped": {str(pid): [kinds.get(pid, "?"), cpu] for pid, cpu in reaped.items()},
    }


def main() -> int:
    metrics_path, as_of = sys.argv[1], sys.argv[2]
    started = time.perf_counter()

    import flows.delivery as delivery
    from dns_lifecycle.admin import cli
    from dns_lifecycle.channels.email.smtp import SmtpEmailBackend
    from dns_lifecycle.channels.sms.aliyun import AliyunSmsBackend

    metrics: dict = {"deliveries": [], "email_send_seconds": 0.0, "sms_send_seconds": 0.0}

    deliver_pending = delivery.deliver_pending

    def timed_deliver(ctx, filt=delivery.ALL_PENDING):
        t, cpu = time.perf_counter(), time.process_time()
        tally = deliver_pending(ctx, filt)
        metrics["deliveries"].append(
            {
                "kinds": list(filt.kinds or ()),
                "seconds": time.perf_counter() - t,
                # This process only: with a pool, the workers' CPU is not in it.
                "cpu_seconds": time.process_time() - cpu,
                "counts": dict(tally.counts),
            }
        )
        return tally

    delivery.deliver_pending = timed_deliver

    def time_send(cls, key):
        send = cls.send

        async def timed_send(self, batch, *args, **kwargs):
            t = time.perf_counter()
            try:
                return await send(self, batch, *args, **kwargs)
            finally:
                metrics[key] += time.perf_counter() - t

        cls.send = timed_send

    time_send(SmtpEmailBackend, "email_send_seconds")
    time_send(AliyunSmsBackend, "sms_send_seconds")

    # The temporary Prefect API runs in a child process, and the delivery pool's workers
    # are children too: sample their memory, apart, and learn which is which.
    reaped = record_reaped_children()
    kinds: dict[int, str] = {}
    peak_children = [0]
    peak_pool = [0]
    stop = threading.Event()
    try:
        import psutil

        me = psutil.Process()

        def sample():
            while not stop.wait(0.25):
                server = pool = 0
                try:
                    for child in me.children(recursive=True):
                        rss = child.memory_info().rss
                        kind = kinds.setdefault(child.pid, child_kind(child.cmdline()))
                        if kind == "pool":
                            pool += rss
                        else:
                            server += rss
                except psutil.Error:
                    continue
                peak_children[0] = max(peak_children[0], server)
                peak_pool[0] = max(peak_pool[0], pool)

        threading.Thread(target=sample, daemon=True).start()
    except ImportError:
        peak_children[0] = peak_pool[0] = -1

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["run", "--as-of", as_of, "--json"])
    # The pool lives until exit (an atexit hook ends it); end it now, so that its
    # processes are reaped and their CPU counted before this process reads its own.
    delivery._close_pools()
    stop.set()
    metrics["exit_code"] = code
    metrics["wall_seconds"] = time.perf_counter() - started
    metrics["peak_rss_bytes"] = peak_rss()
    metrics["peak_prefect_server_rss_bytes"] = peak_children[0]
    metrics["peak_pool_rss_bytes"] = peak_pool[0]
    metrics["cpu"] = cpu_split(reaped, kinds)
    text = out.getvalue()
    try:
        metrics["report"] = json.loads(text)
    except ValueError:
        metrics["report"] = None
        metrics["output"] = text[-4000:]
    with open(metrics_path, "w", encoding="utf-8") as file:
        json.dump(metrics, file, indent=2, default=str)
    return code


if __name__ == "__main__":
    sys.exit(main())
