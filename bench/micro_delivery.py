"""Per-message cost of delivery, the current code against a baseline commit, by hand only.

    .venv/bin/python bench/micro_delivery.py [--baseline fa6ea49] [--sms 2000]

The baseline's ``channels/email.py``, ``channels/sms.py`` and ``channels/render.py`` are
loaded from git (``git show``) next to the current ones, and both are measured in the
same process on the same messages, so the ratios are not skewed by the machine's load
of the moment as much as two separate runs would be. Measured:

1. ``build_mime`` over every notice kind in both languages (the sample contexts); and
   before timing, that each message built by the current code parses back (standard
   library, ``policy.default``) to the same headers and the same parts as the
   baseline's, for those messages and for hostile subjects and bodies.
2. Rendering an email and an SMS (``Renderer``).
3. SendSms through ``AliyunSmsBackend``: CPU time of this process per message, over
   http to ``bench/sms_sink.py`` (its own process) and over https to the same sink
   behind TLS with a throw-away certificate (trusted on top of certifi's bundle, so
   both sides load the full bundle as in production).
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import importlib.util
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import certifi

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dns_lifecycle.channels import render as current_render  # noqa: E402
from dns_lifecycle.channels.email import EmailMessage  # noqa: E402
from dns_lifecycle.channels.email import message as current_email  # noqa: E402
from dns_lifecycle.channels.sms import SmsMessage  # noqa: E402
from dns_lifecycle.channels.sms import aliyun as current_sms  # noqa: E402
from dns_lifecycle.core.settings import Settings  # noqa: E402
from dns_lifecycle.lifecycle.notices import LOCALES, NOTICE_KINDS  # noqa: E402
from dns_lifecycle.lifecycle.notices.samples import sample_context  # noqa: E402

SENDER = "DNS Hosting <no-reply@dns.example.com>"
DATE = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type")


def baseline_module(commit: str, path: str, name: str) -> types.ModuleType:
    """``path`` as it was at ``commit``, imported as module ``name``."""
    source = subprocess.run(
        ["git", "show", f"{commit}:{path}"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(ROOT / path)
    sys.modules[name] = module  # dataclasses look their module up while being made
    exec(compile(source, str(ROOT / path), "exec"), module.__dict__)
    return module


def per_call(fn: Callable[[], object], *, seconds: float = 1.0) -> float:
    """Seconds per call of ``fn``: the best of three rounds of about ``seconds`` / 3."""
    fn()
    n, started = 1, time.perf_counter()
    while time.perf_counter() - started < 0.05:
        fn()
        n += 1
    rounds = max(1, int(n * seconds / 3 / 0.05))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(rounds):
            fn()
        best = min(best, (time.perf_counter() - t0) / rounds)
    return best


def row(label: str, old: float, new: float, unit: str = "ms") -> str:
    return f"| {label} | {old * 1e3:.3f} {unit} | {new * 1e3:.3f} {unit} | {old / new:.1f}x |"


# --- email -------------------------------------------------------------------------------


def sample_messages() -> list[EmailMessage]:
    renderer = current_render.Renderer(Settings().templates_dir)
    messages = []
    for kind in NOTICE_KINDS:
        for locale in LOCALES:
            rendered = renderer.email(kind, sample_context(kind, locale))
            key = f"{kind}:inst-{locale}:2026-11-26T02:00:00+00:00:email"
            messages.append(
                EmailMessage(
                    key, "alice@example.com", rendered.subject, rendered.text, rendered.html
                )
            )
    return messages


def hostile_messages() -> list[EmailMessage]:
    subjects = [
        "",
        "x",
        " leading and  double  spaces ",
        "=?utf-8?q?looks_encoded?= but is not",
        "tab\there",
        "a" * 120,
        "word " * 40,
        "您的 DNS 套餐将于 30 天后到期" * 4,
        "mixed ASCII and 中文 and emoji 🎉 and ß",
    ]
    bodies = [
        "",
        "no final line end",
        "a line longer than seventy-eight characters, which must not go out as 7bit: " * 3,
        "From the start\n.dot\n--==_dnsl_ not a boundary\n",
        "trailing spaces   \nand\ttabs\t\n\r\nmixed line ends\rend",
        "¥1,180.00 and = signs and =?utf-8?b?AA==?=\n" * 5,
        "中文正文。\n" * 30,
    ]
    return [
        EmailMessage(f"hostile-{i}", "bob@例子.中国", subject, body, f"<p>{body}</p>")
        for i, (subject, body) in enumerate(
            [(s, b) for s in subjects for b in bodies[:2]] + [(subjects[1], b) for b in bodies]
        )
    ]


def parsed_view(data: bytes) -> tuple:
    message = email.message_from_bytes(data, policy=email.policy.default)
    headers = tuple((name, str(message[name])) for name in HEADERS)
    parts = tuple(
        (part.get_content_type(), part.get_content_charset(), part.get_content())
        for part in message.iter_parts()
    )
    return headers, parts


def check_email(old_module: types.ModuleType, messages: list[EmailMessage]) -> None:
    """Every message parses back the same from both builders (line ends aside)."""
    for message in messages:
        old = parsed_view(old_module.build_mime(message, SENDER, date=DATE))
        new_bytes = current_email.build_mime(message, SENDER, date=DATE)
        assert new_bytes == current_email.build_mime(message, SENDER, date=DATE)
        new_bytes.decode("ascii")  # 7-bit on the wire
        assert all(len(line) <= 998 for line in new_bytes.split(b"\r\n"))
        new = parsed_view(new_bytes)
        if old != new:
            # The baseline decoded a literal "=?...?=" in a subject; the current code
            # keeps it as typed. Everything else must agree.
            same_but_subject = old[1] == new[1] and [h for h in old[0] if h[0] != "Subject"] == [
                h for h in new[0] if h[0] != "Subject"
            ]
            assert same_but_subject and "=?" in message.subject, (message, old, new)
            assert dict(new[0])["Subject"] == message.subject


# --- SMS ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sink(port: int, tls: tuple[Path, Path] | None) -> subprocess.Popen:
    code = (
        "import ssl, sys; sys.path.insert(0, sys.argv[1]);"
        "from aiohttp import web; from sms_sink import make_app;"
        "ctx = None\n"
        "if len(sys.argv) > 3:\n"
        "    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH);"
        " ctx.load_cert_chain(sys.argv[3], sys.argv[4])\n"
        "web.run_app(make_app(), host='127.0.0.1', port=int(sys.argv[2]), ssl_context=ctx,"
        " print=None, access_log=None)"
    )
    args = [sys.executable, "-c", code, str(ROOT / "bench"), str(port)]
    if tls:
        args += [str(tls[0]), str(tls[1])]
    proc = subprocess.Popen(args)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the SMS sink did not start")


def make_certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "sink.pem", folder / "sink.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def sms_settings(endpoint: str, protocol: str) -> Settings:
    return Settings(
        sms_backend="aliyun",
        aliyun_endpoint=endpoint,
        aliyun_protocol=protocol,
        aliyun_access_key_id="LTAI-bench",
        aliyun_access_key_secret="bench-secret",
        sms_timeout_seconds=10,
    )


def sms_cpu_per_message(backend, count: int, batch: int) -> float:
    """CPU seconds of this process per message, sending ``count`` in batches."""
    messages = [
        SmsMessage(f"reminder:i-{n}:sms", f"+86139{n:08d}", "SMS_DNSL_REMINDER",
                   {"instance": f"dns-{n}", "days": "7"}, "text")
        for n in range(count)
    ]  # fmt: skip
    asyncio.run(backend.send(messages[:8]))  # warm up imports and caches
    started = time.process_time()
    for i in range(0, count, batch):
        results = asyncio.run(backend.send(messages[i : i + batch]))
        assert all(r.outcome == "sent" for r in results), results[:3]
    return (time.process_time() - started) / count


def measure_sms(old_sms: types.ModuleType, count: int, batch: int, https_count: int) -> list[str]:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        os.environ.pop(name, None)
    lines = []
    port = free_port()
    sink = start_sink(port, None)
    try:
        settings = sms_settings(f"127.0.0.1:{port}", "http")
        old = sms_cpu_per_message(old_sms.AliyunSmsBackend(settings), count, batch)
        new = sms_cpu_per_message(current_sms.AliyunSmsBackend(settings), count, batch)
        lines.append(row("SendSms over http, CPU per message", old, new))
    finally:
        sink.terminate()
        sink.wait()
    with tempfile.TemporaryDirectory() as folder:
        cert, key = make_certificate(Path(folder))
        bundle = Path(folder) / "bundle.pem"
        bundle.write_text(Path(certifi.where()).read_text() + cert.read_text())
        port = free_port()
        sink = start_sink(port, (cert, key))
        try:
            settings = sms_settings(f"localhost:{port}", "https")
            # The baseline's SDK loads its CA file for every request; give it the bundle.
            real_config = old_sms.Config
            old_sms.Config = lambda **kw: real_config(**kw, ca=str(bundle))
            old = sms_cpu_per_message(old_sms.AliyunSmsBackend(settings), https_count, batch)
            old_sms.Config = real_config
            context = ssl.create_default_context(cafile=str(bundle))
            current_sms._tls_context = lambda: context
            new = sms_cpu_per_message(current_sms.AliyunSmsBackend(settings), count, batch)
            lines.append(row("SendSms over https, CPU per message", old, new))
        finally:
            sink.terminate()
            sink.wait()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default="fa6ea49", help="commit to compare with")
    parser.add_argument("--sms", type=int, default=2000, help="SMS per measurement")
    parser.add_argument("--https-sms", type=int, default=200, help="SMS for the slow baseline")
    parser.add_argument("--batch", type=int, default=500, help="SMS per send()")
    args = parser.parse_args()

    old_email = baseline_module(args.baseline, "dns_lifecycle/channels/email.py", "baseline_email")
    old_render = baseline_module(
        args.baseline, "dns_lifecycle/channels/render.py", "baseline_render"
    )
    old_sms = baseline_module(args.baseline, "dns_lifecycle/channels/sms.py", "baseline_sms")

    messages = sample_messages()
    check_email(old_email, messages + hostile_messages())
    print(f"build_mime: {len(messages)} notices + hostile cases parse back the same.\n")

    lines = ["| per message | baseline | now | ratio |", "|---|---|---|---|"]

    def build_all(module) -> Callable[[], None]:
        return lambda: [module.build_mime(m, SENDER, date=DATE) for m in messages]

    old = per_call(build_all(old_email)) / len(messages)
    new = per_call(build_all(current_email)) / len(messages)
    lines.append(row("`build_mime` (all kinds, both languages)", old, new))

    templates = Settings().templates_dir
    contexts = [(kind, sample_context(kind, locale)) for kind in NOTICE_KINDS for locale in LOCALES]
    for what in ("email", "sms"):
        costs = []
        for module in (old_render, current_render):
            renderer = module.Renderer(templates)
            render = getattr(renderer, what)
            costs.append(per_call(lambda r=render: [r(k, c) for k, c in contexts]) / len(contexts))
        lines.append(row(f"rendering the {what}", *costs))

    lines += measure_sms(old_sms, args.sms, args.batch, args.https_sms)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
