"""Value parsers: every messy form they promise, and hypothesis properties (no crash, exact)."""

from __future__ import annotations

import calendar
import datetime as dt
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fincome_toolkit.parsing import (
    DEFAULT_NULL_VALUES,
    ParseOptions,
    date_order_evidence,
    parse_amounts,
    parse_countries,
    parse_currencies,
    parse_dates,
    parse_ids,
    parse_integers,
    parse_interval_units,
    parse_invoice_statuses,
    parse_invoice_types,
    parse_subscription_statuses,
)


def one(parser, raw, **kwargs):
    """Parse a single value; return (value, reason)."""
    result = parser(pl.Series("x", [raw], dtype=pl.String), **kwargs)
    return result.values[0], result.reasons[0]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2025-01-31", dt.date(2025, 1, 31)),
        ("2025/01/31", dt.date(2025, 1, 31)),
        ("20250131", dt.date(2025, 1, 31)),
        ("31/01/2025", dt.date(2025, 1, 31)),
        ("31-01-2025", dt.date(2025, 1, 31)),
        ("31.01.25", dt.date(2025, 1, 31)),
        ("45658", dt.date(2025, 1, 1)),  # Excel serial
        ("1738281600", dt.date(2025, 1, 31)),  # epoch seconds, UTC
        ("1738281600000", dt.date(2025, 1, 31)),  # epoch milliseconds
        ("2025-01-31T23:30:00+02:00", dt.date(2025, 1, 31)),  # local date as written
        ("2025-01-31 10:00:00.000000", dt.date(2025, 1, 31)),
        ("31/01/2025 10:30", dt.date(2025, 1, 31)),
        ("1er janvier 2025", dt.date(2025, 1, 1)),
        ("31 Jan 2025", dt.date(2025, 1, 31)),
        ("Jan 31, 2025", dt.date(2025, 1, 31)),
        ("31-janv.-25", dt.date(2025, 1, 31)),
        ("  2025-01-31\u00a0", dt.date(2025, 1, 31)),
    ],
)
def test_date_forms(raw, expected):
    assert one(parse_dates, raw) == (expected, None)


@pytest.mark.parametrize("raw", ["", "NULL", "null", "N/A", "-", None])
def test_null_spellings_are_empty_not_failures(raw):
    assert one(parse_dates, raw) == (None, None)
    assert one(parse_amounts, raw) == (None, None)


@pytest.mark.parametrize(
    ("raw", "reason_part"),
    [
        ("31/02/2025", "not a valid calendar date"),
        ("hello", "not a recognised date"),
        ("12", "Excel serial"),
        ("3000-01-01", "year outside"),
    ],
)
def test_bad_dates_are_reported(raw, reason_part):
    value, reason = one(parse_dates, raw)
    assert value is None
    assert reason_part in reason


def test_day_order_decided_from_values():
    day_first = parse_dates(pl.Series(["25/01/2025", "01/02/2025"]))
    assert day_first.values.to_list() == [dt.date(2025, 1, 25), dt.date(2025, 2, 1)]
    assert day_first.notes == ()
    month_first = parse_dates(pl.Series(["01/25/2025", "01/02/2025"]))
    assert month_first.values.to_list() == [dt.date(2025, 1, 25), dt.date(2025, 1, 2)]


def test_undecidable_order_is_noted_and_read_day_first():
    result = parse_dates(pl.Series(["01/02/2025", "03/04/2025"]))
    assert result.values.to_list() == [dt.date(2025, 2, 1), dt.date(2025, 4, 3)]
    assert len(result.notes) == 1 and "day_first" in result.notes[0]
    explicit = parse_dates(pl.Series(["01/02/2025"]), options=ParseOptions(day_first=False))
    assert explicit.values.to_list() == [dt.date(2025, 1, 2)] and explicit.notes == ()


def test_value_contradicting_the_column_order_is_an_issue():
    result = parse_dates(pl.Series(["25/01/2025", "26/01/2025", "01/25/2025"]))
    assert result.values[2] is None
    assert "contradicts" in result.reasons[2]
    evidence = date_order_evidence(pl.Series(["25/01/2025", "01/25/2025"]))
    assert (evidence.day_first, evidence.month_first) == (1, 1)


