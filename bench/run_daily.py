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
import resource
import sys
import threading
import time


def peak_rss() -> int:
    """This process's peak resident memory, in bytes.

    VmHWM, not ``getrusage``'s ru_maxrss: Linux carries ru_maxrss over a fork and exec,
    so a run started by a bench that had just seeded a large fleet in its own memory
    would report the bench's peak instead of its own."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


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
    # are children too: sample their memory, apart.
    peak_children = [0]
    peak_pool = [0]
    stop = threading.Event()
    try:
        import psutil

        me = psutil.Process()

        def sample():
            while not stop.wait(0.5):
                server = pool = 0
                try:
                    for child in me.children(recursive=True):
                        rss = child.memory_info().rss
                        if "spawn_main" in " ".join(child.cmdline()):
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
    stop.set()
    metrics["exit_code"] = code
    metrics["wall_seconds"] = time.perf_counter() - started
    metrics["peak_rss_bytes"] = peak_rss()
    metrics["peak_prefect_server_rss_bytes"] = peak_children[0]
    metrics["peak_pool_rss_bytes"] = peak_pool[0]
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
