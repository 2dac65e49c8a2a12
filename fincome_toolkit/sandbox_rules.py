"""The sandbox's payload validation (assumption A6): what a FastAPI/pydantic server would answer.

Each check returns pydantic-style error items `{"loc": ["body", field], "msg": ..., "type": ...}`
for a 422 `{"detail": [...]}` answer. Bodies are parsed with `Decimal` floats, so an amount's
decimals are judged on the JSON text the client sent (`0.1` and `0.10` are fine, `0.105` is not).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import polars as pl

from fincome_toolkit.codes import ISO_3166_ALPHA2_COUNTRIES, ISO_4217_CURRENCIES
from fincome_toolkit.contract import EXACT_AMOUNT_LIMIT, MONEY_FIELDS, REFERENCES
from fincome_toolkit.frames import FIELDS, REQUIRED_FIELDS

ErrorItem = dict[str, Any]
Exists = Callable[[str, str], bool]  # (entity, id) → is it stored?

DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_ID_LENGTH = 255
MINIMUM = {"interval_count": 1, "quantity": 0, "amount_excluding_tax": 0, "tax_amount": 0}
# Date pairs that must be increasing (half-open periods): (entity, start, end).
ORDERED_DATES = (
    ("subscriptions", "start_date", "end_date"),
    ("invoices", "period_start", "period_end"),
)
SINGULAR = {"customers": "customer", "subscriptions": "subscription", "invoices": "invoice"}


def error(field: str | None, msg: str, kind: str, *, where: str = "body") -> ErrorItem:
    """One pydantic-style error item."""
    loc = [where] if field is None else [where, field]
    return {"loc": loc, "msg": msg, "type": kind}


def field_errors(entity: str, record: dict[str, Any], *, partial: bool = False) -> list[ErrorItem]:
    """Type, format and range errors of the fields present; missing required ones unless partial.

    Unknown fields are refused (`extra_forbidden`): a toolkit bug that leaks, say, provenance
    columns into payloads shows up here instead of being silently ignored.
    """
    fields = FIELDS[entity]
    errors = [
        error(name, "Extra inputs are not permitted", "extra_forbidden")
        for name in record
        if name not in fields
    ]
    if not partial:
        errors += [
            error(name, "Field required", "missing")
            for name in REQUIRED_FIELDS[entity]
            if record.get(name) is None
        ]
    for name, value in record.items():
        if name in fields and value is not None:
            problem = _value_problem(name, fields[name], value)
            if problem:
                errors.append(error(name, *problem))
    return errors


def _value_problem(name: str, dtype: pl.DataType, value: Any) -> tuple[str, str] | None:
    if name == "custom_properties":
        return None if isinstance(value, dict) else ("Input should be a valid object", "dict_type")
    if name in MONEY_FIELDS:
        return _amount_problem(name, value)
    if dtype == pl.Int64():
        if not isinstance(value, int) or isinstance(value, bool):
            return "Input should be a valid integer", "int_type"
        return _minimum_problem(name, value)
    if not isinstance(value, str):
        return "Input should be a valid string", "string_type"
    if dtype == pl.Date():
        return _date_problem(name, value)
    if isinstance(dtype, pl.Enum):
        allowed = dtype.categories.to_list()
        if value not in allowed:
            return f"Input should be {_one_of(allowed)}", "enum"
        return None
    return _string_problem(name, value)


def _amount_problem(name: str, value: Any) -> tuple[str, str] | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        return "Input should be a valid number", "decimal_type"
    amount = Decimal(value) if isinstance(value, int) else Decimal(str(value))
    if not amount.is_finite():
        return "Input should be a finite number", "finite_number"
    if amount != amount.quantize(Decimal("0.01")):
        return "Decimal input should have no more than 2 decimal places", "decimal_max_places"
    if abs(amount) >= EXACT_AMOUNT_LIMIT:
        return "Decimal input should have no more than 15 digits in total", "decimal_max_digits"
    return _minimum_problem(name, amount)


def _minimum_problem(name: str, value: int | Decimal) -> tuple[str, str] | None:
    minimum = MINIMUM.get(name)
    if minimum is not None and value < minimum:
        return f"must be >= {minimum}", "greater_than_equal"
    return None


def _date_problem(name: str, value: str) -> tuple[str, str] | None:
    if parse_day(value) is not None:
        return None
    if name == "cancelled_at" and _parse_datetime(value) is not None:
        return None  # a moment is fine for a cancellation (A10: ISO 8601 with an offset)
    return "Input should be a valid date in the format YYYY-MM-DD", "date_parsing"


def _string_problem(name: str, value: str) -> tuple[str, str] | None:
    if name in ("id", "customer_id", "subscription_id", "root_parent_id", "plan_id"):
        if not value.strip():
            return "String should have at least 1 character", "string_too_short"
        if len(value) > MAX_ID_LENGTH:
            return f"String should have at most {MAX_ID_LENGTH} characters", "string_too_long"
    if name == "currency" and value not in ISO_4217_CURRENCIES:
        return "must be an ISO 4217 currency code in upper case, e.g. EUR", "currency_code"
    if name == "country" and value not in ISO_3166_ALPHA2_COUNTRIES:
        return "must be an ISO 3166-1 alpha-2 country code in upper case, e.g. FR", "country_code"
    if name == "email" and not EMAIL_PATTERN.match(value):
        return "value is not a valid email address", "value_error"
    return None


def _one_of(values: list[str]) -> str:
    quoted = [f"'{value}'" for value in values]
    return f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def parse_day(value: Any) -> date | None:
    """A `YYYY-MM-DD` string as a date; None for anything else."""
    if not isinstance(value, str) or not DATE_PATTERN.match(value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _parse_datetime(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def record_errors(entity: str, record: dict[str, Any]) -> list[ErrorItem]:
    """Errors across fields of a whole (merged) record: periods must be increasing."""
    errors = []
    for frame, start_name, end_name in ORDERED_DATES:
        if frame != entity:
            continue
        start, end = parse_day(record.get(start_name)), parse_day(record.get(end_name))
        if start is not None and end is not None and not start < end:
            msg = f"must be after {start_name} ({start_name} < {end_name}, the end is exclusive)"
            errors.append(error(end_name, msg, "value_error"))
    return errors


def reference_errors(
    entity: str, record: dict[str, Any], exists: Exists, *, fields: set[str] | None = None
) -> list[ErrorItem]:
    """A reference to a record that does not exist is a 422 on that field (A6)."""
    errors = []
    for ref in REFERENCES:
        if ref.entity != entity or (fields is not None and ref.field not in fields):
            continue
        target_id = record.get(ref.field)
        if not isinstance(target_id, str) or not target_id:
            continue
        if ref.target == entity and target_id == record.get("id"):
            continue  # a root customer may name itself as its root parent
        if not exists(ref.target, target_id):
            msg = f"{SINGULAR[ref.target]} {target_id!r} does not exist"
            errors.append(error(ref.field, msg, "reference_not_found"))
    return errors


def stored_form(entity: str, record: dict[str, Any]) -> dict[str, Any]:
    """The record as stored: every A9 field present, exact amounts as floats, `{}` properties."""
    stored = {name: record.get(name) for name in FIELDS[entity]}
    for name in MONEY_FIELDS & stored.keys():
        if stored[name] is not None:
            # Validated: at most 2 decimals and 15 digits, so the float's repr is the same text.
            stored[name] = float(stored[name])
    properties = stored.get("custom_properties")
    stored["custom_properties"] = _plain(properties) if properties is not None else {}
    return stored


def _plain(value: Any) -> Any:
    """Decimals parsed inside free-form objects back to JSON-ready floats."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value
