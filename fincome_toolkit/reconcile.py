"""Reconciliation: why two numbers differ, before and after the import.

- `reconcile_sources`: invoice-based against subscription-based MRR per customer and month, each
  disagreement with its likely cause.
- `reconcile_finance`: our monthly MRR (or ARR) against finance's own file, total first, then the
  movements (Fincome's advice), optionally per customer, within a tolerance.
- `reconcile_fincome`: the records we hold against what Fincome holds (read back with
  `client.pull`), field by field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import polars as pl

from fincome_toolkit.bridge import movements
from fincome_toolkit.errors import InputError
from fincome_toolkit.frames import FIELDS, MONEY, Dataset
from fincome_toolkit.metrics import (
    MrrOptions,
    _lines,
    _month_index,
    expand_lines,
    horizon,
    month_date,
    mrr_by_customer,
    to_cents,
)
from fincome_toolkit.parsing import parse_amounts, parse_dates

# Causes, most decisive first: the first that applies is `cause`, all of them are in `detail`.
CAUSES = (
    "unlinked_invoice",  # the invoice has no subscription, or one we do not know
    "customer_mismatch",  # invoice and subscription belong to different customers
    "currency_mismatch",  # invoice and subscription currencies differ
    "overlap",  # two invoices of one subscription cover the month
    "gap",  # no invoice of the subscription covers the month, but earlier and later ones do
    "missing_invoice",  # the subscription is active and no invoice of it covers the month
    "invoice_outside_subscription",  # an invoice covers a month its subscription is not active
    "prorated_period",  # an invoice period that is not a whole number of months
    "price_mismatch",  # both present, different amounts
)
SOURCE_COLUMNS = (
    "customer_id",
    "month",
    "subscription_mrr",
    "invoice_mrr",
    "difference",
    "cause",
    "subscription_ids",
    "invoice_ids",
    "currency",
    "detail",
)


def _ids(column: str) -> pl.Expr:
    return pl.col(column).drop_nulls().unique().sort().str.join(";")


def reconcile_sources(dataset: Dataset, *, options: MrrOptions | None = None) -> pl.DataFrame:
    """Invoice-based vs subscription-based MRR per customer and month, disagreements only.

    Columns: customer_id, month, subscription_mrr, invoice_mrr, difference (invoice −
    subscription), cause, subscription_ids, invoice_ids (";"-separated), currency, detail (every
    cause found, "; "-separated). Both sides use the same options and horizon.
    """
    options = options or MrrOptions()
    last = _month_index(horizon(dataset, options=options))
    subs = expand_lines(
        _lines(dataset, "subscriptions", options),
        last,
        ["customer_id", "currency", "subscription_id", "monthly_amount"],
    ).collect()
    invoices = expand_lines(
        _lines(dataset, "invoices", options),
        last,
        ["customer_id", "currency", "line_id", "subscription_id", "monthly_amount", "prorated"],
    ).collect()
    flags = _cause_flags(dataset, subs, invoices)
    by_sub = subs.group_by("customer_id", "month").agg(
        subscription_mrr=to_cents(pl.col("monthly_amount").sum()),
        subscription_ids=_ids("subscription_id"),
        _sub_currency=_ids("currency"),
    )
    by_invoice = invoices.group_by("customer_id", "month").agg(
        invoice_mrr=to_cents(pl.col("monthly_amount").sum()),
        invoice_ids=_ids("line_id"),
        _inv_currency=_ids("currency"),
    )
    both = by_sub.join(by_invoice, on=["customer_id", "month"], how="full", coalesce=True)
    zero = pl.lit(0, MONEY)
    both = both.with_columns(
        pl.col("subscription_mrr").fill_null(zero),
        pl.col("invoice_mrr").fill_null(zero),
        currency=pl.coalesce("_sub_currency", "_inv_currency"),
        _currencies_differ=(pl.col("_sub_currency") != pl.col("_inv_currency")).fill_null(False),
    ).with_columns(difference=(pl.col("invoice_mrr") - pl.col("subscription_mrr")).cast(MONEY))
    disagreements = both.filter((pl.col("difference") != 0) | pl.col("_currencies_differ"))
    found = disagreements.join(flags, on=["customer_id", "month"], how="left").with_columns(
        currency_mismatch=pl.col("currency_mismatch").fill_null(False)
        | pl.col("_currencies_differ")
    )
    present = [pl.col(cause).fill_null(False) for cause in CAUSES[:-1]]
    detail = pl.concat_list(
        [pl.when(flag).then(pl.lit(name)) for flag, name in zip(present, CAUSES, strict=False)]
    ).list.drop_nulls()
    both_present = (  # a zero-priced subscription is present too
        pl.col("subscription_ids").str.len_chars().fill_null(0) > 0
    ) & (pl.col("invoice_ids").str.len_chars().fill_null(0) > 0)
    detail = (
        pl.when(detail.list.len() > 0)
        .then(detail)
        .otherwise(
            pl.when(both_present)
            .then(pl.lit(["price_mismatch"]))
            .otherwise(pl.lit(["unexplained"]))
        )
    )
    return (
        found.with_columns(_detail=detail)
        .with_columns(
            cause=pl.col("_detail").list.first(),
            detail=pl.col("_detail").list.join("; "),
            month=month_date(pl.col("month")),
        )
        .select(SOURCE_COLUMNS)
        .sort("customer_id", "month")
    )


def _cause_flags(dataset: Dataset, subs: pl.DataFrame, invoices: pl.DataFrame) -> pl.DataFrame:
    """Per customer and month, which causes apply (one boolean column per cause)."""
    known = dataset.subscriptions.select(
        subscription_id="id", _owner="customer_id", _sub_currency="currency"
    ).unique("subscription_id", keep="first")
    invoices = invoices.join(known, on="subscription_id", how="left")
    own = (pl.col("customer_id") == pl.col("_owner")).fill_null(False)
    coverage = invoices.group_by("subscription_id", "month").agg(_invoices=pl.len(), _own=own.sum())
    spans = invoices.group_by("subscription_id").agg(
        _first=pl.col("month").min(), _last=pl.col("month").max()
    )
    active = subs.select("subscription_id", "month").unique()
    sub_months = (
        subs.join(coverage, on=["subscription_id", "month"], how="left")
        .join(spans, on="subscription_id", how="left")
        .with_columns(  # only invoices of the subscription's own customer cover its months
            _covered=pl.col("_own").fill_null(0),
            _elsewhere=(pl.col("_invoices") > pl.col("_own")).fill_null(False),
        )
    )
    between = (pl.col("_first") < pl.col("month")) & (pl.col("month") < pl.col("_last"))
    per_sub = sub_months.group_by("customer_id", "month").agg(
        overlap=(pl.col("_covered") >= 2).any(),
        gap=((pl.col("_covered") == 0) & between.fill_null(False)).any(),
        missing_invoice=((pl.col("_covered") == 0) & ~between.fill_null(False)).any(),
        _billed_elsewhere=pl.col("_elsewhere").any(),
    )
    outside = invoices.join(
        active.with_columns(_active=pl.lit(True)), on=["subscription_id", "month"], how="left"
    )
    linked = pl.col("_owner").is_not_null()
    per_invoice = outside.group_by("customer_id", "month").agg(
        unlinked_invoice=(~linked).any(),
        customer_mismatch=(linked & (pl.col("_owner") != pl.col("customer_id"))).any(),
        currency_mismatch=(linked & (pl.col("_sub_currency") != pl.col("currency"))).any(),
        invoice_outside_subscription=(linked & pl.col("_active").is_null()).any(),
        prorated_period=pl.col("prorated").any(),
        _overlap_invoices=pl.len() > pl.col("line_id").n_unique(),
    )
    flags = per_sub.join(per_invoice, on=["customer_id", "month"], how="full", coalesce=True)
    return flags.with_columns(
        overlap=pl.col("overlap").fill_null(False) | pl.col("_overlap_invoices").fill_null(False),
        customer_mismatch=pl.col("customer_mismatch").fill_null(False)
        | pl.col("_billed_elsewhere").fill_null(False),
    ).drop("_overlap_invoices", "_billed_elsewhere")


# --- against finance's own file ------------------------------------------------------------------

MOVEMENT_MEASURES = ("new", "reactivation", "expansion", "contraction", "churn")
FINANCE_COLUMNS = (
    "level",
    "month",
    "customer_id",
    "measure",
    "finance",
    "toolkit",
    "difference",
    "relative_difference",
    "within_tolerance",
)


@dataclass(frozen=True)
class Tolerance:
    """How far apart two amounts may be and still agree: within `absolute` OR within `relative`
    (a fraction of finance's amount). Both None = exact."""

    absolute: Decimal | None = Decimal("0.01")
    relative: Decimal | None = None

    @classmethod
    def parse(cls, text: str) -> Tolerance:
        """`"5"` → 5 currency units; `"0.5%"` → 0.5 % of finance's amount."""
        text = text.strip()
        if text.endswith("%"):
            return cls(absolute=None, relative=Decimal(text[:-1]) / 100)
        return cls(absolute=Decimal(text), relative=None)

    def accepts(self, difference: pl.Expr, reference: pl.Expr) -> pl.Expr:
        """Whether `difference` is within tolerance of `reference` (an expression)."""
        gap = difference.abs().cast(pl.Float64)
        ok = pl.lit(False)
        if self.absolute is not None:
            ok = ok | (gap <= float(self.absolute))
        if self.relative is not None:
            ok = ok | (gap <= float(self.relative) * reference.abs().cast(pl.Float64))
        if self.absolute is None and self.relative is None:
            ok = gap == 0
        return ok


def reconcile_finance(
    mrr: pl.DataFrame,
    finance: pl.DataFrame,
    *,
    tolerance: Tolerance = Tolerance(),
    measure: str = "mrr",
) -> pl.DataFrame:
    """Our MRR (from `mrr_by_customer`) against finance's figures, month by month.

    `finance` has `month` (Date, first of month), `amount` (Decimal), optionally `customer_id`
    and movement columns (new, reactivation, expansion, contraction, churn; positive amounts).
    `measure="arr"` compares 12 × our figures. Result: level (total | movement | customer), month,
    customer_id, measure, finance, toolkit, difference (toolkit − finance), relative_difference,
    within_tolerance; totals first, then movements, then customers.
    """
    factor = 12 if measure == "arr" else 1
    monthly = movements(mrr.drop("native_mrr", "native_currency", strict=False))
    ours = monthly.group_by("month").agg(
        pl.col("end_mrr").sum().alias("amount"), *[pl.col(m).sum() for m in MOVEMENT_MEASURES]
    )
    totals = finance.group_by("month").agg(pl.col("amount").sum())
    parts = [_compare(totals, ours, "amount", measure, factor, "total")]
    for name in MOVEMENT_MEASURES:
        if name in finance.columns:
            theirs = finance.group_by("month").agg(pl.col(name).sum().alias("amount"))
            mine = ours.select("month", amount=pl.col(name))
            parts.append(_compare(theirs, mine, "amount", name, factor, "movement"))
    if "customer_id" in finance.columns:
        theirs = finance.group_by("month", "customer_id").agg(pl.col("amount").sum())
        mine = mrr.group_by("month", "customer_id").agg(amount=pl.col("mrr").sum())
        parts.append(_compare(theirs, mine, "amount", measure, factor, "customer"))
    result = pl.concat(parts, how="diagonal_relaxed")
    return result.with_columns(
        within_tolerance=tolerance.accepts(pl.col("difference"), pl.col("finance"))
    ).select(FINANCE_COLUMNS)


def _compare(
    theirs: pl.DataFrame, ours: pl.DataFrame, column: str, measure: str, factor: int, level: str
) -> pl.DataFrame:
    keys = [key for key in ("month", "customer_id") if key in theirs.columns]
    # Only months finance covers: a finance file is a window, not the whole history.
    joined = theirs.rename({column: "finance"}).join(
        ours.select(*keys, toolkit=pl.col(column) * factor), on=keys, how="left"
    )
    finance, toolkit = pl.col("finance").cast(MONEY), pl.col("toolkit").fill_null(0).cast(MONEY)
    return joined.select(
        level=pl.lit(level),
        month=pl.col("month"),
        customer_id=pl.col("customer_id") if "customer_id" in keys else pl.lit(None, pl.String),
        measure=pl.lit(measure),
        finance=finance,
        toolkit=toolkit,
        difference=(toolkit - finance).cast(MONEY),
        relative_difference=pl.when(finance != 0)
        .then((toolkit - finance).cast(pl.Float64) / finance.cast(pl.Float64))
        .otherwise(None),
    ).sort(keys)


MONTH_HEADERS = ("month", "date", "period")
AMOUNT_HEADERS = {"amount": None, "mrr": "mrr", "arr": "arr"}


def load_finance_file(path: str | Path) -> tuple[pl.DataFrame, str]:
    """Read finance's MRR or ARR file (CSV or XLSX) → (frame, measure).

    Columns (case-insensitive): `month` (YYYY-MM or any date the loader reads), `amount`, `mrr`
    or `arr` (the measure follows the header, `amount` meaning MRR), optionally `customer_id`
    and movement columns. Amounts may be messy (`1 234,56`, `€1,234.56`, `(12.00)`).
    """
    path = Path(path)
    raw = _read_text_table(path)
    raw = raw.rename({name: name.strip().lower() for name in raw.columns})
    month_column = next((name for name in MONTH_HEADERS if name in raw.columns), None)
    amount_column = next((name for name in AMOUNT_HEADERS if name in raw.columns), None)
    if month_column is None or amount_column is None:
        raise InputError(
            f"the finance file needs a month column and an amount, mrr or arr column "
            f"(found: {', '.join(raw.columns)})",
            where=str(path),
            fix="name the columns month,amount (optionally customer_id, new, churn...)",
        )
    measure = AMOUNT_HEADERS[amount_column] or "mrr"
    frame = pl.DataFrame({"month": _parse_months(raw[month_column], path)})
    for target, column in [("amount", amount_column), *[(m, m) for m in MOVEMENT_MEASURES]]:
        if column in raw.columns:
            frame = frame.with_columns(_parse_money(raw[column], path).alias(target))
    if "customer_id" in raw.columns:
        frame = frame.with_columns(raw["customer_id"].str.strip_chars().alias("customer_id"))
    return frame, measure


def _read_text_table(path: Path) -> pl.DataFrame:
    """Every cell as text, from a CSV (`,` `;` or tab) or a spreadsheet."""
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
            frame = pl.read_excel(path, infer_schema_length=0)
            return frame.select(pl.all().cast(pl.String))
        head = path.read_text(encoding="utf-8-sig").splitlines()[0] if path.stat().st_size else ""
        separator = max((",", ";", "\t"), key=head.count)
        return pl.read_csv(path, separator=separator, infer_schema=False, encoding="utf8-lossy")
    except (OSError, IndexError, pl.exceptions.PolarsError) as error:
        raise InputError(f"cannot read the finance file: {error}", where=str(path)) from None


def _first_failure(parsed_values: pl.Series, raw: pl.Series, path: Path, what: str) -> None:
    failed = raw.is_not_null() & (raw.str.strip_chars() != "") & parsed_values.is_null()
    if failed.any():
        index = int(failed.arg_true()[0])
        raise InputError(
            f"cannot read {what} {raw[index]!r} in column {raw.name}",
            where=f"{path}, line {index + 2}",
            fix=f"write {what}s like 2025-01 (months) or 1234.56 (amounts)",
        )


def _parse_months(raw: pl.Series, path: Path) -> pl.Series:
    text = raw.str.strip_chars()
    year_month = text.str.extract(r"^(\d{4}-\d{2})$").str.to_date("%Y-%m", strict=False)
    dates = parse_dates(text.alias(raw.name)).values
    months = pl.select(pl.coalesce(year_month, dates).dt.truncate("1mo")).to_series()
    _first_failure(months, raw, path, "month")
    return months.alias("month")


def _parse_money(raw: pl.Series, path: Path) -> pl.Series:
    values = parse_amounts(raw).values
    _first_failure(values, raw, path, "amount")
    return values


# --- against what Fincome holds -----------------------------------------------------------------

FINCOME_COLUMNS = ("entity", "id", "status", "field", "source_value", "fincome_value")


def reconcile_fincome(dataset: Dataset, fincome: Dataset) -> pl.DataFrame:
    """Our records against Fincome's, field by field: `entity, id, status, field, source_value,
    fincome_value` with status `missing` (not in Fincome), `extra` (only in Fincome) or
    `different` (one row per differing field). A repeated id counts once (the last row wins,
    as an upsert would); `custom_properties` compare as JSON (key order ignored)."""
    parts = [_compare_entity(name, dataset.frame(name), fincome.frame(name)) for name in FIELDS]
    return pl.concat(parts).select(FINCOME_COLUMNS)


def _as_text(frame: pl.DataFrame, fields: list[str]) -> pl.DataFrame:
    """Each field as comparable text: canonical dtypes print the same on both sides."""
    frame = frame.filter(pl.col("id").is_not_null()).unique("id", keep="last", maintain_order=True)
    texts = frame.select("id", *[pl.col(name).cast(pl.String) for name in fields])
    if "custom_properties" in fields:
        distinct = texts["custom_properties"].drop_nulls().unique().to_list()
        canonical = {value: _canonical_json(value) for value in distinct}
        texts = texts.with_columns(  # null is sent as {} (contract), so they compare equal
            pl.col("custom_properties").replace_strict(canonical, default=None).fill_null("{}")
        )
    return texts


def _canonical_json(text: str) -> str:
    try:
        return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return text


def _compare_entity(entity: str, ours: pl.DataFrame, theirs: pl.DataFrame) -> pl.DataFrame:
    fields = [name for name in FIELDS[entity] if name != "id"]
    ours, theirs = _as_text(ours, fields), _as_text(theirs, fields)
    empty = {"field": pl.lit(None, pl.String), "source_value": pl.lit(None, pl.String)}
    missing = ours.join(theirs, on="id", how="anti").select(
        entity=pl.lit(entity),
        id="id",
        status=pl.lit("missing"),
        **empty,
        fincome_value=pl.lit(None, pl.String),
    )
    extra = theirs.join(ours, on="id", how="anti").select(
        entity=pl.lit(entity),
        id="id",
        status=pl.lit("extra"),
        **empty,
        fincome_value=pl.lit(None, pl.String),
    )
    both = ours.join(theirs, on="id", how="inner", suffix="_fincome")
    different = [
        both.filter(pl.col(name).ne_missing(pl.col(f"{name}_fincome"))).select(
            entity=pl.lit(entity),
            id="id",
            status=pl.lit("different"),
            field=pl.lit(name),
            source_value=pl.col(name),
            fincome_value=pl.col(f"{name}_fincome"),
        )
        for name in fields
    ]
    return pl.concat([missing, extra, *different]).sort("status", "id", "field", nulls_last=True)


# --- all three at once (the `reconcile` command) ------------------------------------------------


@dataclass(frozen=True)
class Reconciliation:
    """The findings of `reconcile_all`: one frame per part (None when the part did not run)."""

    sources: pl.DataFrame
    finance: pl.DataFrame | None = None
    fincome: pl.DataFrame | None = None

    def parts(self) -> dict[str, pl.DataFrame]:
        """The frames that ran, by file stem."""
        found = {"sources": self.sources, "finance": self.finance, "fincome": self.fincome}
        return {name: frame for name, frame in found.items() if frame is not None}

    def write(self, out_dir: str | Path) -> list[Path]:
        """One CSV per part in `out_dir` (created): sources.csv, finance.csv, fincome.csv."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for name, frame in self.parts().items():
            path = out_dir / f"{name}.csv"
            frame.write_csv(path)
            written.append(path)
        return written

    @property
    def clean(self) -> bool:
        """Nothing to explain: sources agree, finance within tolerance, Fincome identical."""
        finance_ok = self.finance is None or bool(self.finance["within_tolerance"].all())
        fincome_ok = self.fincome is None or self.fincome.is_empty()
        return self.sources.is_empty() and finance_ok and fincome_ok

    def summary(self) -> list[str]:
        """Short lines for a terminal: counts per cause, per level, per status."""
        lines = [f"invoices vs subscriptions: {self.sources.height:,} customer-months differ"]
        for cause, count in _counts(self.sources, "cause"):
            lines.append(f"  {count:>7,} × {cause}")
        if self.finance is not None:
            off = self.finance.filter(~pl.col("within_tolerance"))
            lines.append(
                f"finance file: {off.height:,} of {self.finance.height:,} comparisons "
                "outside the tolerance"
            )
            for level, count in _counts(off, "level"):
                lines.append(f"  {count:>7,} × {level}")
        if self.fincome is not None:
            lines.append(f"Fincome read-back: {self.fincome.height:,} findings")
            for status, count in _counts(self.fincome, "status"):
                lines.append(f"  {count:>7,} × {status}")
        return lines


def _counts(frame: pl.DataFrame, column: str) -> list[tuple[str, int]]:
    counted = frame.group_by(column).len().sort("len", column, descending=[True, False])
    return [(str(value), count) for value, count in counted.iter_rows()]


def reconcile_all(
    dataset: Dataset,
    *,
    options: MrrOptions | None = None,
    finance: tuple[pl.DataFrame, str] | None = None,
    tolerance: Tolerance = Tolerance(),
    fincome: Dataset | None = None,
) -> Reconciliation:
    """Run the three reconciliations that have their inputs: sources always, finance when
    `finance=(frame, measure)` (see `load_finance_file`), Fincome when its read-back is given."""
    options = options or MrrOptions()
    sources = reconcile_sources(dataset, options=options)
    finance_result = None
    if finance is not None:
        mrr = mrr_by_customer(dataset, options=options)
        if mrr["currency"].n_unique() > 1:
            raise InputError(
                "the subscriptions are in several currencies; finance's file has one",
                fix="reconcile one currency at a time (filter the export) or convert first",
            )
        frame, measure = finance
        finance_result = reconcile_finance(mrr, frame, tolerance=tolerance, measure=measure)
    fincome_result = None if fincome is None else reconcile_fincome(dataset, fincome)
    return Reconciliation(sources, finance_result, fincome_result)
