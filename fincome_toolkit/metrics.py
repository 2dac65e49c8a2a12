"""Monthly recurring revenue (MRR) per customer, from subscriptions or from invoices.

Definitions (../shared/domain.md §3, Fincome's defaults; every choice is a `MrrOptions` field):

- Only recurring lines count (`type == "subscription"`), pre-tax, after discounts.
- A line's monthly amount is its amount divided by the months it covers. A period of k calendar
  months counts k whatever the month lengths (31 Jan → 28 Feb is one month, so is 28 Feb → 31 Mar
  for a plan anchored on the 31st). Day-based durations (day and week intervals, prorated invoice
  periods) use `days_per_month` (30.44 = 365.25 / 12) so both sources agree on weekly plans.
- A line counts in month M when it is active at the END of M: `start <= last day of M < end`. In
  month numbers that is the half-open range `[month(start), month(end))`, so there is no proration
  inside a month and a line that starts and ends inside one month never shows.
- Quantity does not multiply: `amount_excluding_tax` is the price of the whole billing interval
  (A9). Set `multiply_by_quantity=True` for exports whose amount is a unit price.
- Money: line amounts are divided at 6 decimals, summed per customer and month, then rounded half
  away from zero to cents. Movements are computed from those rounded values, so the MRR bridge is
  exact. Amounts stay in their currency unless a reporting currency and a rate table are given
  (`fx.load_fx_rates`), converted at each invoice's issue date or at each month end.

`mrr_lines` explains every line (its monthly amount, months, whether it is prorated and, when it
does not count, why); `mrr_by_customer` gives one row per customer and month.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal, NamedTuple

import polars as pl

from fincome_toolkit.customer_months import (
    add_stop_rows,
    decode_keys,
    encode_keys,
    sum_by_key_month,
)
from fincome_toolkit.errors import ConfigError
from fincome_toolkit.frames import MONEY, Dataset
from fincome_toolkit.fx import rates_at

WORK = pl.Decimal(38, 6)  # internal precision of monthly amounts before rounding to cents
Source = Literal["subscriptions", "invoices"]
SOURCES: tuple[str, ...] = ("subscriptions", "invoices")
MRR_COLUMNS = ("customer_id", "month", "currency", "mrr")


@dataclass(frozen=True)
class MrrOptions:
    """How MRR is computed; the defaults are Fincome's.

    - `churn_date`: a subscription stops counting at its `end_date` (default) or at `cancelled_at`
      when that is earlier (invoices of a cancelled subscription are cut there too).
    - `prorated`: invoice periods that are not a whole number of months count by `"days"`
      (amount × days_per_month ÷ days, default), are `"round"`ed to the nearest whole number of
      months (at least one), or are `"exclude"`d. They are always flagged in `mrr_lines`.
    - `one_off`: one-off invoice lines are excluded (default) or `"spread"` over their service
      period like recurring lines (one-offs without a period stay excluded).
    - `unpaid_on_cancelled`: open or unpaid invoices of a cancelled subscription `"count"`
      (default) or are `"exclude"`d.
    - `discounts`: amounts are after discounts (`"net"`, default); `"gross"` adds back the
      discount found under `discount_property` in `custom_properties` (per interval or line).
    - `exclude_statuses`: subscription statuses that never count (e.g. `("trialing",)`).
    - `until`: the last month computed; open-ended subscriptions run to it. Default: the month
      of the latest date in the data.
    - `fx_rate_date`: invoices convert at the rate of their `"issue_date"` (Fincome's rule) or of
      each `"month_end"`; subscriptions have no issue date and always use the month end.
    """

    churn_date: Literal["end_date", "cancelled_at"] = "end_date"
    prorated: Literal["days", "round", "exclude"] = "days"
    one_off: Literal["exclude", "spread"] = "exclude"
    unpaid_on_cancelled: Literal["count", "exclude"] = "count"
    discounts: Literal["net", "gross"] = "net"
    discount_property: str = "discount"
    multiply_by_quantity: bool = False
    days_per_month: Decimal = Decimal("30.44")
    exclude_statuses: tuple[str, ...] = ()
    until: date | None = None
    fx_rate_date: Literal["issue_date", "month_end"] = "issue_date"

    def __post_init__(self) -> None:
        choices = {
            "churn_date": ("end_date", "cancelled_at"),
            "prorated": ("days", "round", "exclude"),
            "one_off": ("exclude", "spread"),
            "unpaid_on_cancelled": ("count", "exclude"),
            "discounts": ("net", "gross"),
            "fx_rate_date": ("issue_date", "month_end"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"MrrOptions.{name} is {getattr(self, name)!r}",
                    fix=f"use one of: {', '.join(allowed)}",
                )
        if Decimal(self.days_per_month) <= 0:
            raise ConfigError("MrrOptions.days_per_month must be positive", fix="use 30.44")


# --- month arithmetic: a month is the integer year * 12 + month - 1 ------------------------------


def month_number(expr: pl.Expr) -> pl.Expr:
    """The month of a date as one integer (`year * 12 + month - 1`), for fast ranges and joins."""
    return expr.dt.year().cast(pl.Int32) * 12 + expr.dt.month().cast(pl.Int32) - 1


def month_date(expr: pl.Expr) -> pl.Expr:
    """The first day of the month numbered by `month_number`."""
    return pl.date(expr // 12, expr % 12 + 1, 1)


def with_month_dates(frame: pl.DataFrame, column: str = "month") -> pl.DataFrame:
    """Turn a month-number column into first-of-month dates (a lookup: fast on big frames)."""
    if frame.is_empty():
        return frame.with_columns(pl.col(column).cast(pl.Int32)).with_columns(
            month_date(pl.col(column)).alias(column)
        )
    low, high = frame[column].min(), frame[column].max()
    dates = pl.select(month_date(pl.int_range(low, high + 1))).to_series()
    return frame.with_columns(pl.lit(dates).gather(pl.col(column) - low).alias(column))


class _DateParts(NamedTuple):
    """The parts of a date that month arithmetic needs, as expressions."""

    month: pl.Expr  # month_number
    day: pl.Expr
    is_last_day: pl.Expr  # of its month


def _date_parts(expr: pl.Expr) -> _DateParts:
    """Month number, day and last-day-of-month flag of a date expression."""
    return _DateParts(month_number(expr), expr.dt.day(), (expr + pl.duration(days=1)).dt.day() == 1)


_MAX_LOOKUP_DAYS = 400_000  # about 1,100 years: beyond, computing the parts is cheaper


def _looked_up_date_parts(frame: pl.DataFrame, column: str) -> _DateParts:
    """`date_parts` of a column of `frame`, read from a table of every date in its range.

    Invoice periods start and end on a few thousand distinct dates: looking their parts up is
    faster than splitting millions of dates into years, months and days (CPU: -15% on lines).
    """
    low, high = frame[column].min(), frame[column].max()
    if low is None or (high - low).days > _MAX_LOOKUP_DAYS:
        return _date_parts(pl.col(column))
    dates = pl.date_range(low, high, eager=True)
    table = pl.select(**_date_parts(pl.lit(dates))._asdict())
    index = (pl.col(column) - pl.lit(low)).dt.total_days()
    return _DateParts(*(pl.lit(table[name]).gather(index) for name in _DateParts._fields))


def _whole_months(start: _DateParts, end: _DateParts) -> pl.Expr:
    """k when [start, end) is exactly k >= 1 calendar months, else null (a prorated period).

    Billing anchored on day A lands on min(A, month length) each month: 31 Jan → 28 Feb and
    28 Feb → 31 Mar are both one month for a plan anchored on the 31st. So the ends are whole
    months apart when their days match, or when the shorter day is its month's last day.
    """
    diff = end.month - start.month
    start_day, end_day = start.day, end.day
    end_is_last, start_is_last = end.is_last_day, start.is_last_day
    whole = (
        (start_day == end_day)
        | (end_is_last & (end_day < start_day))
        | (start_is_last & (start_day < end_day))
        | (start_is_last & end_is_last)
    )
    return pl.when((diff >= 1) & whole).then(diff).otherwise(None)


def _days_ratio(options: MrrOptions) -> tuple[int, int]:
    """`days_per_month` as an exact integer fraction (30.44 → 761 / 25)."""
    return Decimal(options.days_per_month).as_integer_ratio()


# --- lines --------------------------------------------------------------------------------------

LINE_COLUMNS = (
    "source",
    "line_id",
    "subscription_id",
    "customer_id",
    "currency",
    "amount_excluding_tax",
    "period_start",
    "period_end",
    "issue_date",
    "months",
    "monthly_amount",
    "first_month",
    "end_month",
    "prorated",
    "excluded",
    "source_file",
    "source_line",
)


def _amount(options: MrrOptions) -> pl.Expr:
    """The amount a line is priced at, after the discount and quantity choices."""
    amount = pl.col("amount_excluding_tax").cast(WORK)
    if options.discounts == "gross":
        path = f"$.{options.discount_property}"
        discount = pl.col("custom_properties").str.json_path_match(path).cast(WORK, strict=False)
        amount = amount + discount.fill_null(0)
    return amount


def _per_month(amount: pl.Expr) -> pl.Expr:
    """amount × _num ÷ _den at 6 decimals; null where the duration is not positive."""
    safe = pl.when(pl.col("_den") > 0).then(pl.col("_den"))
    return (amount * pl.col("_num") / safe).round(6).cast(WORK)


def _first_reason(*rules: tuple[pl.Expr, str]) -> pl.Expr:
    """The reason of the first rule whose condition holds, else null (the line counts)."""
    expr = pl.when(rules[0][0]).then(pl.lit(rules[0][1]))
    for condition, reason in rules[1:]:
        expr = expr.when(condition).then(pl.lit(reason))
    return expr.otherwise(pl.lit(None, pl.String))


def _subscription_lines(subscriptions: pl.DataFrame, options: MrrOptions) -> pl.LazyFrame:
    """One line per subscription: its monthly amount and its active months."""
    days_num, days_den = _days_ratio(options)
    unit, count = pl.col("interval_unit").cast(pl.String), pl.col("interval_count")
    numerator = pl.when(unit.is_in(["day", "week"])).then(days_num).otherwise(1)
    denominator = (
        pl.when(unit == "day")
        .then(count * days_den)
        .when(unit == "week")
        .then(count * 7 * days_den)
        .when(unit == "year")
        .then(count * 12)
        .otherwise(count)
    )
    amount = _amount(options)
    if options.multiply_by_quantity:
        amount = amount * pl.col("quantity").fill_null(1)
    end = pl.col("end_date")
    if options.churn_date == "cancelled_at":
        end = pl.min_horizontal("end_date", "cancelled_at")
    frame = subscriptions.lazy().with_columns(
        _end=end, _num=numerator.cast(pl.Int64), _den=denominator.cast(pl.Int64)
    )
    excluded = _first_reason(
        (pl.col("customer_id").is_null(), "missing_customer_id"),
        (pl.col("start_date").is_null(), "missing_start_date"),
        (pl.col("amount_excluding_tax").is_null(), "missing_amount"),
        (pl.col("currency").is_null(), "missing_currency"),
        (unit.is_null() | count.is_null() | (count < 1), "invalid_interval"),
        (pl.col("status").cast(pl.String).is_in(list(options.exclude_statuses)), "status"),
        (pl.col("_end") <= pl.col("start_date"), "start_not_before_end"),
        (month_number(pl.col("_end")) <= month_number(pl.col("start_date")), "no_month_end"),
    )
    return frame.select(
        source=pl.lit("subscriptions"),
        line_id=pl.col("id"),
        subscription_id=pl.col("id"),
        customer_id=pl.col("customer_id"),
        currency=pl.col("currency"),
        amount_excluding_tax=pl.col("amount_excluding_tax"),
        period_start=pl.col("start_date"),
        period_end=pl.col("_end"),
        issue_date=pl.lit(None, pl.Date),
        months=pl.col("_den") / pl.col("_num"),
        monthly_amount=_per_month(amount),
        _first=month_number(pl.col("start_date")),
        _stop=month_number(pl.col("_end")),
        prorated=pl.lit(False),
        excluded=excluded,
        source_file=pl.col("source_file"),
        source_line=pl.col("source_line"),
    )


def _invoice_lines(
    invoices: pl.DataFrame, subscriptions: pl.DataFrame, options: MrrOptions
) -> pl.LazyFrame:
    """One line per invoice: its monthly amount over its service period, flagged when prorated."""
    days_num, days_den = _days_ratio(options)
    subs = (
        subscriptions.lazy()
        .filter(pl.col("id").is_not_null())
        .unique("id", keep="first")
        .select(
            subscription_id=pl.col("id"),
            _cancelled=(pl.col("status") == "cancelled").fill_null(False)
            | pl.col("cancelled_at").is_not_null(),
            _cancelled_at=pl.col("cancelled_at"),
        )
    )
    start, period_end = pl.col("period_start"), pl.col("period_end")
    whole, days = pl.col("_whole"), pl.col("_days")  # computed once below, used thrice
    rounded = ((days * days_den * 2 + days_num) // (days_num * 2)).clip(lower_bound=1)
    if options.prorated == "round":
        numerator, denominator = pl.lit(1), pl.coalesce(whole, rounded)
    else:
        numerator = pl.when(whole.is_not_null()).then(1).otherwise(days_num)
        denominator = pl.coalesce(whole, days * days_den)
    end = period_end
    if options.churn_date == "cancelled_at":
        end = pl.min_horizontal(period_end, pl.col("_cancelled_at"))
    type_ = pl.col("type").cast(pl.String)
    counts_as_recurring = (type_ == "subscription") | (
        (type_ == "one_off") & (options.one_off == "spread")
    )
    unpaid_on_cancelled = pl.col("status").cast(pl.String).is_in(["open", "unpaid"]) & pl.col(
        "_cancelled"
    ).fill_null(False)
    frame = invoices.lazy()
    # The subscriptions only matter for cancellations: Fincome's defaults skip a join on millions.
    uses_cancellations = options.churn_date == "cancelled_at" or (
        options.unpaid_on_cancelled == "exclude"
    )
    if uses_cancellations:
        frame = frame.join(subs, on="subscription_id", how="left", maintain_order="left")
    else:
        unpaid_on_cancelled = pl.lit(False)
    start_parts = _looked_up_date_parts(invoices, "period_start")
    end_parts = _looked_up_date_parts(invoices, "period_end")
    frame = frame.with_columns(
        _whole=_whole_months(start_parts, end_parts),
        _days=(period_end - start).dt.total_days(),
        _first=start_parts.month,
        _stop=month_number(end) if options.churn_date == "cancelled_at" else end_parts.month,
    ).with_columns(
        _end=end,
        _num=numerator.cast(pl.Int64),
        _den=denominator.cast(pl.Int64),
        prorated=whole.is_null() & (period_end > start).fill_null(False),
    )
    excluded = _first_reason(
        (type_.is_null(), "missing_type"),
        (~counts_as_recurring, "one_off"),
        (pl.col("customer_id").is_null(), "missing_customer_id"),
        (pl.col("amount_excluding_tax").is_null(), "missing_amount"),
        (pl.col("currency").is_null(), "missing_currency"),
        (start.is_null() | period_end.is_null(), "missing_period"),
        (period_end <= start, "period_not_increasing"),
        (pl.col("prorated") & (options.prorated == "exclude"), "prorated_excluded"),
        (unpaid_on_cancelled & (options.unpaid_on_cancelled == "exclude"), "unpaid_on_cancelled"),
        (pl.col("_stop") <= pl.col("_first"), "no_month_end"),
    )
    return frame.select(
        source=pl.lit("invoices"),
        line_id=pl.col("id"),
        subscription_id=pl.col("subscription_id"),
        customer_id=pl.col("customer_id"),
        currency=pl.col("currency"),
        amount_excluding_tax=pl.col("amount_excluding_tax"),
        period_start=start,
        period_end=pl.col("_end"),
        issue_date=pl.col("issue_date"),
        months=pl.col("_den") / pl.col("_num"),
        monthly_amount=_per_month(_amount(options)),
        _first=pl.col("_first"),
        _stop=pl.col("_stop"),
        prorated=pl.col("prorated"),
        excluded=excluded,
        source_file=pl.col("source_file"),
        source_line=pl.col("source_line"),
    )


def _lines(dataset: Dataset, source: str, options: MrrOptions) -> pl.LazyFrame:
    """Lines of either source with their month numbers (`_first`, `_stop` exclusive)."""
    if source == "subscriptions":
        return _subscription_lines(dataset.subscriptions, options)
    if source == "invoices":
        return _invoice_lines(dataset.invoices, dataset.subscriptions, options)
    raise ConfigError(f"unknown MRR source {source!r}", fix="use subscriptions or invoices")


def horizon(dataset: Dataset, *, options: MrrOptions = MrrOptions()) -> date:
    """The last month computed (the data's "as of"); open-ended subscriptions run until it.

    `options.until` when set. Otherwise, with invoices: the last month the billing is known for,
    the month of the latest invoice, each dated by the earlier of its issue date and period
    start, ignoring dates after today (periods billed in advance would otherwise stretch the
    preview into months no invoice can cover yet, and so would a future-dated invoice). Without
    invoices: the month of the latest subscription date, end dates included as they are
    (exclusive), so the month a subscription stops shows its churn.
    """
    if options.until is not None:
        return options.until.replace(day=1)
    billed = pl.min_horizontal("issue_date", "period_start")
    # A date after today is a defect (audit INV-008), not the edge of the billing history.
    known = pl.when(billed <= date.today()).then(billed)
    latest = dataset.invoices.select(known.max()).item()
    if latest is None:
        dates = ("start_date", "end_date", "cancelled_at")
        latest = dataset.subscriptions.select(pl.max_horizontal(dates).max()).item()
    return (latest or date.today()).replace(day=1)


def mrr_lines(
    dataset: Dataset, *, source: Source = "subscriptions", options: MrrOptions = MrrOptions()
) -> pl.DataFrame:
    """Every subscription or invoice line with how it counts: monthly amount, months, active months.

    `first_month`/`end_month` are the first active month and the first month no longer active
    (null: open-ended); `excluded` says why a line never counts (null when it counts);
    `prorated` flags invoice periods that are not a whole number of months.
    """
    return (
        _lines(dataset, source, options)
        .with_columns(
            first_month=month_date(pl.col("_first")),
            end_month=month_date(pl.col("_stop")),
        )
        .select(LINE_COLUMNS)
        .collect()
    )


def expand_lines(lines: pl.LazyFrame, last_month: int, columns: list[str]) -> pl.LazyFrame:
    """One row per counted line and active month (`month` as a month number, up to `last_month`)."""
    stop = pl.coalesce(pl.col("_stop"), pl.lit(last_month + 1)).clip(upper_bound=last_month + 1)
    return (
        lines.filter(pl.col("excluded").is_null())
        .with_columns(_stop=stop)
        .filter(pl.col("_first") < pl.col("_stop"))
        .select(*columns, month=pl.int_ranges("_first", "_stop", dtype=pl.Int32))
        .explode("month")
    )


def to_cents(expr: pl.Expr) -> pl.Expr:
    """Round a 6-decimal amount half away from zero to cents, as `Decimal(18, 2)`."""
    return expr.round(2, mode="half_away_from_zero").cast(MONEY)


def mrr_by_customer(
    dataset: Dataset,
    *,
    source: Source = "subscriptions",
    options: MrrOptions = MrrOptions(),
    currency: str | None = None,
    rates: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """MRR per customer and month: `customer_id, month, currency, mrr` (mrr in Decimal(18, 2)).

    One row per customer, currency and month with MRR > 0, plus one row with `mrr = 0` for the
    month a customer's MRR stops (when that month is within the horizon), so the frame carries its
    own churn months. With `currency` and `rates` (see `load_fx_rates`) amounts are converted to
    the reporting currency, one row per customer and month, and `native_currency`/`native_mrr`
    keep the original values (`native_currency` joins several with "+").
    """
    last = _month_index(horizon(dataset, options=options))
    at_issue = source == "invoices" and options.fx_rate_date == "issue_date"
    # Only the columns the sums need: the line ids, files and flags would be computed and carried
    # through the key join for nothing (most of the time on millions of invoices).
    needed = ["customer_id", "currency", "monthly_amount", "_first", "_stop", "excluded"]
    if at_issue and currency is not None:
        needed += ["issue_date", "period_start"]
    lines = (
        _lines(dataset, source, options)
        .filter(pl.col("excluded").is_null())
        .select(needed)
        .collect()
    )
    columns = ["_key", "monthly_amount"]
    if currency is not None:
        columns.append("currency")
        if rates is None:
            raise ConfigError(
                f"a reporting currency ({currency}) needs a rate table",
                fix="pass rates=load_fx_rates(path) (CLI: --rates FILE)",
            )
        if at_issue:
            lines = _convert_lines_at_issue_date(lines, rates, currency)
            columns.append("reporting_amount")
    keys = ["customer_id", "currency"] if currency is None else ["customer_id"]
    coded, table = encode_keys(lines, keys)
    expanded = expand_lines(coded.lazy(), last, columns)
    if currency is None:
        summed = sum_by_key_month(expanded, ["monthly_amount"])
        mrr = summed.select("_key", "month", "_pos", mrr=to_cents(pl.col("monthly_amount")))
    else:
        mrr = _convert_mrr(expanded.collect(), rates, currency, converted=at_issue)
    mrr = add_stop_rows(mrr.filter(pl.col("mrr") > 0), last)
    mrr = decode_keys(mrr, table)
    return with_month_dates(mrr).select(*MRR_COLUMNS, pl.exclude(*MRR_COLUMNS, "_key", "_pos"))


def _month_index(value: date) -> int:
    return value.year * 12 + value.month - 1


# --- currencies (rate tables: fx.py) ------------------------------------------------------------


def _convert_lines_at_issue_date(
    lines: pl.DataFrame, rates: pl.DataFrame, reporting: str
) -> pl.DataFrame:
    """Add `reporting_amount`: each counted line converted at the rate of its issue date."""
    dated = lines.with_columns(_date=pl.coalesce("issue_date", "period_start"))
    keys = dated.select("currency", "_date").unique()
    found = rates_at(keys, rates, reporting).select("currency", "_date", "_rate")
    return dated.join(found, on=["currency", "_date"], how="left").with_columns(
        reporting_amount=(pl.col("monthly_amount") / pl.col("_rate")).round(6).cast(WORK)
    )


def _convert_mrr(
    expanded: pl.DataFrame, rates: pl.DataFrame, reporting: str, *, converted: bool
) -> pl.DataFrame:
    """MRR per customer and month in the reporting currency, keeping the native values."""
    per_currency = expanded.group_by("_key", "currency", "month").agg(
        native=pl.col("monthly_amount").sum(),
        reporting=pl.col("reporting_amount").sum() if converted else pl.lit(None, WORK),
    )
    if not converted:  # rate of each month's last day
        month_end = month_date(pl.col("month") + 1).dt.offset_by("-1d")
        keys = per_currency.select("currency", "month").unique().with_columns(_date=month_end)
        found = rates_at(keys, rates, reporting).select("currency", "month", "_rate")
        per_currency = per_currency.join(found, on=["currency", "month"]).with_columns(
            reporting=(pl.col("native") / pl.col("_rate")).round(6).cast(WORK)
        )
    return per_currency.group_by("_key", "month").agg(
        currency=pl.lit(reporting),
        mrr=to_cents(pl.col("reporting").sum()),
        native_currency=pl.col("currency").unique().sort().str.join("+"),
        native_mrr=to_cents(pl.col("native").sum()),
    )
