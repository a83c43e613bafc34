"""A stand-in for the provider's Domain API (2018-01-29) on 127.0.0.1, for tests.

It answers as the real API does: RPC style, ``POST /`` with the parameters in the
query, the action in ``x-acs-action`` (the v3 signature the SDK uses) or in ``Action``,
JSON bodies with a ``RequestId``, errors as ``{"RequestId", "HostId", "Code",
"Message"}`` with a 4xx or 5xx status. Every request must carry a valid
ACS3-HMAC-SHA256 signature of the stand-in's access key, which it checks.

Supported actions:

- ``QueryDomainByDomainName``: ``DomainName``, ``DnsList.Dns``, ``UpdateProhibitionLock``
  (``OPEN`` for a locked domain, else ``CLOSE``), ``TransferProhibitionLock``...;
  an unknown domain is HTTP 400 ``DomainNotExist``;
- ``SaveBatchTaskForModifyingDomainDns``: ``DomainName.N``, ``DomainNameServer.N``,
  ``AliyunDns``; answers a new ``TaskNo``;
- ``QueryTaskDetailList``: ``TaskNo`` (required), ``DomainName`` (optional, only that
  domain's detail), ``PageNum``, ``PageSize``; each domain's detail answers
  ``EXECUTING`` for ``pending_polls`` polls, then executes: the domain's servers change
  (``EXECUTE_SUCCESS``), or ``EXECUTE_FAILURE`` with a ``FailReason`` and ``ErrorMsg``
  (a locked or unknown domain, or a reason set with ``fail_switch``);
- ``QueryTaskList``: the account's tasks created between ``BeginCreateTime`` and
  ``EndCreateTime`` (milliseconds since the epoch, both optional), newest first, with
  ``TaskNo``, ``TaskType`` (``CHG_DNS``), ``TaskStatus`` and ``CreateTime``, by page.

Use from a test or fixture::

    with AliyunDomainStandIn() as standin:
        standin.add_domain("example.com", ["ns1.paid.example", "ns2.paid.example"])
        settings = Settings(**standin.settings_fields())   # registrar_backend="aliyun"
        ...
        assert standin.nameservers("example.com") == [...]

Faults: ``standin.fault("QueryTaskDetailList", Reply(500, ...), times=1)`` answers the
next matching request with that reply (``Reply(delay=...)`` hangs, ``Reply(drop=True)``
hangs up); ``standin.throttle(action)`` answers as the API's flow control does;
``standin.lose_answer(action)`` carries the next such request out, then hangs up
without an answer (an answer lost after the request was applied).
``on_switch(domain, servers)`` is called when a switch executes (e.g. to rewrite a
parent zone's NS records).
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from tests.acs3 import acs3_signature, authorization_fields
from tests.http_sink import HttpSink, Reply, SeenRequest

API_VERSION = "2018-01-29"
ACCESS_KEY_ID = "LTAI-standin-key"
ACCESS_KEY_SECRET = "standin-secret-7f3a"

PENDING = "EXECUTING"
SUCCESS = "EXECUTE_SUCCESS"
FAILURE = "EXECUTE_FAILURE"
_STATUS_CODES = {"WAITING_EXECUTE": 0, PENDING: 1, SUCCESS: 2, FAILURE: 3}

# The API's error messages, by code.
_MESSAGES = {
    "InvalidAction.NotFound": "The RPC API is POST /",
    "DomainNotExist": "The domain name does not exist.",
    "Throttling.User": "Request was denied due to user flow control.",
    "IncompleteSignature": "The request signature does not conform to Aliyun standards.",
    "InvalidAccessKeyId.NotFound": "Specified access key is not found.",
    "SignatureDoesNotMatch": "Specified signature is not matched with our calculation.",
    "MissingDomainName": "DomainName is mandatory for this action.",
    "MissingAliyunDns": "AliyunDns is mandatory for this action.",
    "MissingDomainNameServer": "DomainNameServer is mandatory when AliyunDns is false.",
    "MissingPageNum": "PageNum and PageSize are mandatory for this action.",
    "MissingTaskNo": "TaskNo is mandatory for this action.",
}


@dataclass
class StandInDomain:
    name: str
    nameservers: list[str]
    locked: bool = False
    instance_id: str = ""


@dataclass
class _Detail:
    domain: str
    nameservers: list[str]
    polls_left: int
    status: str = "WAITING_EXECUTE"
    fail_reason: str | None = None
    detail_no: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class _Fault:
    action: str | None
    reply: Reply
    times: int | None
    applied: bool = False  # the request is carried out, then ``reply`` is sent instead


class AliyunDomainStandIn:
    """The Domain API's three actions, over a real HTTP server (see the module docstring)."""

    def __init__(
        self,
        *,
        access_key_id: str = ACCESS_KEY_ID,
        access_key_secret: str = ACCESS_KEY_SECRET,
        pending_polls: int = 0,
        on_switch: Callable[[str, list[str]], None] | None = None,
    ) -> None:
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.pending_polls = pending_polls
        self.on_switch = on_switch
        self.domains: dict[str, StandInDomain] = {}
        self.tasks: dict[str, list[_Detail]] = {}  # by TaskNo, in creation order
        self._created: dict[str, int] = {}  # TaskNo -> creation time, ms since the epoch
        self.actions: list[str] = []  # the action of every well-signed request, in order
        self._fail_reasons: dict[str, str] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._sink = HttpSink(self._answer)

    # --- running -----------------------------------------------------------------------

    def __enter__(self) -> AliyunDomainStandIn:
        self._sink.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._sink.close()

    @property
    def address(self) -> str:
        """``127.0.0.1:port``, the value of ``registrar_aliyun_endpoint``."""
        return self._sink.address

    @property
    def requests(self) -> list[SeenRequest]:
        return self._sink.requests

    def settings_fields(self) -> dict[str, Any]:
        """The Settings fields that point the ``aliyun`` registrar at this stand-in."""
        return {
            "registrar_backend": "aliyun",
            "registrar_aliyun_endpoint": self.address,
            "aliyun_protocol": "http",
            "aliyun_access_key_id": self.access_key_id,
            "aliyun_access_key_secret": self.access_key_secret,
        }

    # --- the registrar's state -----------------------------------------------------------

    def add_domain(self, name: str, nameservers: list[str], *, locked: bool = False) -> None:
        with self._lock:
            self.domains[name] = StandInDomain(
                name, list(nameservers), locked, f"S{next(self._ids):08d}"
            )

    def set_locked(self, name: str, locked: bool) -> None:
        with self._lock:
            self.domains[name].locked = locked

    def nameservers(self, name: str) -> list[str]:
        with self._lock:
            return list(self.domains[name].nameservers)

    def fail_switch(self, name: str, reason: str) -> None:
        """Every later switch task of ``name`` ends in EXECUTE_FAILURE with ``reason``."""
        with self._lock:
            self._fail_reasons[name] = reason

    def fault(self, action: str | None, reply: Reply, *, times: int | None = 1) -> None:
        """Answer the next ``times`` requests for ``action`` (any action when None) with
        ``reply`` instead (None: every one from now on)."""
        with self._lock:
            self._faults.append(_Fault(action, reply, times))

    def lose_answer(self, action: str, *, times: int = 1) -> None:
        """Carry out the next ``times`` requests for ``action``, then hang up without an
        answer, as a connection lost after the provider applied the request."""
        with self._lock:
            self._faults.append(_Fault(action, Reply(drop=True), times, applied=True))

    def throttle(self, action: str | None, *, times: int | None = 1) -> None:
        """The API's flow control: HTTP 400 ``Throttling.User``."""
        self.fault(
            action,
            self._refuse(400, "Throttling.User"),
            times=times,
        )

    # --- answering -----------------------------------------------------------------------

    def _answer(self, request: SeenRequest) -> Reply:
        query = dict(parse_qsl(request.raw_query, keep_blank_values=True))
        action = request.headers.get("x-acs-action") or query.get("Action", "")
        refusal = self._check_request(request, query)
        if refusal is not None:
            return refusal
        with self._lock:
            self.actions.append(action)
            fault = self._take_fault(action)
        if fault is not None and not fault.applied:
            return fault.reply
        handler = {
            "QueryDomainByDomainName": self._query_domain,
            "SaveBatchTaskForModifyingDomainDns": self._save_dns_task,
            "QueryTaskDetailList": self._query_task,
            "QueryTaskList": self._query_tasks,
        }.get(action)
        if handler is None:
            return self._refuse(
                404,
                "InvalidAction.NotFound",
                f"Specified api is not found, please check your url and method. {action}",
            )
        with self._lock:
            reply = handler(query)
        return fault.reply if fault is not None else reply

    def _check_request(self, request: SeenRequest, query: dict[str, str]) -> Reply | None:
        version = request.headers.get("x-acs-version") or query.get("Version")
        if request.method != "POST" or request.path != "/":
            return self._refuse(404, "InvalidAction.NotFound")
        if version != API_VERSION:
            return self._refuse(
                400, "InvalidVersion", f"Specified parameter Version is not valid: {version}"
            )
        authorization = request.headers.get("authorization", "")
        algorithm, _, fields = authorization.partition(" ")
        if algorithm != "ACS3-HMAC-SHA256":
            return self._refuse(400, "IncompleteSignature")
        parts = authorization_fields(request)
        if parts.get("Credential") != self.access_key_id:
            return self._refuse(404, "InvalidAccessKeyId.NotFound")
        if request.headers.get("x-acs-content-sha256") != hashlib.sha256(request.body).hexdigest():
            return self._refuse(400, "IncompleteSignature", "the body digest differs")
        expected = acs3_signature(request, self.access_key_secret)
        if not hmac.compare_digest(parts.get("Signature", ""), expected):
            return self._refuse(400, "SignatureDoesNotMatch")
        return None

    def _take_fault(self, action: str) -> _Fault | None:
        for fault in self._faults:
            if fault.action in (None, action):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def _query_domain(self, query: dict[str, str]) -> Reply:
        domain = self.domains.get(query.get("DomainName", ""))
        if domain is None:
            return self._refuse(400, "DomainNotExist")
        return Reply(
            200,
            {
                "RequestId": self._request_id(),
                "DomainName": domain.name,
                "InstanceId": domain.instance_id,
                "DnsList": {"Dns": list(domain.nameservers)},
                "DomainStatus": "3",
                "Registrar": "HiChina",
                "UpdateProhibitionLock": "OPEN" if domain.locked else "CLOSE",
                "TransferProhibitionLock": "CLOSE",
                "TransferOutStatus": "NORMAL",
                "RealNameStatus": "SUCCEED",
                "ExpirationDate": "2030-01-01 00:00:00",
            },
        )

    def _save_dns_task(self, query: dict[str, str]) -> Reply:
        names = _numbered(query, "DomainName")
        servers = _numbered(query, "DomainNameServer")
        aliyun_dns = query.get("AliyunDns", "").lower()
        if not names:
            return self._refuse(400, "MissingDomainName")
        if aliyun_dns not in ("true", "false"):
            return self._refuse(400, "MissingAliyunDns")
        if aliyun_dns == "false" and not servers:
            return self._refuse(400, "MissingDomainNameServer")
        task_no = str(uuid.uuid4())
        self.tasks[task_no] = [_Detail(n, servers, self.pending_polls) for n in names]
        self._created[task_no] = int(time.time() * 1000)
        return Reply(200, {"RequestId": self._request_id(), "TaskNo": task_no})

    def _query_task(self, query: dict[str, str]) -> Reply:
        if not query.get("PageNum") or not query.get("PageSize"):
            return self._refuse(400, "MissingPageNum")
        task_no = query.get("TaskNo", "")
        if not task_no:
            return self._refuse(400, "MissingTaskNo")
        details = self.tasks.get(task_no, [])
        if query.get("DomainName"):
            details = [d for d in details if d.domain == query["DomainName"]]
        for detail in details:
            self._advance(detail)
        return Reply(
            200,
            {
                "RequestId": self._request_id(),
                "CurrentPageNum": 1,
                "PageSize": int(query["PageSize"]),
                "TotalItemNum": len(details),
                "TotalPageNum": 1,
                "PrePage": False,
                "NextPage": False,
                "Data": {"TaskDetail": [self._detail_body(task_no, d) for d in details]},
            },
        )

    def _query_tasks(self, query: dict[str, str]) -> Reply:
        if not query.get("PageNum") or not query.get("PageSize"):
            return self._refuse(400, "MissingPageNum")
        begin = int(query.get("BeginCreateTime") or 0)
        end = int(query.get("EndCreateTime") or 2**63)
        page, size = int(query["PageNum"]), int(query["PageSize"])
        found = [
            task_no
            for task_no, created in reversed(self._created.items())
            if begin <= created <= end
        ]
        shown = found[(page - 1) * size : page * size]
        pages = max(1, -(-len(found) // size))
        return Reply(
            200,
            {
                "RequestId": self._request_id(),
                "CurrentPageNum": page,
                "PageSize": size,
                "TotalItemNum": len(found),
                "TotalPageNum": pages,
                "PrePage": page > 1,
                "NextPage": page < pages,
                "Data": {"TaskInfo": [self._task_body(task_no) for task_no in shown]},
            },
        )

    def _task_body(self, task_no: str) -> dict[str, Any]:
        details = self.tasks[task_no]
        statuses = {d.status for d in details}
        status = next((s for s in (FAILURE, PENDING, "WAITING_EXECUTE") if s in statuses), SUCCESS)
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self._created[task_no] / 1000))
        return {
            "TaskNo": task_no,
            "TaskType": "CHG_DNS",
            "TaskTypeDescription": "Modify DNS information",
            "TaskStatus": status,
            "TaskStatusCode": _STATUS_CODES[status],
            "TaskNum": len(details),
            "CreateTime": created,
            "Clientip": "127.0.0.1",
        }

    def _advance(self, detail: _Detail) -> None:
        """One poll of a detail: pending for a while, then executed once."""
        if detail.status in (SUCCESS, FAILURE):
            return
        if detail.polls_left > 0:
            detail.polls_left -= 1
            detail.status = PENDING
            return
        domain = self.domains.get(detail.domain)
        if domain is None:
            detail.status, detail.fail_reason = FAILURE, "The domain name does not exist."
        elif domain.locked:
            detail.status = FAILURE
            detail.fail_reason = (
                "The domain is in clientUpdateProhibited status and cannot be modified."
            )
        elif detail.domain in self._fail_reasons:
            detail.status, detail.fail_reason = FAILURE, self._fail_reasons[detail.domain]
        else:
            domain.nameservers = list(detail.nameservers)
            detail.status = SUCCESS
            if self.on_switch is not None:
                self.on_switch(domain.name, list(detail.nameservers))

    def _detail_body(self, task_no: str, detail: _Detail) -> dict[str, Any]:
        known = self.domains.get(detail.domain)
        done = "The operation is successful." if detail.status == SUCCESS else ""
        body: dict[str, Any] = {
            "TaskNo": task_no,
            "TaskDetailNo": detail.detail_no,
            "DomainName": detail.domain,
            "InstanceId": known.instance_id if known is not None else "",
            "TaskType": "CHG_DNS",
            "TaskTypeDescription": "Modify DNS information",
            "TaskStatus": detail.status,
            "TaskStatusCode": _STATUS_CODES[detail.status],
            "TryCount": 0,
            "CreateTime": "2026-01-01 00:00:00",
            "UpdateTime": "2026-01-01 00:00:01",
            "ErrorMsg": detail.fail_reason or done,
        }
        if detail.fail_reason:
            body["FailReason"] = detail.fail_reason
        return body

    def _request_id(self) -> str:
        return str(uuid.uuid4()).upper()

    def _refuse(self, status: int, code: str, message: str | None = None) -> Reply:
        return Reply(status, self._error(code, message or _MESSAGES[code]))

    def _error(self, code: str, message: str) -> dict[str, str]:
        return {
            "RequestId": self._request_id(),
            "HostId": "domain.aliyuncs.com",
            "Code": code,
            "Message": message,
        }


def _numbered(query: dict[str, str], name: str) -> list[str]:
    """``Name.1``, ``Name.2``... in order: how RPC style sends a list."""
    numbered = [
        (int(key[len(name) + 1 :]), value)
        for key, value in query.items()
        if key.startswith(name + ".") and key[len(name) + 1 :].isdigit()
    ]
    return [value for _, value in sorted(numbered)]
