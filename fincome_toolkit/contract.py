"""The Fincome API contract: every assumption (A1–A12 of fincome-api-contract.md) in one place.

Only part of Fincome's reference could be read, so routes, the auth header, the listing format
and what a duplicate invoice does are *assumptions*. They all live here, in `ContractSettings`
(adjustable from a TOML file, no code change) and in the payload builders below; the client,
uploader and sandbox read them from here and nowhere else.

Money on the wire (A10): amounts are JSON numbers with at most 2 decimals. Payloads carry them as
Python floats built from the exact decimal text (`"0.10"` → `0.1`): any decimal with at most 15
significant digits converts to the float whose shortest repr is that same decimal, so `json.dumps`
writes exactly `0.1`, `1234.5`, `99999999.99`, never `0.30000000000000004`. Amounts of 10^13 or
more (over 15 digits) cannot travel exactly this way and are refused with an `InputError`.
"""

from __future__ import annotations

import dataclasses
import email.utils
import hashlib
import json
import tomllib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import polars as pl

from fincome_toolkit.errors import ConfigError, InputError
from fincome_toolkit.frames import FIELDS, FRAME_NAMES, MONEY

ENTITIES = FRAME_NAMES  # customers, subscriptions, invoices: also the upload order

MONEY_FIELDS = frozenset({"amount_excluding_tax", "tax_amount"})
DATE_FIELDS = frozenset(
    name for fields in FIELDS.values() for name, dtype in fields.items() if dtype == pl.Date()
)
CODE_FIELDS = frozenset({"country", "currency"})  # ISO codes, upper case on the wire (A10)
# Largest amount (exclusive) whose decimal text survives the trip through a binary float.
EXACT_AMOUNT_LIMIT = Decimal(10) ** 13
CENT = Decimal("0.01")


class Reference(NamedTuple):
    """A field of one entity that holds the id of a record of another (or the same) entity."""

    entity: str
    field: str
    target: str


# Which fields point at which records (A9 and the facts: an invoice needs its customer and
# subscription to exist first; a customer's parent must exist before the child).
REFERENCES: tuple[Reference, ...] = (
    Reference("customers", "root_parent_id", "customers"),
    Reference("subscriptions", "customer_id", "customers"),
    Reference("invoices", "customer_id", "customers"),
    Reference("invoices", "subscription_id", "subscriptions"),
)


