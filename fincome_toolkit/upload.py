"""The uploader: ordered, concurrent, retried and resumable, so a migration loses nothing.

- Order: a record is sent only once every record it references is acknowledged (customers by
  depth in their hierarchy, then subscriptions, then invoices). When a record is rejected, in
  conflict or unanswered, the records that reference it are held back, with the reason.
- Concurrency: a pool of `concurrency` workers takes ready records from a priority queue. The
  very first record is sent alone, so a wrong key or an unreachable server stops the run after
  one request instead of a storm.
- Retries (`RetryPolicy`): 5xx, timeouts and dropped connections back off exponentially with
  jitter; a 429 closes a gate shared by all workers for `Retry-After` seconds; other 4xx are
  rejections (not retried); a 401 stops the whole run with one `ApiError`.
- Exactness: the journal marks a record `sent` before each write. A write whose answer was lost
  may have been stored; sending it again is an upsert, or a 409 that is resolved by reading the
  stored record (same content → acknowledged; other content → PATCH when `allow_updates`, else a
  reported conflict). So retries and resumed runs never create duplicates.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import polars as pl

from fincome_toolkit.client import DEFAULT_TIMEOUT, FincomeClient, resolve_api_key
from fincome_toolkit.contract import (
    Answer,
    ContractSettings,
    Outcome,
    classify,
    classify_error,
    payload_differences,
)
from fincome_toolkit.errors import ApiError, ConfigError
from fincome_toolkit.frames import Dataset
from fincome_toolkit.http_pool import ShardedTransport
from fincome_toolkit.journal import Journal
from fincome_toolkit.retry import RateGate, RetryPolicy
from fincome_toolkit.upload_plan import ENTITY_RANK, SINGULAR, UploadPlan, plan_upload
from fincome_toolkit.upload_progress import Progress, ProgressEvent
from fincome_toolkit.upload_result import RESULT_SCHEMA, UploadResult

if TYPE_CHECKING:
    from fincome_toolkit.audit import AuditResult

Key = tuple[str, str]  # (entity, record_id)
_VERBS = {
    "rejected": "was rejected",
    "conflict": "is in conflict with what Fincome holds",
    "pending": "got no answer",
    "held_back": "is held back",
}
_STOP = (len(ENTITY_RANK), 0, 0)  # sorts after every record in the queue


@dataclass
class _Record:
    """One record to send, and what happened to it in this run."""

    entity: str
    record_id: str
    payload: dict[str, Any]
    payload_hash: str
    priority: tuple[int, int, int]
    dependents: list[Key] = field(default_factory=list)
    waiting_on: int = 0
    outcome: str | None = None
    http_status: int | None = None
    detail: str | None = None
    requests: int = 0
    failures: int = 0  # transient failures, bounded by RetryPolicy.max_attempts
    rate_limited: int = 0

    @property
    def key(self) -> Key:
        return (self.entity, self.record_id)

    @property
    def label(self) -> str:
        return f"{SINGULAR[self.entity]} {self.record_id}"


class _Run:
    """The state of one upload run: the records, the queue, the shared gate, the counters."""

    def __init__(
        self,
        plan: UploadPlan,
        *,
        client: FincomeClient,
        journal: Journal,
        allow_updates: bool,
        retry: RetryPolicy,
        concurrency: int,
        progress: Progress | None,
    ) -> None:
        self.client, self.journal, self.retry = client, journal, retry
        self.settings: ContractSettings = client.settings
        self.allow_updates = allow_updates
        self.progress = progress
        self.concurrency = concurrency
        self.gate = RateGate(sleep=retry.sleep)
        self.rng: random.Random = retry.rng()
        self.records: dict[Key, _Record] = {}
        for row in plan.to_send().iter_rows(named=True):
            key = (row["entity"], row["record_id"])
            priority = (ENTITY_RANK[row["entity"]], row["depth"], row["row"])
            payload = plan.payload(row["entity"], row["row"])
            self.records[key] = _Record(
                *key, payload=payload, payload_hash=row["payload_hash"], priority=priority
            )
        for entity, record_id, target, referenced_id in plan.edges.iter_rows():
            self.records[(target, referenced_id)].dependents.append((entity, record_id))
            self.records[(entity, record_id)].waiting_on += 1
        self.queue: asyncio.PriorityQueue[tuple[tuple[int, int, int], Key]] = (
            asyncio.PriorityQueue()
        )
        self.unfinished = len(self.records)
        self.requests = 0
        self.answers = 0  # HTTP answers received, whatever their status
        self.counts = {"acknowledged": 0, "problems": 0}

    # --- scheduling -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Send every record; returns when each one is finished or held back."""
        self._emit(None)
        for record in self.records.values():
            if record.waiting_on == 0:
                self.queue.put_nowait((record.priority, record.key))
        if not self.unfinished:
            return
        # The first record goes alone: a wrong key or a dead server costs one request, not N.
        await self._process(self.queue.get_nowait()[1])
        if self.answers == 0:
            first = next(r for r in self.records.values() if r.outcome)
            raise ApiError(
                f"no answer from the API after {first.requests} attempts: {first.detail}",
                where=self.settings.base_url,
                fix="check the base URL (--base-url), the network and that the server is up",
            )
        async with asyncio.TaskGroup() as workers:
            for _ in range(self.concurrency):
                workers.create_task(self._worker())

    async def _worker(self) -> None:
        while True:
            priority, key = await self.queue.get()
            if priority == _STOP:
                return
            await self._process(key)

    async def _process(self, key: Key) -> None:
        record = self.records[key]
        outcome = await self._send(record)
        self._finish(record, *outcome)

    def _finish(self, record: _Record, outcome: str, status: int | None, detail: str) -> None:
        """Record the outcome, then release or hold back the records that reference this one."""
        record.outcome, record.http_status, record.detail = outcome, status, detail
        journal, (entity, record_id) = self.journal, record.key
        if outcome == "acknowledged":
            journal.mark_acknowledged(entity, record_id, http_status=status or 0)
        elif outcome == "rejected":
            journal.mark_rejected(entity, record_id, http_status=status, message=detail)
        elif outcome == "conflict":
            journal.mark_conflict(entity, record_id, http_status=status or 0, message=detail)
        else:
            journal.mark_unanswered(entity, record_id, http_status=status, message=detail)
        self._done(record)
        if outcome == "acknowledged":
            for dependent_key in record.dependents:
                dependent = self.records[dependent_key]
                dependent.waiting_on -= 1
                if dependent.waiting_on == 0 and dependent.outcome is None:
                    self.queue.put_nowait((dependent.priority, dependent_key))
        else:
            self._hold_dependents(record)

    def _hold_dependents(self, failed: _Record) -> None:
        """Hold back, transitively, every record waiting on one that will not be in Fincome."""
        stack, held = [failed], []
        while stack:
            cause = stack.pop()
            reason = f"waiting on {cause.label}, which {_VERBS[cause.outcome or 'pending']}: "
            for key in cause.dependents:
                dependent = self.records[key]
                if dependent.outcome is None:
                    dependent.outcome = "held_back"
                    dependent.detail = reason + (cause.detail or "")
                    held.append(dependent)
                    stack.append(dependent)
                    self._done(dependent)
        for entity in ENTITY_RANK:
            rows = [
                (r.record_id, r.payload_hash, r.detail or "") for r in held if r.entity == entity
            ]
            if rows:
                self.journal.mark_held_back(entity, rows)

    def _done(self, record: _Record) -> None:
        self.counts["acknowledged" if record.outcome == "acknowledged" else "problems"] += 1
        self.unfinished -= 1
        self._emit(record)
        if self.unfinished == 0:  # every record is finished: tell each worker to stop
            for _ in range(self.concurrency):
                self.queue.put_nowait((_STOP, ("", "")))

    def _emit(self, record: _Record | None) -> None:
        if self.progress is None:
            return
        self.progress(
            ProgressEvent(
                done=len(self.records) - self.unfinished,
                total=len(self.records),
                acknowledged=self.counts["acknowledged"],
                problems=self.counts["problems"],
                entity=record.entity if record else None,
                record_id=record.record_id if record else None,
                outcome=record.outcome if record else None,
            )
        )

    # --- one record: POST, and the A4 conflict path ---------------------------------------------

    async def _send(self, record: _Record) -> tuple[str, int | None, str]:
        """Send one record until it has a final outcome; returns `(outcome, status, detail)`."""
        client, entity = self.client, record.entity
        answer = await self._call(record, lambda: client.create(entity, record.payload), write=True)
        if answer.outcome is Outcome.NOT_FOUND:
            raise ApiError(
                f"POST {self.settings.path(entity)} answered 404: the API has no such resource",
                where=self.settings.base_url,
                fix=f"check the base URL and {entity}_path in the contract settings (A2–A4)",
            )
        if answer.outcome is Outcome.CONFLICT:
            return await self._resolve_conflict(record)
        return self._verdict(record, answer)

    async def _resolve_conflict(self, record: _Record) -> tuple[str, int | None, str]:
        """A4: the id exists. Same content → done; other content → PATCH if allowed, else report."""
        client, entity, record_id = self.client, record.entity, record.record_id
        stored = await self._call(record, lambda: client.get(entity, record_id), write=False)
        if stored.outcome is Outcome.NOT_FOUND:
            return (
                "pending",
                stored.status,
                (
                    f"Fincome answered 409 (exists) but GET found no {record.label}; "
                    "the next run sends it again"
                ),
            )
        if stored.outcome is not Outcome.ACKNOWLEDGED:
            return self._verdict(record, stored)
        body = stored.body if isinstance(stored.body, dict) else {}
        differences = payload_differences(entity, record.payload, body)
        if not differences:
            return "acknowledged", stored.status, "already in Fincome with the same content"
        if not self.allow_updates:
            return (
                "conflict",
                self.settings.conflict_status,
                (
                    f"Fincome already holds {record.label} with other content: "
                    f"{_describe_differences(differences)}; allow updates (--allow-updates) "
                    "to overwrite it"
                ),
            )
        updated = await self._call(
            record, lambda: client.update(entity, record_id, record.payload), write=True
        )
        outcome, status, detail = self._verdict(record, updated)
        if outcome == "acknowledged":
            detail = f"updated in Fincome ({_describe_differences(differences)})"
        return outcome, status, detail

    def _verdict(self, record: _Record, answer: Answer) -> tuple[str, int | None, str]:
        status = answer.status or None
        if answer.outcome is Outcome.ACKNOWLEDGED:
            return "acknowledged", status, ""
        if answer.outcome in (Outcome.TRANSIENT, Outcome.RATE_LIMITED):
            return (
                "pending",
                status,
                (
                    f"no answer after {record.requests} requests (last: {answer.detail}); "
                    "the next run sends it again"
                ),
            )
        return "rejected", status, answer.detail or f"HTTP {answer.status}"

    async def _call(
        self, record: _Record, request: Callable[[], Awaitable[httpx.Response]], *, write: bool
    ) -> Answer:
        """One HTTP step with retries: returns a final answer, or the last one when out of tries."""
        retry = self.retry
        while True:
            await self.gate.wait()
            if write:  # in the journal before it leaves: a kill now leaves it `sent`, re-queued
                self.journal.mark_sent(record.entity, record.record_id)
            record.requests += 1
            self.requests += 1
            try:
                response = await request()
            except httpx.TransportError as error:
                answer = classify_error(error)
            else:
                self.answers += 1
                answer = classify(response, self.settings)
            if answer.outcome is Outcome.AUTH_FAILED:
                raise self._auth_error()
            if answer.outcome is Outcome.RATE_LIMITED:
                record.rate_limited += 1
                if record.rate_limited > retry.max_rate_limited:
                    return answer
                wait = answer.retry_after
                if wait is None:
                    wait = retry.backoff(record.rate_limited, self.rng)
                self.gate.close_for(min(wait, retry.max_retry_after))  # everyone pauses
            elif answer.outcome is Outcome.TRANSIENT:
                record.failures += 1
                if record.failures >= retry.max_attempts:
                    return answer
                wait = answer.retry_after  # a 503 may say how long; this request alone waits
                if wait is None:
                    wait = retry.backoff(record.failures, self.rng)
                await retry.sleep(min(wait, retry.max_delay))
            else:
                return answer

    def _auth_error(self) -> ApiError:
        return ApiError(
            "Fincome refused the API key (HTTP 401); the upload stopped and sent nothing more",
            where=self.settings.base_url,
            fix=f"check {self.settings.api_key_env}: create a secret key in Fincome › Settings › "
            "Developers, export it, and run the same command again to resume",
        )


