"""The engine of one upload run: a pool of workers sending the records of a plan in order.

`UploadRun` owns what a run needs (client, journal, retry policy, shared rate-limit gate, the
records and their dependencies) and drives each record to a final outcome: POST, and for a 409
the A4 path (GET, compare, PATCH when allowed). `upload.py` builds the plan and the result.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from fincome_toolkit.client import FincomeClient
from fincome_toolkit.contract import (
    Answer,
    ContractSettings,
    Outcome,
    classify,
    classify_error,
    payload_differences,
)
from fincome_toolkit.errors import ApiError
from fincome_toolkit.journal import Journal
from fincome_toolkit.retry import RateGate, RetryPolicy
from fincome_toolkit.upload_plan import ENTITY_RANK, SINGULAR, UploadPlan
from fincome_toolkit.upload_progress import Progress, ProgressEvent

Key = tuple[str, str]  # (entity, record_id)
_VERBS = {
    "rejected": "was rejected",
    "conflict": "is in conflict with what Fincome holds",
    "pending": "got no answer",
    "held_back": "is held back",
}
_STOP = (len(ENTITY_RANK), 0, 0)  # sorts after every record in the queue


@dataclass
class SendRecord:
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
    last_error: str = ""  # the detail of the last failed request, for messages

    @property
    def key(self) -> Key:
        return (self.entity, self.record_id)

    @property
    def label(self) -> str:
        return f"{SINGULAR[self.entity]} {self.record_id}"


class UploadRun:
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
        self.records: dict[Key, SendRecord] = {}
        for row in plan.to_send().iter_rows(named=True):
            key = (row["entity"], row["record_id"])
            priority = (ENTITY_RANK[row["entity"]], row["depth"], row["row"])
            payload = plan.payload(row["entity"], row["row"])
            self.records[key] = SendRecord(
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
        self.in_flight = 0
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
                f"the API could not be reached ({first.requests} attempts); last error: "
                f"{first.last_error}",
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
        self.in_flight += 1
        outcome = await self._send(record)
        self.in_flight -= 1
        self._finish(record, *outcome)
        if self.unfinished and not self.in_flight and self.queue.empty():
            raise RuntimeError("upload stalled: records wait on records that will never be sent")

    def _finish(self, record: SendRecord, outcome: str, status: int | None, detail: str) -> None:
        """Record the outcome, then release or hold back the records that reference this one."""
        detail = self.client.redact(detail) if detail else detail  # never store an echoed key
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

    def _hold_dependents(self, failed: SendRecord) -> None:
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

    def _done(self, record: SendRecord) -> None:
        self.counts["acknowledged" if record.outcome == "acknowledged" else "problems"] += 1
        self.unfinished -= 1
        self._emit(record)
        if self.unfinished == 0:  # every record is finished: tell each worker to stop
            for _ in range(self.concurrency):
                self.queue.put_nowait((_STOP, ("", "")))

    def _emit(self, record: SendRecord | None) -> None:
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

    async def _send(self, record: SendRecord) -> tuple[str, int | None, str]:
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

    async def _resolve_conflict(self, record: SendRecord) -> tuple[str, int | None, str]:
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

    def _verdict(self, record: SendRecord, answer: Answer) -> tuple[str, int | None, str]:
        status = answer.status or None
        if answer.outcome is Outcome.ACKNOWLEDGED:
            return "acknowledged", status, ""
        if answer.outcome in (Outcome.TRANSIENT, Outcome.RATE_LIMITED):
            return (
                "pending",
                status,
                (
                    f"no final answer after {record.requests} requests (last: {answer.detail});"
                    " the next run sends it again"
                ),
            )
        return "rejected", status, answer.detail or f"HTTP {answer.status}"

    async def _call(
        self, record: SendRecord, request: Callable[[], Awaitable[httpx.Response]], *, write: bool
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
            if answer.outcome in (Outcome.RATE_LIMITED, Outcome.TRANSIENT):
                record.last_error = answer.detail
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