@dataclass(frozen=True)
class ContractSettings:
    """What the toolkit assumes about Fincome's API; correct it with `from_toml` or `replace`."""

    base_url: str = "https://api2.fincome.co/product"  # documented fact (§1)
    api_key_env: str = "FINCOME_API_KEY"  # A1: where the secret key comes from
    auth_header: str = "X-API-Key"  # A1: header carrying the key
    auth_prefix: str = ""  # A1: value prefix, e.g. "Bearer " with auth_header="Authorization"
    customers_path: str = "/customers"  # A2: "/clients" is the other candidate
    subscriptions_path: str = "/subscriptions"  # A3
    invoices_path: str = "/invoices"  # A4
    # A2/A3: POST creates or updates by id for these; invoices are create-only (A4).
    upsert_entities: tuple[str, ...] = ("customers", "subscriptions")
    # A4: what a second POST /invoices with a known id does: "upsert" (200, new content stored),
    # "conflict" (409, then GET + compare + PATCH when allowed) or "either" (unknown: handle both).
    duplicate_invoice_policy: str = "either"
    update_method: str = "PATCH"  # A2: partial update of one record, answers 202
    success_statuses: tuple[int, ...] = (200, 201, 202)  # A5
    transient_statuses: tuple[int, ...] = (500, 502, 503, 504)  # A7
    auth_failed_status: int = 401  # A7
    not_found_status: int = 404  # A7
    conflict_status: int = 409  # A4
    rate_limited_status: int = 429  # A7/A12: with Retry-After (seconds or HTTP-date)
    list_limit: int = 1000  # A8: largest page the API serves
    list_limit_param: str = "limit"  # A8
    list_cursor_param: str = "cursor"  # A8
    list_data_key: str = "data"  # A8
    list_next_cursor_key: str = "next_cursor"  # A8
    server_fields: tuple[str, ...] = ("created_at", "updated_at")  # §1: added by the server
    amount_decimals: int = 2  # A10

    def __post_init__(self) -> None:
        if self.duplicate_invoice_policy not in ("upsert", "conflict", "either"):
            raise ConfigError(
                f"duplicate_invoice_policy is {self.duplicate_invoice_policy!r}",
                where="contract settings",
                fix='use "upsert", "conflict" or "either" (assumption A4)',
            )
        if not 1 <= self.list_limit <= 100_000:
            raise ConfigError(
                f"list_limit is {self.list_limit}", where="contract settings", fix="use 1..1000"
            )
        unknown = set(self.upsert_entities) - set(ENTITIES)
        if unknown:
            raise ConfigError(
                f"upsert_entities names unknown entities {sorted(unknown)}",
                where="contract settings",
                fix=f"use some of {', '.join(ENTITIES)}",
            )

    @classmethod
    def from_toml(cls, path: str | Path) -> ContractSettings:
        """Settings from a TOML file: top-level keys or a `[contract]` table, each a field name."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError("file not found", where=str(path)) from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"not valid TOML ({exc})", where=str(path)) from exc
        return cls().replace(where=str(path), **data.get("contract", data))

    def replace(self, *, where: str = "contract settings", **changes: Any) -> ContractSettings:
        """A copy with some fields changed; an unknown name raises a `ConfigError`."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigError(
                f"unknown contract setting(s) {', '.join(unknown)}",
                where=where,
                fix=f"use some of: {', '.join(sorted(names))}",
            )
        tuples = {k: tuple(v) for k, v in changes.items() if isinstance(v, list)}
        return dataclasses.replace(self, **(changes | tuples))

    def path(self, entity: str) -> str:
        """The resource path of an entity, e.g. `/customers` (A2–A4)."""
        check_entity(entity)
        return getattr(self, f"{entity}_path")

    def entity_of_path(self, path: str) -> str | None:
        """The entity served under a resource path, or None."""
        return next((e for e in ENTITIES if self.path(e) == path), None)

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The header(s) that carry the secret key (A1)."""
        return {self.auth_header: f"{self.auth_prefix}{api_key}"}


def check_entity(entity: str) -> None:
    """Raise a `ConfigError` unless `entity` is one of customers, subscriptions, invoices."""
    if entity not in FIELDS:
        raise ConfigError(f"unknown entity {entity!r}", fix=f"use one of {', '.join(ENTITIES)}")


def references(entity: str) -> tuple[Reference, ...]:
    """The reference fields of one entity (e.g. invoices → customer_id, subscription_id)."""
    check_entity(entity)
    return tuple(ref for ref in REFERENCES if ref.entity == entity)


def referenced_ids(entity: str, frame: pl.DataFrame) -> pl.DataFrame:
    """One row per non-null reference of a frame: `record_id, field, target, referenced_id`."""
    parts = [
        frame.select(
            pl.col("id").alias("record_id"),
            pl.lit(ref.field).alias("field"),
            pl.lit(ref.target).alias("target"),
            pl.col(ref.field).alias("referenced_id"),
        ).filter(pl.col("referenced_id").is_not_null())
        for ref in references(entity)
    ]
    schema = {"record_id": pl.String, "field": pl.String, "target": pl.String}
    empty = pl.DataFrame(schema=schema | {"referenced_id": pl.String})
    return pl.concat([empty, *parts], how="vertical_relaxed")


# --- payloads (A9, A10) -----------------------------------------------------------------------


def build_payloads(entity: str, frame: pl.DataFrame) -> list[dict[str, Any]]:
    """The JSON payloads (A9/A10) of a canonical frame, one dict per row, in row order.

    Dates become `YYYY-MM-DD`, money exact JSON numbers (see module doc), codes upper case,
    `custom_properties` an object (`{}` when null), unknown values null; provenance is left out.
    """
    check_entity(entity)
    fields = FIELDS[entity]
    missing = [name for name in fields if name not in frame.columns]
    if missing:
        raise InputError(
            f"the {entity} frame lacks the column(s) {', '.join(missing)}",
            fix="load the data with fincome_toolkit.load_dataset to get canonical frames",
        )
    _refuse_inexact_amounts(entity, frame)
    wire = frame.select(_wire_expression(name, dtype) for name, dtype in fields.items())
    payloads = wire.to_dicts()
    if "custom_properties" in fields:
        _parse_custom_properties(entity, frame, payloads)
    return payloads


def _wire_expression(name: str, dtype: pl.DataType) -> pl.Expr:
    column = pl.col(name)
    if name in MONEY_FIELDS:
        # Decimal → its exact text → the nearest float, whose repr is that text again.
        return column.cast(MONEY).cast(pl.String).cast(pl.Float64)
    if dtype == pl.Date():
        return column.dt.to_string("%Y-%m-%d")
    if name in CODE_FIELDS:
        return column.str.strip_chars().str.to_uppercase()
    if isinstance(dtype, pl.Enum):
        return column.cast(pl.String)
    return column


def _refuse_inexact_amounts(entity: str, frame: pl.DataFrame) -> None:
    for name in MONEY_FIELDS & set(FIELDS[entity]):
        too_big = frame.filter(pl.col(name).cast(MONEY).abs() >= EXACT_AMOUNT_LIMIT)
        if too_big.height:
            row = too_big.row(0, named=True)
            raise InputError(
                f"{name} {row[name]} has more than 15 significant digits and cannot be sent "
                f"exactly as a JSON number ({too_big.height} such row(s))",
                where=_where(entity, row),
                fix="check the amount's unit (cents read as major units?)",
            )


def _parse_custom_properties(
    entity: str, frame: pl.DataFrame, payloads: list[dict[str, Any]]
) -> None:
    # Per-row json.loads is unavoidable (free-form objects); rows with "{}" or null are skipped.
    texts = frame.get_column("custom_properties")
    for index in (texts.str.strip_chars().fill_null("{}") != "{}").arg_true():
        text = texts[index]
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            value = exc
        if not isinstance(value, dict):
            raise InputError(
                f"custom_properties is not a JSON object: {text[:80]!r}",
                where=_where(entity, frame.row(index, named=True)),
                fix='write it as a JSON object, e.g. {"segment": "smb"}',
            )
        payloads[index]["custom_properties"] = value
    for payload in payloads:
        if payload["custom_properties"] is None or payload["custom_properties"] == "{}":
            payload["custom_properties"] = {}


def _where(entity: str, row: dict[str, Any]) -> str:
    place = f"{entity} id {row.get('id')!r}"
    if row.get("source_file"):
        place = f"{row['source_file']}:{row.get('source_line')} ({place})"
    return place


def canonical_json(payload: Any) -> str:
    """Canonical JSON text: sorted keys, no spaces; Decimal/date values written exactly."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def payload_hash(payload: dict[str, Any]) -> str:
    """A stable SHA-256 (hex) of a payload's canonical JSON: same content, same hash."""
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()