def _describe_differences(differences: dict[str, tuple[Any, Any]], *, limit: int = 4) -> str:
    parts = [
        f"{name} is {_show(ours)} here but {_show(theirs)} in Fincome"
        for name, (ours, theirs) in list(differences.items())[:limit]
    ]
    if len(differences) > limit:
        parts.append(f"and {len(differences) - limit} more field(s)")
    return "; ".join(parts)


def _show(value: Any) -> str:
    return "empty" if value is None else repr(str(value))


# --- entry points -----------------------------------------------------------------------------


async def upload(
    dataset: Dataset,
    *,
    client: FincomeClient,
    journal: Journal,
    audit: AuditResult | None = None,
    force: bool = False,
    allow_updates: bool = False,
    retry_rejected: bool = False,
    concurrency: int = 16,
    retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so a shared default is safe
    progress: Progress | None = None,
) -> UploadResult:
    """Send `dataset` to Fincome through `client`, recording every step in `journal`.

    Records with error-severity issues in `audit` are held back unless `force`. Records the
    journal shows as acknowledged with the same content are skipped; records it shows as
    rejected are re-sent only with `retry_rejected` (or once they change). Raises `ApiError` when
    the key is refused (401) or the server cannot be reached at all.
    """
    if concurrency < 1:
        raise ConfigError(f"concurrency is {concurrency}", fix="use 1 or more (16 is a good start)")
    _check_journal_target(journal, client.settings.base_url)
    journal.requeue_in_flight()  # records a killed run left in flight are sent again
    plan = plan_upload(
        dataset, audit=audit, journal=journal, force=force, retry_rejected=retry_rejected
    )
    _journal_plan(journal, plan)
    run = _Run(
        plan,
        client=client,
        journal=journal,
        allow_updates=allow_updates,
        retry=retry,
        concurrency=concurrency,
        progress=progress,
    )
    started = time.perf_counter()
    try:
        await run.run()
    except* ApiError as group:
        raise group.exceptions[0] from None
    return _result(plan, run, seconds=time.perf_counter() - started)