@pytest.mark.parametrize(
    ("raw", "expected", "currency"),
    [
        ("1234.56", "1234.56", None),
        ("1 234,56", "1234.56", None),
        ("1\u00a0234,56", "1234.56", None),
        ("1\u202f234,56", "1234.56", None),
        ("1.234,56", "1234.56", None),
        ("€1,234.56", "1234.56", "EUR"),
        ("1234.56 EUR", "1234.56", "EUR"),
        ("12 €", "12.00", "EUR"),
        ("US$12", "12.00", "USD"),
        ("(12.00)", "-12.00", None),
        ("12.00-", "-12.00", None),
        ("-12", "-12.00", None),
        ("-€12", "-12.00", "EUR"),
        ("12.500", "12.50", None),  # extra zeros are harmless
        ("1'234.50", "1234.50", None),
        (".5", "0.50", None),
    ],
)
def test_amount_forms(raw, expected, currency):
    result = parse_amounts(pl.Series([raw]))
    assert result.values[0] == Decimal(expected)
    assert result.reasons[0] is None
    assert result.extra["currency"][0] == currency


@pytest.mark.parametrize(
    ("raw", "reason_part"),
    [
        ("12.345", "3 decimals"),
        ("abc", "not an amount"),
        ("12 XYZ", "'XYZ' is not a currency"),
        ("1,2,3", "digit grouping"),
        ("99999999999999999", "too large"),
        ("--12", "not an amount"),
    ],
)
def test_bad_amounts_are_reported(raw, reason_part):
    value, reason = one(parse_amounts, raw)
    assert value is None
    assert reason_part in reason


def test_decimal_comma_is_decided_per_column():
    comma = parse_amounts(pl.Series(["12,50", "1,234"]))
    assert comma.values[0] == Decimal("12.50")
    assert comma.values[1] is None and "3 decimals" in comma.reasons[1]
    point = parse_amounts(pl.Series(["12.50", "1,234"]))
    assert point.values.to_list() == [Decimal("12.50"), Decimal("1234.00")]
    forced = parse_amounts(pl.Series(["1.234"]), options=ParseOptions(decimal_comma=True))
    assert forced.values.to_list() == [Decimal("1234.00")]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Paid", "paid"), ("PAID", "paid"), ("payée", "paid"), ("réglé", "paid"),
        ("settled", "paid"), ("due", "open"), ("outstanding", "open"), ("open", "open"),
        ("en attente", "open"), ("pending", "open"), ("impayé", "unpaid"),
        ("overdue", "unpaid"), ("late", "unpaid"),
    ],
)  # fmt: skip
def test_invoice_statuses(raw, expected):
    assert one(parse_invoice_statuses, raw) == (expected, None)


def test_unknown_status_and_user_synonyms():
    value, reason = one(parse_invoice_statuses, "réglée partiellement")
    assert value is None and "unknown invoice status" in reason
    options = ParseOptions(status_synonyms={"Réglée partiellement": "open", "vivant": "active"})
    assert one(parse_invoice_statuses, "réglée partiellement", options=options)[0] == "open"
    assert one(parse_subscription_statuses, "VIVANT", options=options)[0] == "active"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("active", "active"), ("Actif", "active"), ("cancelled", "cancelled"),
        ("canceled", "cancelled"), ("annulé", "cancelled"), ("résilié", "cancelled"),
        ("ended", "ended"), ("terminé", "ended"), ("expired", "ended"),
        ("trialing", "trialing"), ("trial", "trialing"), ("essai", "trialing"),
        ("paused", "paused"), ("suspendu", "paused"),
    ],
)  # fmt: skip
def test_subscription_statuses(raw, expected):
    assert one(parse_subscription_statuses, raw) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "unit", "count"),
    [
        ("month", "month", 1), ("monthly", "month", 1), ("mensuel", "month", 1),
        ("mois", "month", 1), ("M", "month", 1), ("quarterly", "month", 3),
        ("trimestriel", "month", 3), ("yearly", "year", 1), ("annual", "year", 1),
        ("annuel", "year", 1), ("weekly", "week", 1), ("daily", "day", 1),
        ("3 months", "month", 3), ("every 2 weeks", "week", 2),
    ],
)  # fmt: skip
def test_interval_units(raw, unit, count):
    result = parse_interval_units(pl.Series([raw]))
    assert result.values[0] == unit
    assert result.extra["interval_count"][0] == count


