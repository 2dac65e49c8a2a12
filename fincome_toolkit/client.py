"""The async HTTP client for Fincome's API, and `pull`: reading everything back into frames.

`FincomeClient` sends one request per call and returns the `httpx.Response` untouched: what to
retry and when belongs to the uploader (with `contract.classify`). Only listing, a read, retries
by itself. The secret key travels in a header added by an `httpx.Auth` object, so it is not in
the client's default headers, its repr, any URL, exception message or log line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import AsyncIterator, Generator
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import httpx
import polars as pl

from fincome_toolkit import __version__
from fincome_toolkit.contract import (
    CODE_FIELDS,
    MONEY_FIELDS,
    ContractSettings,
    Outcome,
    canonical_json,
    check_entity,
    classify,
    classify_error,
)
from fincome_toolkit.errors import ApiError, ConfigError
from fincome_toolkit.frames import (
    FIELDS,
    FRAME_NAMES,
    PARSE_ISSUE_SCHEMA,
    SOURCE_FILE,
    SOURCE_LINE,
    Dataset,
    canonical_schema,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(connect=5, read=30, write=30, pool=30)
REDACTED = "***"
MAX_READ_WAIT = 60.0  # seconds: the longest Retry-After a read honours before giving up


class _ApiKeyAuth(httpx.Auth):
    """Adds the secret key header to each request; its repr never shows the key (A1)."""

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self._headers)
        yield request

    def __repr__(self) -> str:
        return f"<API key in header {', '.join(self._headers)}: {REDACTED}>"


def resolve_api_key(settings: ContractSettings, api_key: str | None = None) -> str:
    """The key from the argument, else from the environment variable; `ConfigError` if none."""
    key = api_key if api_key is not None else os.environ.get(settings.api_key_env, "")
    if not key.strip():
        raise ConfigError(
            "no Fincome API key",
            fix=f"set the environment variable {settings.api_key_env} to your secret key "
            "(Fincome › Settings › Developers), e.g. `export "
            f"{settings.api_key_env}=...` in the shell that runs the toolkit",
        )
    return key.strip()


class FincomeClient:
    """One connection pool to the API; `create`, `get`, `update` send one request each.

    Use it as `async with FincomeClient(settings) as client: ...`. The key comes from `api_key`
    or the environment variable named by the settings (`FINCOME_API_KEY`). `transport` swaps
    the connection pool (then `max_connections` is the transport's business); `read_attempts`
    bounds the retries of listing reads. Network failures of `create`/`get`/`update` surface as
    `httpx.TransportError` (see `contract.classify_error`): whether to retry is the caller's call.
    """

    def __init__(
        self,
        settings: ContractSettings | None = None,
        *,
        api_key: str | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 32,
        read_attempts: int = 6,
    ) -> None:
        self.settings = settings or ContractSettings()
        self.read_attempts = read_attempts
        key = resolve_api_key(self.settings, api_key)
        self._secret = key  # only to scrub it from any text we build from answers
        self._http = httpx.AsyncClient(
            base_url=self.settings.base_url,
            auth=_ApiKeyAuth(self.settings.auth_headers(key)),
            timeout=timeout,
            transport=transport,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            headers={"Accept": "application/json", "User-Agent": f"fincome-toolkit/{__version__}"},
        )

    def __repr__(self) -> str:
        return f"FincomeClient(base_url={self.settings.base_url!r}, api_key={REDACTED})"

    async def __aenter__(self) -> FincomeClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # --- one request each, no retries, no raising on HTTP status ----------------------------

    async def create(self, entity: str, payload: dict[str, Any]) -> httpx.Response:
        """POST one record (A2–A4, A11): creates it (or updates it, for upserting entities)."""
        return await self._send("POST", self.settings.path(entity), payload)

    async def get(self, entity: str, record_id: str) -> httpx.Response:
        """GET one record by id: 200 with the stored object, or 404 (A7)."""
        return await self._send("GET", self.record_path(entity, record_id))

    async def update(self, entity: str, record_id: str, payload: dict[str, Any]) -> httpx.Response:
        """Partially update one record by id (A2: PATCH, only the fields sent change, 202)."""
        path = self.record_path(entity, record_id)
        return await self._send(self.settings.update_method, path, payload)

    def record_path(self, entity: str, record_id: str) -> str:
        """The path of one record; the id is percent-encoded (ids may hold `/` or spaces)."""
        return f"{self.settings.path(entity)}/{quote(str(record_id), safe='')}"

    async def _send(
        self, method: str, path: str, payload: dict[str, Any] | None = None
    ) -> httpx.Response:
        if payload is None:
            return await self._http.request(method, path)
        body = canonical_json(payload).encode("utf-8")
        headers = {"Content-Type": "application/json"}
        return await self._http.request(method, path, content=body, headers=headers)

    # --- listing (A8): a read, so it retries transient failures itself ----------------------

    async def iter_all(self, entity: str) -> AsyncIterator[dict[str, Any]]:
        """Every stored record of an entity, page by page following the cursors (A8)."""
        check_entity(entity)
        settings, cursor, seen = self.settings, None, set()
        while True:
            params: dict[str, Any] = {settings.list_limit_param: settings.list_limit}
            if cursor is not None:
                params[settings.list_cursor_param] = cursor
            page = await self._read_page(entity, params)
            for record in page[settings.list_data_key]:
                yield record
            cursor = page.get(settings.list_next_cursor_key)
            if cursor is None:
                return
            if cursor in seen:
                raise ApiError(
                    f"the API returned the same cursor twice while listing {entity}",
                    where=self._where(settings.path(entity)),
                    fix="check assumption A8 (cursor paging) in the contract settings",
                )
            seen.add(cursor)

    async def list_all(self, entity: str) -> list[dict[str, Any]]:
        """Every stored record of an entity as a list (A8)."""
        return [record async for record in self.iter_all(entity)]

    async def _read_page(self, entity: str, params: dict[str, Any]) -> dict[str, Any]:
        path = self.settings.path(entity)
        for attempt in range(1, self.read_attempts + 1):
            try:
                response = await self._http.get(path, params=params)
            except httpx.TransportError as error:
                answer = classify_error(error)
            else:
                answer = classify(response, self.settings)
                if answer.outcome is Outcome.ACKNOWLEDGED:
                    return self._page_body(entity, answer.body)
                if answer.outcome not in (Outcome.TRANSIENT, Outcome.RATE_LIMITED):
                    raise self._read_error(entity, answer.outcome, answer.status, answer.detail)
            if attempt == self.read_attempts:
                break
            wait = _backoff(attempt) if answer.retry_after is None else answer.retry_after
            if wait > MAX_READ_WAIT:
                break
            log.info("listing %s: %s, retrying in %.1fs", path, self.redact(answer.detail), wait)
            await asyncio.sleep(wait)
        raise ApiError(
            f"listing {entity} failed {attempt} time(s); last: {self.redact(answer.detail)}",
            where=self._where(path),
            fix="check that the API is reachable (base URL, network) and try again later",
        )

    def _page_body(self, entity: str, body: Any) -> dict[str, Any]:
        data_key = self.settings.list_data_key
        if not isinstance(body, dict) or not isinstance(body.get(data_key), list):
            raise ApiError(
                f"listing {entity} did not answer {{{data_key!r}: [...], "
                f"{self.settings.list_next_cursor_key!r}: ...}}",
                where=self._where(self.settings.path(entity)),
                fix="adjust the listing settings (assumption A8) to the official API reference",
            )
        return body

    def _read_error(self, entity: str, outcome: Outcome, status: int, detail: str) -> ApiError:
        where = self._where(self.settings.path(entity))
        if outcome is Outcome.AUTH_FAILED:
            return ApiError(
                "the API refused the key (HTTP 401)",
                where=where,
                fix=f"check {self.settings.api_key_env}: create a secret key in Fincome › "
                "Settings › Developers and export it; check auth_header/auth_prefix (A1)",
            )
        return ApiError(
            f"listing {entity} failed with HTTP {status}: {self.redact(detail)}",
            where=where,
            fix="check the base URL and the resource paths / listing settings (A2–A4, A8)",
        )

    def _where(self, path: str) -> str:
        return f"{self.settings.base_url.rstrip('/')}{path}"

    def redact(self, text: str) -> str:
        """`text` with the API key replaced, for anything that stores or shows a server message."""
        return text.replace(self._secret, REDACTED) if self._secret else text


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: ~0.2 s, 0.4 s, 0.8 s ... capped at 10 s."""
    return min(10.0, 0.2 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


async def pull(client: FincomeClient) -> Dataset:
    """Read every customer, subscription and invoice back (A8) into canonical frames.

    `source_file` is the resource (`api:/customers`), `source_line` the record's 1-based position
    in the listing. Values that do not fit the canonical dtypes become null plus a parse issue.
    """
    listings = await asyncio.gather(*(client.list_all(entity) for entity in FRAME_NAMES))
    frames, issues = {}, []
    for entity, records in zip(FRAME_NAMES, listings, strict=True):
        source = f"api:{client.settings.path(entity)}"
        frames[entity], entity_issues = frame_from_records(entity, records, source=source)
        issues.append(entity_issues)
    return Dataset(**frames, parse_issues=pl.concat(issues, how="vertical"))


def pull_sync(
    settings: ContractSettings | None = None, *, api_key: str | None = None, **options: Any
) -> Dataset:
    """`pull` for scripts and notebooks without an event loop: opens and closes its own client."""

    async def run() -> Dataset:
        async with FincomeClient(settings, api_key=api_key, **options) as client:
            return await pull(client)

    return asyncio.run(run())


# --- stored objects → canonical frames ---------------------------------------------------------

AMOUNT_TEXT = r"^-?\d+(\.\d{1,2})?$"  # A10: at most 2 decimals
DATE_TEXT = r"^\d{4}-\d{2}-\d{2}"  # A10: a date, or the date part of a date-time


def frame_from_records(
    entity: str, records: list[dict[str, Any]], *, source: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stored objects (as the API returns them) → (canonical frame, parse issues).

    Every value is first taken as JSON text, then cast column by column; a value that does not
    fit (bad date, 3 decimals, unknown status...) becomes null and a parse-issue row.
    """
    fields = FIELDS[entity]
    texts = pl.DataFrame(
        {name: [_as_text(name, record.get(name)) for record in records] for name in fields},
        schema=dict.fromkeys(fields, pl.String()),
    ).with_columns(
        pl.lit(source, pl.String).alias(SOURCE_FILE),
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(SOURCE_LINE),
    )
    typed = texts.select(
        *(_typed(name, dtype).alias(name) for name, dtype in fields.items()),
        SOURCE_FILE,
        SOURCE_LINE,
    )
    return typed.cast(dict(canonical_schema(entity))), _issues(entity, texts, typed)


def _as_text(name: str, value: Any) -> str | None:
    if name == "custom_properties":
        return json.dumps(value or {}, ensure_ascii=False, sort_keys=True)
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()  # never a valid amount, date or count
    if name in MONEY_FIELDS and isinstance(value, int | float):
        return format(Decimal(str(value)), "f")  # the JSON number's own digits, no float drift
    return value if isinstance(value, str) else json.dumps(value)


def _typed(name: str, dtype: pl.DataType) -> pl.Expr:
    text = pl.col(name)
    if name in MONEY_FIELDS:
        exact = text.str.contains(AMOUNT_TEXT)
        return pl.when(exact).then(text).cast(dtype, strict=False)
    if dtype == pl.Date():
        day = pl.when(text.str.contains(DATE_TEXT)).then(text.str.slice(0, 10))
        return day.str.to_date("%Y-%m-%d", strict=False)
    if name in CODE_FIELDS:
        return text.str.to_uppercase()
    return text.cast(dtype, strict=False)


def _issues(entity: str, texts: pl.DataFrame, typed: pl.DataFrame) -> pl.DataFrame:
    parts = [
        texts.filter(pl.col(name).is_not_null() & typed.get_column(name).is_null()).select(
            pl.lit(entity).alias("frame"),
            pl.col(SOURCE_FILE).alias("file"),
            pl.col(SOURCE_LINE).alias("line"),
            pl.col("id").alias("record_id"),
            pl.lit(name).alias("column"),
            pl.col(name).alias("raw_value"),
            pl.lit(f"the API returned a value that is not a valid {_expected(name, dtype)}").alias(
                "reason"
            ),
        )
        for name, dtype in FIELDS[entity].items()
    ]
    issues = pl.concat([pl.DataFrame(schema=PARSE_ISSUE_SCHEMA), *parts], how="vertical")
    return issues.sort("line", "column")


def _expected(name: str, dtype: pl.DataType) -> str:
    if name in MONEY_FIELDS:
        return "amount with at most 2 decimals"
    if dtype == pl.Date():
        return "date (YYYY-MM-DD)"
    if isinstance(dtype, pl.Enum):
        return f"{name} (one of {', '.join(dtype.categories.to_list())})"
    return f"{name} ({dtype})"