def run_upload(
    dataset: Dataset,
    *,
    settings: ContractSettings | None = None,
    api_key: str | None = None,
    journal: Journal | Path | str | None = None,
    audit: AuditResult | None = None,
    force: bool = False,
    allow_updates: bool = False,
    retry_rejected: bool = False,
    concurrency: int = 16,
    retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen, so a shared default is safe
    progress: Progress | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
) -> UploadResult:
    """`upload` for scripts, the CLI and Jupyter: opens the client and journal, runs, closes.

    `journal` is a `Journal`, a file path, or None for `.fincome/journal-<host>-<hash>.sqlite`.
    The key comes from `api_key` or the environment (`FINCOME_API_KEY`); it is never stored.
    """
    settings = settings or ContractSettings()
    key = resolve_api_key(settings, api_key)  # fail before touching anything when it is missing

    async def send(opened: Journal) -> UploadResult:
        transport = ShardedTransport(max(concurrency, 1))  # one pool per few connections: fast
        async with FincomeClient(
            settings, api_key=key, timeout=timeout, transport=transport
        ) as client:
            return await upload(
                dataset,
                client=client,
                journal=opened,
                audit=audit,
                force=force,
                allow_updates=allow_updates,
                retry_rejected=retry_rejected,
                concurrency=concurrency,
                retry=retry,
                progress=progress,
            )

    with _open_journal(journal, settings.base_url) as opened:
        return _run_coroutine(send(opened))