def test_interval_synonym_with_count():
    options = ParseOptions(interval_synonyms={"bimensuel": "2 week"})
    result = parse_interval_units(pl.Series(["bimensuel", "fortnightly"]), options=options)
    assert result.values.to_list() == ["week", None]
    assert result.extra["interval_count"][0] == 2
    assert "unknown billing interval" in result.reasons[1]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("subscription", "subscription"), ("recurring", "subscription"),
        ("abonnement", "subscription"), ("one_off", "one_off"), ("one-off", "one_off"),
        ("ponctuel", "one_off"), ("setup", "one_off"), ("service", "one_off"),
    ],
)  # fmt: skip
def test_invoice_types(raw, expected):
    assert one(parse_invoice_types, raw) == (expected, None)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("€", "EUR"), ("EUR", "EUR"), ("eur", "EUR"), ("euro", "EUR"), ("Euros", "EUR"),
        ("$", "USD"), ("US$", "USD"), ("dollar", "USD"), ("£", "GBP"), ("pound", "GBP"),
        ("livre sterling", "GBP"), ("chf", "CHF"),
    ],
)  # fmt: skip
def test_currencies(raw, expected):
    assert one(parse_currencies, raw) == (expected, None)


@pytest.mark.parametrize("raw", ["XYZ", "HRK", "zz"])  # HRK was withdrawn in 2023
def test_unknown_currencies(raw):
    value, reason = one(parse_currencies, raw)
    assert value is None and "currency" in reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("France", "FR"), ("fr", "FR"), ("FRA", "FR"), ("Allemagne", "DE"), ("Germany", "DE"),
        ("United Kingdom", "GB"), ("UK", "GB"), ("Royaume-Uni", "GB"), ("USA", "US"),
        ("United States", "US"), ("États-Unis", "US"), ("NA", "NA"), ("Côte d'Ivoire", "CI"),
        ("Espagne", "ES"), ("Suisse", "CH"),
    ],
)  # fmt: skip
def test_countries(raw, expected):
    assert one(parse_countries, raw) == (expected, None)


@pytest.mark.parametrize(("raw", "part"), [("XX", "alpha-2"), ("Narnia", "unknown country")])
def test_unknown_countries(raw, part):
    value, reason = one(parse_countries, raw)
    assert value is None and part in reason


def test_ids_stay_text():
    assert parse_ids(pl.Series([" A-1 ", "00123", "1.0"])).values.to_list() == [
        "A-1",
        "00123",
        "1.0",
    ]
    floats = parse_ids(pl.Series([1.0, 2.5, None]))
    assert floats.values.to_list() == ["1", "2.5", None]


def test_integers():
    result = parse_integers(pl.Series(["3", "3.0", "+3", "1 000", "x", "2.5"]))
    assert result.values.to_list() == [3, 3, 3, 1000, None, None]
    assert result.reasons.to_list()[4:] == ["not a whole number"] * 2


# --- properties ---------------------------------------------------------------------------

DATES = st.dates(min_value=dt.date(1970, 1, 2), max_value=dt.date(2099, 12, 31))
DATE_FORMATS = {
    "iso": (lambda d: d.isoformat(), None),
    "dmy": (lambda d: d.strftime("%d/%m/%Y"), True),
    "mdy": (lambda d: d.strftime("%m/%d/%Y"), False),
    "dmy-dash-2y": (lambda d: d.strftime("%d-%m-%y"), True),
    "dmy-dot": (lambda d: d.strftime("%d.%m.%Y"), True),
    "serial": (lambda d: str((d - dt.date(1899, 12, 30)).days), None),
    "epoch": (lambda d: str(calendar.timegm((d.year, d.month, d.day, 12, 0, 0))), None),
    "offset": (lambda d: f"{d.isoformat()}T23:30:00+02:00", None),
    "month-name": (lambda d: d.strftime("%d %b %Y"), None),
}


