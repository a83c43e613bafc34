"""The provider's Domain API (version 2018-01-29), through its official SDK.

Three actions, signed with the access key ``DNSL_ALIYUN_ACCESS_KEY_ID`` /
``DNSL_ALIYUN_ACCESS_KEY_SECRET``, sent to ``DNSL_REGISTRAR_ALIYUN_ENDPOINT`` over
``DNSL_ALIYUN_PROTOCOL``:

``QueryDomainByDomainName`` (DomainName)
    The lock: ``UpdateProhibitionLock`` is ``OPEN`` when the registrar's security lock
    forbids updates, which is the EPP status ``clientUpdateProhibited``; ``CLOSE`` or
    ``NONE_SETTING`` is no lock. ``DnsList.Dns`` is the delegation in place.
``SaveBatchTaskForModifyingDomainDns`` (DomainName.1, DomainNameServer.N, AliyunDns=false)
    Starts the switch as a task; its ``TaskNo`` is the task id. Before it, the lock is
    read (a locked domain raises ``DomainLocked``); a domain already delegated to those
    servers starts no task and answers with an id that is done at once.
``QueryTaskDetailList`` (TaskNo, PageNum=1, PageSize)
    The task's detail for the domain: ``TaskStatus`` ``EXECUTE_SUCCESS`` is done,
    ``EXECUTE_FAILURE`` is failed with the detail's ``FailReason`` or ``ErrorMsg``, and
    ``WAITING_EXECUTE`` / ``EXECUTING`` are pending.
``QueryTaskList`` (BeginCreateTime, PageNum, PageSize)
    Asked only when a switch is asked for again after its answer was lost (the caller
    gives ``asked_since``): the account's tasks created since then (less
    ``CLOCK_SLACK``), each ``CHG_DNS`` one asked with QueryTaskDetailList for the
    domain's detail; a task holding the domain and not failed is the one the lost
    request created, and its TaskNo is answered instead of a second task.

The SDK's errors become the project's: a timeout, no connection, an unreadable answer,
an HTTP 5xx or throttling (``Throttling*``, HTTP 429) is ``RegistrarUnavailable``; any
other 4xx is ``RegistrarRefused`` with the provider's Code and Message. No message
carries the access key secret. Nothing is retried here: the next run does that.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from alibabacloud_domain20180129 import models as api
from alibabacloud_domain20180129.client import Client
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.exceptions import UnretryableException

from dns_lifecycle.channels.registrar import SwitchState
from dns_lifecycle.core.errors import (
    DomainLocked,
    InputError,
    RegistrarRefused,
    RegistrarUnavailable,
)
from dns_lifecycle.core.settings import Settings

if TYPE_CHECKING:
    from dns_lifecycle.core.db import Database

# UpdateProhibitionLock values, and the EPP status that "OPEN" stands for.
LOCK_OPEN = "OPEN"
LOCKED_STATUS = "clientUpdateProhibited"

EXECUTE_SUCCESS = "EXECUTE_SUCCESS"
EXECUTE_FAILURE = "EXECUTE_FAILURE"

# The task type of a name-server change, as QueryTaskList names it.
CHG_DNS = "CHG_DNS"
# How far before a lost request its task is looked for: the provider's clock and ours
# may disagree.
CLOCK_SLACK = timedelta(minutes=5)
# Tasks read per page, and the most pages looked through before a person is asked.
_PAGE_SIZE = 100
_MAX_PAGES = 50
# Task ids of switches that needed no task (the servers were already in place).
IN_PLACE_PREFIX = "in-place:"
# Characters of the provider's message quoted in an error (the ledger keeps 1000).
_SNIPPET = 300


class AliyunRegistrar:
    """The Domain API through the SDK (see the module docstring for the calls)."""

    # A switch is a task at the provider: recorded before the next one is asked for.
    external = True

    def __init__(self, settings: Settings) -> None:
        secret = settings.aliyun_access_key_secret
        if not settings.aliyun_access_key_id or secret is None or not secret.get_secret_value():
            raise InputError(
                "registrar backend 'aliyun' has no access key: set DNSL_ALIYUN_ACCESS_KEY_ID "
                "and DNSL_ALIYUN_ACCESS_KEY_SECRET, or choose DNSL_REGISTRAR_BACKEND=database"
            )
        self._secret = secret
        self._endpoint = settings.registrar_aliyun_endpoint
        self._timeout = settings.registrar_timeout_seconds
        timeout_ms = max(1, round(settings.registrar_timeout_seconds * 1000))
        self._client = Client(
            Config(
                access_key_id=settings.aliyun_access_key_id,
                access_key_secret=secret.get_secret_value(),
                endpoint=settings.registrar_aliyun_endpoint,
                protocol=settings.aliyun_protocol,
                connect_timeout=timeout_ms,
                read_timeout=timeout_ms,
            )
        )

    def lock_status(self, domain: str) -> str | None:
        """``clientUpdateProhibited`` when the domain's update lock is open, else None."""
        return _lock(self._query_domain(domain))

    def start_switch(
        self, domain: str, nameservers: list[str], *, asked_since: datetime | None = None
    ) -> str:
        """Start a SaveBatchTaskForModifyingDomainDns task; its TaskNo is the id. After a
        lost answer (``asked_since``), the task that request created, if there is one."""
        body = self._query_domain(domain)
        lock = _lock(body)
        if lock is not None:
            raise DomainLocked(domain, lock, nameservers)
        if _same_servers(_dns_list(body), nameservers):
            return IN_PLACE_PREFIX + domain
        if asked_since is not None:
            found = self._task_since(domain, asked_since)
            if found is not None:
                return found
        request = api.SaveBatchTaskForModifyingDomainDnsRequest(
            domain_name=[domain], domain_name_server=list(nameservers), aliyun_dns=False, lang="en"
        )
        answer = self._call(
            "SaveBatchTaskForModifyingDomainDns",
            domain,
            lambda: self._client.save_batch_task_for_modifying_domain_dns(request),
        )
        task_no = answer.get("TaskNo")
        if not isinstance(task_no, str) or not task_no:
            raise RegistrarUnavailable(
                f"the Domain API at {self._endpoint} accepted the name-server change of "
                f"{domain} without a TaskNo (request {answer.get('RequestId')}); the next "
                "run asks again"
            )
        return task_no

    def switch_state(self, task_id: str) -> SwitchState:
        """The task's detail from QueryTaskDetailList (see the module docstring)."""
        if task_id.startswith(IN_PLACE_PREFIX):
            return SwitchState(done=True)
        details = self._details(task_id)
        if not details:
            raise RegistrarRefused(
                f"the Domain API at {self._endpoint} knows no task {task_id}: check the task "
                "in the registrar's console, then start the change again"
            )
        statuses = [d.get("TaskStatus") for d in details if isinstance(d, dict)]
        for detail in details:
            if isinstance(detail, dict) and detail.get("TaskStatus") == EXECUTE_FAILURE:
                reason = detail.get("FailReason") or detail.get("ErrorMsg") or "no reason given"
                return SwitchState(done=False, failed_reason=self._scrub(str(reason)))
        return SwitchState(done=bool(statuses) and all(s == EXECUTE_SUCCESS for s in statuses))

    def close(self) -> None:
        """Nothing to release: the SDK keeps its connection pool per process."""

    def _details(self, task_no: str, domain: str | None = None) -> list[dict[str, Any]]:
        """The details of task ``task_no`` (only ``domain``'s, when given)."""
        request = api.QueryTaskDetailListRequest(
            task_no=task_no, domain_name=domain, page_num=1, page_size=_PAGE_SIZE, lang="en"
        )
        answer = self._call(
            "QueryTaskDetailList",
            f"task {task_no}",
            lambda: self._client.query_task_detail_list(request),
        )
        data = answer.get("Data")
        details = data.get("TaskDetail") if isinstance(data, dict) else None
        return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []

    def _task_since(self, domain: str, since: datetime) -> str | None:
        """The TaskNo of a name-server change of ``domain`` created since ``since`` that
        has not failed, or None (then no request of it arrived, or it failed)."""
        begin = int((since - CLOCK_SLACK).timestamp() * 1000)
        folded = domain.strip().rstrip(".").casefold()
        for page in range(1, _MAX_PAGES + 1):
            request = api.QueryTaskListRequest(
                begin_create_time=begin, page_num=page, page_size=_PAGE_SIZE, lang="en"
            )
            answer = self._call(
                "QueryTaskList",
                domain,
                lambda request=request: self._client.query_task_list(request),
            )
            data = answer.get("Data")
            tasks = data.get("TaskInfo") if isinstance(data, dict) else None
            for task in tasks if isinstance(tasks, list) else []:
                task_no = task.get("TaskNo") if isinstance(task, dict) else None
                if not isinstance(task_no, str) or not task_no or task.get("TaskType") != CHG_DNS:
                    continue
                for detail in self._details(task_no, domain):
                    name = str(detail.get("DomainName") or "").strip().rstrip(".").casefold()
                    if name == folded and detail.get("TaskStatus") != EXECUTE_FAILURE:
                        return task_no
            if not answer.get("NextPage"):
                return None
        raise RegistrarRefused(
            f"the Domain API at {self._endpoint} lists more than {_MAX_PAGES * _PAGE_SIZE} "
            f"tasks since the name-server change of {domain} was asked for, whose answer "
            "was lost: find its task in the registrar's console, then resolve this ticket"
        )

    def _query_domain(self, domain: str) -> dict[str, Any]:
        request = api.QueryDomainByDomainNameRequest(domain_name=domain, lang="en")
        return self._call(
            "QueryDomainByDomainName",
            domain,
            lambda: self._client.query_domain_by_domain_name(request),
        )

    def _call(self, action: str, about: str, send: Any) -> dict[str, Any]:
        """The JSON body of one call, or the project's error for its failure."""
        where = f"the Domain API at {self._endpoint}"
        try:
            response = send()
        except ThrottlingException as exc:
            raise RegistrarUnavailable(
                f"{where} throttled {action} for {about} ({self._said(exc)}); the next run "
                "tries again"
            ) from None
        except ServerException as exc:
            raise RegistrarUnavailable(
                f"{where} failed {action} for {about} with HTTP {exc.status_code} "
                f"({self._said(exc)}); the next run tries again"
            ) from None
        except ClientException as exc:
            if str(exc.code or "").startswith("Throttling") or exc.status_code == 429:
                raise RegistrarUnavailable(
                    f"{where} throttled {action} for {about} ({self._said(exc)}); the next "
                    "run tries again"
                ) from None
            raise RegistrarRefused(
                f"{where} refused {action} for {about}: HTTP {exc.status_code} "
                f"{self._said(exc)}. Check that the domain belongs to the account of "
                "DNSL_ALIYUN_ACCESS_KEY_ID and that the key may manage domains"
            ) from None
        except UnretryableException as exc:
            inner = exc.inner_exception
            if "timed out" in str(inner).lower():
                raise RegistrarUnavailable(
                    f"{where} did not answer {action} for {about} within "
                    f"{self._timeout:g} s; the next run tries again"
                ) from None
            raise RegistrarUnavailable(
                f"{where} could not be reached, or gave no usable answer, for {action} for "
                f"{about} ({type(inner).__name__}); the next run tries again"
            ) from None
        body = response.body.to_map() if response.body is not None else {}
        return body

    def _said(self, exc: ClientException | ServerException | ThrottlingException) -> str:
        """The provider's Code and Message, without the secret."""
        data = exc.data if isinstance(exc.data, dict) else {}
        message = data.get("Message") or data.get("message") or ""
        request_id = data.get("RequestId") or data.get("requestId")
        said = f"{exc.code}: {' '.join(str(message).split())}"
        if request_id:
            said += f" (request {request_id})"
        return self._scrub(said)

    def _scrub(self, text: str) -> str:
        secret = self._secret.get_secret_value()
        if secret:
            text = text.replace(secret, "**********")
        return (text[:_SNIPPET] + "...") if len(text) > _SNIPPET else text


def _lock(body: dict[str, Any]) -> str | None:
    return LOCKED_STATUS if body.get("UpdateProhibitionLock") == LOCK_OPEN else None


def _dns_list(body: dict[str, Any]) -> list[str]:
    listed = body.get("DnsList")
    servers = listed.get("Dns") if isinstance(listed, dict) else None
    return [s for s in servers if isinstance(s, str)] if isinstance(servers, list) else []


def _same_servers(current: list[str], wanted: list[str]) -> bool:
    def fold(names: list[str]) -> set[str]:
        return {n.strip().rstrip(".").casefold() for n in names}

    return bool(current) and fold(current) == fold(wanted)


def from_settings(settings: Settings, database: Database) -> AliyunRegistrar:
    """The backend as the registry builds it."""
    return AliyunRegistrar(settings)