# --- comparing what we sent with what the API holds ------------------------------------------


def normalise_payload(entity: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A payload or stored object reduced to the A9 fields, in comparable form.

    Amounts become `Decimal` with 2 decimals (`0.1`, `"0.10"` and `0.10` compare equal), dates
    `YYYY-MM-DD` (a date-time keeps its date part), codes upper case, custom properties `{}`
    when null; server fields (`created_at`, `updated_at`) and unknown keys are dropped.
    """
    check_entity(entity)
    return {name: _normalise_value(name, payload.get(name)) for name in FIELDS[entity]}


def _normalise_value(name: str, value: Any) -> Any:
    if name == "custom_properties":
        return value if value not in (None, "") else {}
    if value is None:
        return None
    if name in MONEY_FIELDS:
        try:
            return Decimal(str(value)).quantize(CENT)
        except ArithmeticError:
            return value
    if name in DATE_FIELDS and isinstance(value, str):
        return value[:10]
    if name in CODE_FIELDS and isinstance(value, str):
        return value.strip().upper()
    return value


def payload_from_answer(entity: str, answer: dict[str, Any]) -> dict[str, Any]:
    """The payload a stored object (as the API returns it) corresponds to, comparable with ours."""
    return normalise_payload(entity, answer)


def payload_differences(
    entity: str, sent: dict[str, Any], stored: dict[str, Any]
) -> dict[str, tuple[Any, Any]]:
    """Fields whose normalised value differs: `{field: (sent, stored)}`; empty when the same."""
    ours, theirs = normalise_payload(entity, sent), normalise_payload(entity, stored)
    return {name: (ours[name], theirs[name]) for name in ours if ours[name] != theirs[name]}


# --- reading answers (A5, A6, A7) -------------------------------------------------------------


class Outcome(StrEnum):
    """What an API answer means for the record that was sent."""

    ACKNOWLEDGED = "acknowledged"  # A5: stored; the body is the stored object
    REJECTED = "rejected"  # 4xx (A6 validation and the like): fix the data, do not retry
    CONFLICT = "conflict"  # A4: 409, the id exists with (maybe) other content
    NOT_FOUND = "not_found"  # A7: unknown id on GET/PATCH
    RATE_LIMITED = "rate_limited"  # A7/A12: 429, wait `retry_after` seconds
    TRANSIENT = "transient"  # A7: 5xx or a network failure, retry later
    AUTH_FAILED = "auth_failed"  # A7: 401, stop the run: the key is wrong


@dataclass(frozen=True)
class Answer:
    """A classified API answer: the outcome, the status and a readable detail."""

    outcome: Outcome
    status: int  # 0 when no HTTP answer arrived (network failure)
    detail: str = ""
    retry_after: float | None = None  # seconds to wait, for rate_limited (and some 503s)
    body: Any = None  # the decoded JSON body, when there was one
    # For network failures: False when the request certainly never reached the server
    # (connection refused, pool timeout); True when a write may have been stored (lost answer).
    maybe_stored: bool = False


def classify(
    response: httpx.Response,
    settings: ContractSettings | None = None,
    *,
    now: datetime | None = None,
) -> Answer:
    """Classify an HTTP response by the contract (A4–A7); `now` is for HTTP-date Retry-After."""
    settings = settings or ContractSettings()
    status = response.status_code
    body = _json_body(response)
    retry_after = parse_retry_after(response.headers.get("Retry-After"), now=now)
    detail = readable_detail(body, fallback=response.text)
    if status in settings.success_statuses:
        outcome = Outcome.ACKNOWLEDGED
    elif status == settings.auth_failed_status:
        outcome = Outcome.AUTH_FAILED
    elif status == settings.rate_limited_status:
        outcome = Outcome.RATE_LIMITED
    elif status == settings.conflict_status:
        outcome = Outcome.CONFLICT
    elif status == settings.not_found_status:
        outcome = Outcome.NOT_FOUND
    elif status in settings.transient_statuses:
        outcome = Outcome.TRANSIENT
    else:  # other 4xx, and answers the contract does not foresee (3xx, 501...): not retryable
        outcome = Outcome.REJECTED
        detail = detail or f"unexpected HTTP status {status}"
    return Answer(outcome, status, detail, retry_after, body, maybe_stored=False)


def classify_error(error: httpx.TransportError) -> Answer:
    """Classify a network failure: always transient; says whether the write may have landed."""
    never_sent = isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    detail = f"no answer from the API ({type(error).__name__}: {error})"
    return Answer(Outcome.TRANSIENT, 0, detail, maybe_stored=not never_sent)


def _json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError):
        return None


def readable_detail(body: Any, *, fallback: str = "", limit: int = 300) -> str:
    """The server's `detail` as one line: `"amount_excluding_tax: must be >= 0; ..."` for A6."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list):
        return "; ".join(_readable_item(item) for item in detail)[:limit]
    if detail is not None:
        return str(detail)[:limit]
    return " ".join(fallback.split())[:limit]


def _readable_item(item: Any) -> str:
    if not isinstance(item, dict):
        return str(item)
    location = [str(part) for part in item.get("loc", ()) if part not in ("body", "query", "path")]
    message = str(item.get("msg", "invalid"))
    return f"{'.'.join(location)}: {message}" if location else message


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP-date; None if absent."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