@settings(max_examples=100, deadline=None)
@given(dates=st.lists(DATES, min_size=1, max_size=20), fmt=st.sampled_from(sorted(DATE_FORMATS)))
def test_dates_read_back_in_every_format(dates, fmt):
    render, day_first = DATE_FORMATS[fmt]
    if fmt == "dmy-dash-2y":
        dates = [d for d in dates if dt.date(1970, 1, 1) <= d < dt.date(2070, 1, 1)]
    if fmt == "serial":
        dates = [d for d in dates if d >= dt.date(1950, 1, 1)]
    if fmt == "epoch":  # 9-10 digits: 8-digit numbers read as YYYYMMDD
        dates = [d for d in dates if d >= dt.date(1973, 3, 4)]
    result = parse_dates(pl.Series([render(d) for d in dates]), day_first=day_first)
    assert result.values.to_list() == dates
    assert result.reasons.null_count() == len(dates)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=20))
def test_dates_never_crash_and_explain_every_failure(texts):
    series = pl.Series(texts, dtype=pl.String)
    result = parse_dates(series)
    assert result.values.dtype == pl.Date and len(result.values) == len(texts)
    assert not (result.values.is_null() & result.reasons.is_null() & ~is_blank(series)).any()


def is_blank(series: pl.Series) -> pl.Series:
    """Empty or a null spelling: the only values a parser may leave null without a reason."""
    spellings = [s.lower() for s in DEFAULT_NULL_VALUES]
    return series.str.strip_chars().str.to_lowercase().is_in(spellings).fill_null(True)


MONEY_VALUES = st.decimals(
    min_value=Decimal("-9999999999.99"), max_value=Decimal("9999999999.99"), places=2
)


def _group(integer: str, separator: str) -> str:
    groups = []
    while integer:
        groups.insert(0, integer[-3:])
        integer = integer[:-3]
    return separator.join(groups) or "0"


def render_amount(value: Decimal, style: str) -> str:
    sign = "-" if value < 0 else ""
    integer, fraction = f"{abs(value):.2f}".split(".")
    return {
        "plain": f"{sign}{integer}.{fraction}",
        "fr": f"{sign}{_group(integer, ' ')},{fraction}",
        "fr-nbsp": f"{sign}{_group(integer, chr(0x202F))},{fraction}",
        "de": f"{sign}{_group(integer, '.')},{fraction}",
        "en-euro": f"{sign}€{_group(integer, ',')}.{fraction}",
        "suffix": f"{sign}{integer}.{fraction} EUR",
        "parens": f"({integer}.{fraction})" if sign else f"{integer}.{fraction}",
    }[style]


@settings(max_examples=100, deadline=None)
@given(
    values=st.lists(MONEY_VALUES, min_size=1, max_size=20),
    style=st.sampled_from(["plain", "fr", "fr-nbsp", "de", "en-euro", "suffix", "parens"]),
)
def test_amounts_read_back_exactly_in_every_format(values, style):
    comma = style in ("fr", "fr-nbsp", "de")
    texts = [render_amount(v, style) for v in values]
    result = parse_amounts(pl.Series(texts), decimal_comma=comma)
    assert result.values.to_list() == values
    assert result.reasons.null_count() == len(values)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(max_size=25), max_size=20))
def test_amounts_never_crash_and_explain_every_failure(texts):
    series = pl.Series(texts, dtype=pl.String)
    result = parse_amounts(series)
    assert result.values.dtype == pl.Decimal(18, 2)
    failed_silently = result.values.is_null() & result.reasons.is_null()
    assert not (failed_silently & ~is_blank(series)).any()


@settings(max_examples=100, deadline=None)
@given(
    texts=st.lists(
        st.one_of(
            st.builds(render_amount, MONEY_VALUES, st.sampled_from(["plain", "en-euro", "suffix"])),
            st.text(alphabet="0123456789.,- €$EUR()", max_size=12),
        ),
        min_size=1,
        max_size=15,
    ),
    comma=st.sampled_from([None, True, False]),
)
def test_repeated_amounts_parse_like_each_value_alone(texts, comma):
    # a column repeating a few prices takes the parse-each-distinct-value path
    alone = parse_amounts(pl.Series(texts, dtype=pl.String), decimal_comma=comma)
    repeated = parse_amounts(pl.Series(texts * 8, dtype=pl.String), decimal_comma=comma)
    assert repeated.values.to_list() == alone.values.to_list() * 8
    assert repeated.reasons.to_list() == alone.reasons.to_list() * 8
    assert repeated.extra["currency"].to_list() == alone.extra["currency"].to_list() * 8
