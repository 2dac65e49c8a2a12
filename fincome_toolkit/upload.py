"""The uploader: ordered, concurrent, retried and resumable, so a migration loses nothing.

- Plan (`upload_plan.py`): what to send, skip (acknowledged and unchanged in the journal) or
  hold back (audit errors, or a record it references that is not in Fincome), with reasons.
- Order and concurrency (`upload_run.py`): a record is sent only once every record it
  references is acknowledged (customers by depth in their hierarchy, then subscriptions, then
  invoices); a pool of `concurrency` workers takes ready records from a priority queue. The
  very first record is sent alone, so a wrong key or an unreachable server stops the run after
  one request instead of a storm. When a record is rejected, in conflict or unanswered, the
  records that reference it are held back, with the reason.
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
import time
from collections.abc import Coroutine
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import polars as pl

from fincome_toolkit.client import DEFAULT_TIMEOUT, FincomeClient, resolve_api_key
from fincome_toolkit.contract import ContractSettings
from fincome_toolkit.errors import ApiError, ConfigError
from fincome_toolkit.frames import Dataset
from fincome_toolkit.http_pool import ShardedTransport
from fincome_toolkit.journal import Journal
from fincome_toolkit.retry import RetryPolicy
from fincome_toolkit.upload_plan import UploadPlan, plan_upload
from fincome_toolkit.upload_progress import Progress
from fincome_toolkit.upload_result import RESULT_SCHEMA, UploadResult
from fincome_toolkit.upload_run import UploadRun

if TYPE_CHECKING:
    from fincome_toolkit.audit import AuditResult


# Requests in flight at once: the upload is bound by CPU, not by the round trip, past ~32 on
# two cores (benchmarks/README.md); a 429 pauses the whole pool, so this stays polite.
DEFAULT_CONCURRENCY = 32


async def upload(
    dataset: Dataset,
    *,
    client: FincomeClient,
    journal: Journal,
    audit: AuditResult | None = None,
    force: bool = False,
    allow_updates: bool = False,
    retry_rejected: bool = False,
    concurrency: int = DEFAULT_CONCURRENCY,
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
    run = UploadRun(
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
    concurrency: int = DEFAULT_CONCURRENCY,
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


def _result(plan: UploadPlan, run: UploadRun, *, seconds: float) -> UploadResult:
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
