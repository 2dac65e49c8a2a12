"""Messy value parsers: every function takes a polars Series of raw values and returns `Parsed`.

`Parsed.values` has the canonical dtype (null where the input was empty or not understood) and
`Parsed.reasons` explains each value that was present but could not be parsed, so a caller can
turn failures into parse-issue rows and never drop anything silently. Parsers trim whitespace
(NBSP included) and read common spellings of "no value" (`NULL`, `N/A`, `-`...) as null.

Dates and amounts live in `_dates.py` and `_amounts.py` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from fincome_toolkit import _isodata, _vocab
from fincome_toolkit._amounts import DecimalEvidence, amount_decimal_evidence, parse_amounts
from fincome_toolkit._dates import DayOrderEvidence, date_order_evidence, parse_dates
from fincome_toolkit._parse_core import (
    DEFAULT_NULL_VALUES,
    Parsed,
    ParseOptions,
    as_text,
    clean_text,
    constant,
    lookup_vocabulary,
    map_distinct,
    normalise_key_text,
    normalise_keys,
    normalise_synonyms,
)
from fincome_toolkit.codes import ISO_3166_ALPHA2_COUNTRIES, ISO_4217_CURRENCIES
from fincome_toolkit.frames import (
    INTERVAL_UNITS,
    INVOICE_STATUSES,
    INVOICE_TYPES,
    SUBSCRIPTION_STATUSES,
    IntervalUnit,
    InvoiceStatus,
    InvoiceType,
    SubscriptionStatus,
)

__all__ = [
    "DEFAULT_NULL_VALUES",
    "DayOrderEvidence",
    "DecimalEvidence",
    "ParseOptions",
    "Parsed",
    "amount_decimal_evidence",
    "clean_text",
    "date_order_evidence",
    "parse_amounts",
    "parse_countries",
    "parse_currencies",
    "parse_dates",
    "parse_ids",
    "parse_integers",
    "parse_interval_units",
    "parse_invoice_statuses",
    "parse_invoice_types",
    "parse_subscription_statuses",
]

COUNTRY_CODES = ISO_3166_ALPHA2_COUNTRIES
CURRENCY_CODES = ISO_4217_CURRENCIES


def _country_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for alpha2, alpha3, english, french, others in _isodata.COUNTRIES:
        for name in (alpha3, english, french, *others):
            names.setdefault(normalise_key_text(name), alpha2)
    return names | normalise_synonyms(_vocab.COUNTRY_EXTRA_NAMES)


_COUNTRY_NAMES = _country_names()
_CURRENCY_NAMES = normalise_synonyms(_vocab.CURRENCY_NAMES)


def _enum_parser(
    values: pl.Series,
    vocabulary: Mapping[str, str],
    *,
    dtype: pl.Enum,
    accepted: tuple[str, ...],
    what: str,
    options: ParseOptions | None,
) -> Parsed:
    reason = f"unknown {what} (accepted: {', '.join(accepted)} and their usual spellings)"
    result = map_distinct(
        as_text(values),
        lambda distinct: lookup_vocabulary(
            clean_text(distinct, options=options), vocabulary, reason=reason
        ),
        {"value": dtype, "reason": pl.String()},
    )
    return Parsed(
        values=result["value"].alias(values.name),
        reasons=result["reason"].alias(values.name),
    )


def _routed_synonyms(options: ParseOptions | None, targets: tuple[str, ...]) -> dict[str, str]:
    """User status synonyms whose target belongs to `targets` (invoice vs subscription)."""
    synonyms = (options or ParseOptions()).status_synonyms
    return normalise_synonyms({k: v for k, v in synonyms.items() if v in targets})


def parse_invoice_statuses(values: pl.Series, *, options: ParseOptions | None = None) -> Parsed:
    """Invoice payment statuses to `open | paid | unpaid` (EN/FR spellings; `pending` → open)."""
    vocabulary = normalise_synonyms(_vocab.INVOICE_STATUS_SYNONYMS)
    vocabulary |= _routed_synonyms(options, INVOICE_STATUSES)
    return _enum_parser(
        values,
        vocabulary,
        dtype=InvoiceStatus,
        accepted=INVOICE_STATUSES,
        what="invoice status",
        options=options,
    )


def parse_subscription_statuses(
    values: pl.Series, *, options: ParseOptions | None = None
) -> Parsed:
    """Subscription statuses to active | trialing | paused | cancelled | ended (EN/FR)."""
    vocabulary = normalise_synonyms(_vocab.SUBSCRIPTION_STATUS_SYNONYMS)
    vocabulary |= _routed_synonyms(options, SUBSCRIPTION_STATUSES)
    return _enum_parser(
        values,
        vocabulary,
        dtype=SubscriptionStatus,
        accepted=SUBSCRIPTION_STATUSES,
        what="subscription status",
        options=options,
    )


def parse_invoice_types(values: pl.Series, *, options: ParseOptions | None = None) -> Parsed:
    """Invoice types to subscription | one_off (recurring/abonnement, setup/ponctuel...)."""
    vocabulary = normalise_synonyms(_vocab.INVOICE_TYPE_SYNONYMS)
    vocabulary |= normalise_synonyms((options or ParseOptions()).type_synonyms)
    return _enum_parser(
        values,
        vocabulary,
        dtype=InvoiceType,
        accepted=INVOICE_TYPES,
        what="invoice type",
        options=options,
    )


def _interval_vocabulary(options: ParseOptions | None) -> dict[str, tuple[str, int]]:
    vocabulary = normalise_synonyms(_vocab.INTERVAL_SYNONYMS)
    for spelling, target in (options or ParseOptions()).interval_synonyms.items():
        count, _, word = normalise_key_text(target).rpartition(" ")
        unit, per_word = vocabulary.get(word, (word, 1))
        if unit not in INTERVAL_UNITS or (count and not count.isdigit()):
            raise ValueError(f"interval synonym {spelling!r} → {target!r}: expected e.g. '3 month'")
        vocabulary[normalise_key_text(spelling)] = (unit, per_word * int(count or 1))
    return vocabulary


def parse_interval_units(values: pl.Series, *, options: ParseOptions | None = None) -> Parsed:
    """Billing intervals to day | week | month | year, with the count they carry.

    `monthly`/`mensuel`/`M` → month ×1, `quarterly`/`trimestriel` → month ×3, `yearly`/`annuel`
    → year ×1, `3 months` or `every 2 weeks` → the number times the unit. `extra["multiplier"]`
    is the count per unit word (3 for quarterly) and `extra["interval_count"]` the full count
    written in the value (1 when only a unit is written).
    """
    vocabulary = _interval_vocabulary(options)
    units = {key: unit for key, (unit, _) in vocabulary.items()}
    multipliers = {key: per_word for key, (_, per_word) in vocabulary.items()}
    text = as_text(values)

    def parse_distinct(distinct: pl.Series) -> pl.DataFrame:
        distinct = clean_text(distinct, options=options)
        parts = normalise_keys(distinct).str.extract_groups(
            r"^(?:every |each |tous les |toutes les )?(\d+)? ?(.*)$"
        )
        frame = pl.DataFrame(
            {"number": parts.struct.field("1"), "word": parts.struct.field("2")}
        ).with_columns(
            unit=pl.col("word").replace_strict(units, default=None, return_dtype=pl.String),
            per_word=pl.col("word").replace_strict(
                multipliers, default=None, return_dtype=pl.Int64
            ),
        )
        number = frame["number"].cast(pl.Int64, strict=False).fill_null(1)
        bad = frame["unit"].is_null() | (number < 1)
        reason = (
            f"unknown billing interval (accepted: {', '.join(INTERVAL_UNITS)}, monthly, "
            "quarterly, yearly, '3 months' and their French spellings)"
        )
        return pl.DataFrame(
            {
                "value": frame["unit"].set(bad, None),
                "multiplier": frame["per_word"].set(bad, None),
                "interval_count": (number * frame["per_word"]).set(bad, None),
                "reason": constant(reason, len(distinct)).set(~bad | distinct.is_null(), None),
            }
        )

    result = map_distinct(
        text,
        parse_distinct,
        {
            "value": IntervalUnit,
            "multiplier": pl.Int64(),
            "interval_count": pl.Int64(),
            "reason": pl.String(),
        },
    )
    name = values.name
    return Parsed(
        values=result["value"].alias(name),
        reasons=result["reason"].alias(name),
        extra={
            "multiplier": result["multiplier"].alias(name),
            "interval_count": result["interval_count"].alias(name),
        },
    )


def parse_currencies(values: pl.Series, *, options: ParseOptions | None = None) -> Parsed:
    """Currencies to ISO 4217 codes: `€`, `eur`, `euros` → EUR; `$`, `US$`, `dollar` → USD...

    A 3-letter code is accepted in any case when it is an active ISO 4217 code.
    """
    user = normalise_synonyms((options or ParseOptions()).currency_synonyms)
    symbols = {key.replace(" ", ""): code for key, code in _vocab.CURRENCY_SYMBOLS.items()}
    codes = {code: code for code in CURRENCY_CODES}
    text = as_text(values)

    def parse_distinct(distinct: pl.Series) -> pl.DataFrame:
        distinct = clean_text(distinct, options=options)
        squeezed = distinct.str.replace_all(r"\s", "")
        by_symbol = squeezed.replace_strict(symbols, default=None, return_dtype=pl.String)
        by_code = squeezed.str.to_uppercase().replace_strict(
            codes, default=None, return_dtype=pl.String
        )
        keys = normalise_keys(distinct)
        by_name = keys.replace_strict(_CURRENCY_NAMES | user, default=None, return_dtype=pl.String)
        value = by_symbol.fill_null(by_code).fill_null(by_name)
        looks_like_code = squeezed.str.contains(r"^[A-Za-z]{3}$")
        reason = pl.select(
            pl.when(pl.lit(looks_like_code))
            .then(pl.format("'{}' is not an active ISO 4217 currency code", pl.lit(distinct)))
            .otherwise(pl.lit("unknown currency (expected an ISO 4217 code like EUR, or €, $, £)"))
        ).to_series()
        return pl.DataFrame(
            {"value": value, "reason": reason.set(value.is_not_null() | distinct.is_null(), None)}
        )

    result = map_distinct(text, parse_distinct, {"value": pl.String(), "reason": pl.String()})
    return Parsed(
        values=result["value"].alias(values.name), reasons=result["reason"].alias(values.name)
    )


def parse_countries(values: pl.Series, *, options: ParseOptions | None = None) -> Parsed:
    """Countries to ISO 3166-1 alpha-2: codes, alpha-3 codes, English and French names."""
    user = normalise_synonyms((options or ParseOptions()).country_synonyms)
    codes = {code: code for code in COUNTRY_CODES}
    names = _COUNTRY_NAMES | user
    text = as_text(values)

    def parse_distinct(distinct: pl.Series) -> pl.DataFrame:
        distinct = clean_text(distinct, options=options)
        upper = distinct.str.to_uppercase()
        by_code = upper.replace_strict(codes, default=None, return_dtype=pl.String)
        by_name = normalise_keys(distinct).replace_strict(
            names, default=None, return_dtype=pl.String
        )
        value = by_code.fill_null(by_name)
        reason = pl.select(
            pl.when(pl.lit(upper).str.contains(r"^[A-Z]{2}$"))
            .then(pl.format("'{}' is not an ISO 3166-1 alpha-2 country code", pl.lit(distinct)))
            .otherwise(pl.lit("unknown country (expected an ISO code like FR, FRA or a name)"))
        ).to_series()
        return pl.DataFrame(
            {"value": value, "reason": reason.set(value.is_not_null() | distinct.is_null(), None)}
        )

    result = map_distinct(text, parse_distinct, {"value": pl.String(), "reason": pl.String()})
    return Parsed(
        values=result["value"].alias(values.name), reasons=result["reason"].alias(values.name)
    )


def parse_ids(values: pl.Series, *, options: ParseOptions | None = None) -> Parsed:
    """Identifiers stay text exactly as written, trimmed; an integral float becomes `1`, not `1.0`.

    Only numeric input (Parquet, JSON numbers) is converted: the text `"1.0"` stays `"1.0"`.
    """
    if values.dtype.is_float():
        integral = (values.round(0) == values) & (values.abs() < 2**53)
        as_int = values.set(~integral.fill_null(False), None).cast(pl.Int64)
        values = as_int.cast(pl.String).fill_null(values.cast(pl.String))
    text = clean_text(values, options=options)
    return Parsed(values=text, reasons=constant(None, len(text), name=values.name))


def parse_text(values: pl.Series, *, options: ParseOptions | None = None) -> Parsed:
    """Free text (names, emails, zip codes): trimmed, null spellings made null, never a failure."""
    return parse_ids(values, options=options)


def parse_integers(values: pl.Series, *, options: ParseOptions | None = None) -> Parsed:
    """Whole numbers (`3`, `3.0`, `+3`, `1 000`) to Int64; anything else is reported."""
    text = as_text(values)

    def parse_distinct(distinct: pl.Series) -> pl.DataFrame:
        distinct = clean_text(distinct, options=options)
        bare = distinct.str.replace_all(r"[\s'’]", "")
        digits = bare.str.extract(r"^\+?(-?\d+)(?:[.,]0+)?$", 1)
        value = digits.cast(pl.Int64, strict=False)
        reason = constant("not a whole number", len(distinct))
        return pl.DataFrame(
            {"value": value, "reason": reason.set(value.is_not_null() | distinct.is_null(), None)}
        )

    result = map_distinct(text, parse_distinct, {"value": pl.Int64(), "reason": pl.String()})
    return Parsed(
        values=result["value"].alias(values.name), reasons=result["reason"].alias(values.name)
    )