def _run_coroutine(coroutine: Coroutine[Any, Any, UploadResult]) -> UploadResult:
    """`asyncio.run`, or in a thread when an event loop already runs here (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _open_journal(journal: Journal | Path | str | None, base_url: str) -> Any:
    if isinstance(journal, Journal):
        return nullcontext(journal)
    if journal is None:
        return Journal.for_target(base_url)
    return Journal(journal, base_url=base_url)


def _check_journal_target(journal: Journal, base_url: str) -> None:
    target = journal.base_url
    if target is not None and target != base_url.rstrip("/"):
        raise ConfigError(
            f"the journal records uploads to {target}, but this upload goes to {base_url}",
            where=str(journal.path),
            fix="use one journal per target (the default journal path depends on the URL)",
        )


def _journal_plan(journal: Journal, plan: UploadPlan) -> None:
    """Queue the records to send, and note the held-back ones, before the first request."""
    with_id = plan.records.filter(pl.col("record_id").is_not_null())
    for (entity,), rows in with_id.filter(pl.col("action") == "send").group_by("entity"):
        journal.mark_pending(str(entity), rows.select("record_id", "payload_hash").iter_rows())
    for (entity,), rows in with_id.filter(pl.col("action") == "held_back").group_by("entity"):
        journal.mark_held_back(
            str(entity), rows.select("record_id", "payload_hash", "reason").iter_rows()
        )


def _result(plan: UploadPlan, run: _Run, *, seconds: float) -> UploadResult:
    """Every record of the plan with its final outcome."""
    sent = pl.DataFrame(
        [
            (r.entity, r.record_id, r.outcome, r.http_status, r.requests, r.detail or None)
            for r in run.records.values()
        ],
        schema={
            k: RESULT_SCHEMA[k] for k in RESULT_SCHEMA if k not in ("source_file", "source_line")
        },
        orient="row",
    )
    planned = plan.records.select(
        "entity",
        "record_id",
        pl.col("action").replace({"skip": "skipped", "send": None}).alias("planned"),
        "reason",
        "source_file",
        "source_line",
    )
    records = planned.join(sent, on=["entity", "record_id"], how="left", nulls_equal=False).select(
        "entity",
        "record_id",
        pl.coalesce("outcome", "planned").alias("outcome"),
        "http_status",
        pl.col("attempts").fill_null(0),
        pl.coalesce("detail", "reason").alias("detail"),
        "source_file",
        "source_line",
    )
    return UploadResult(records=records.cast(RESULT_SCHEMA), requests=run.requests, seconds=seconds)
