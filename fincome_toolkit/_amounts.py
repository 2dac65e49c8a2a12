"""Reading money amounts exactly, to `pl.Decimal(18, 2)`, never through a binary float.

Accepted: `1234.56`, `1,234.56`, `1 234,56` (space, NBSP or narrow NBSP as thousands separator),
`1.234,56`, `1'234.56`, `€1,234.56`, `1234.56 EUR`, `12 €`, `(12.00)` and `12.00-` for negatives,
`-12`, `+12`, `.5`. A currency symbol, code or name written in the amount is returned beside it
(`Parsed.extra["currency"]`), so the loader can fill an unmapped or empty currency column.

Decimals: the API takes at most 2 (A10). More digits are accepted when they are zeros
(`12.500` → 12.50, common in spreadsheet exports); otherwise the value is a parse issue rather
than a silently rounded amount.

`1,234` and `1.234` are ambiguous: the column decides (`decimal_comma`). Values like `12,50` or
`1.234,56` show a decimal comma, `12.50` or `1,234.56` a decimal point; a column with no such
value reads a lone 3-digit group as thousands after a comma and decimals after a point.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from fincome_toolkit._parse_core import (
    Parsed,
    ParseOptions,
    as_text,
    clean_text,
    constant,
    map_back,
    map_distinct,
)

MONEY = pl.Decimal(18, 2)
_FAST_DOT = r"^-?(?:\d{1,16}|\d{1,3}(?:,\d{3}){1,5})(?:\.\d{1,2})?$"
_FAST_COMMA = r"^-?(?:\d{1,16}|\d{1,3}(?:[.\s]\d{3}){1,5})(?:,\d{1,2})?$"
_TOKEN = r"[^\d\s+\-−(),.][^\d\s+\-−(),]*"
_AFFIXES = rf"^({_TOKEN})?\s*(.*?)\s*({_TOKEN})?$"
_SAMPLE = 5_000
_REPEATS = 4  # parse distinct values when each repeats this many times on average
_RESULT_DTYPES = {"value": MONEY, "reason": pl.String(), "currency": pl.String()}


@dataclass(frozen=True)
class DecimalEvidence:
    """How many distinct values of a column show a decimal comma or a decimal point."""

    comma: int = 0
    point: int = 0

    def decision(self) -> bool | None:
        """True for a decimal comma, False for a point, None when the values do not tell."""
        if self.comma == self.point:
            return None
        return self.comma > self.point


def _separator_counts(core: pl.Expr) -> dict[str, pl.Expr]:
    return {
        "n_comma": core.str.count_matches(",", literal=True),
        "n_dot": core.str.count_matches(".", literal=True),
        "last_sep": core.str.extract(r"([.,])\d*$", 1),
        "tail": core.str.extract(r"[.,](\d*)$", 1).str.len_chars(),
    }


def _evidence_of(cores: pl.DataFrame) -> DecimalEvidence:
    n_comma, n_dot, last, tail = (pl.col(c) for c in ("n_comma", "n_dot", "last_sep", "tail"))
    both = (n_comma > 0) & (n_dot > 0)
    single = tail.is_between(1, 2)
    counts = cores.select(
        comma=((both & (last == ",")) | ((n_dot == 0) & (n_comma == 1) & single) | (n_dot > 1))
        .fill_null(False)
        .sum(),
        point=((both & (last == ".")) | ((n_comma == 0) & (n_dot == 1) & single) | (n_comma > 1))
        .fill_null(False)
        .sum(),
    )
    return DecimalEvidence(comma=int(counts["comma"][0]), point=int(counts["point"][0]))


def _split_affixes(distinct: pl.Series) -> pl.DataFrame:
    """Per distinct value: currency token (prefix or suffix), sign, and the bare number."""
    raw = pl.col("raw")
    unwrapped = raw.str.replace(r"^\((.*)\)$", "$1").str.replace(r"^[-−+]\s*", "")
    parts = unwrapped.str.extract_groups(_AFFIXES)
    core = parts.struct.field("2").str.replace(r"^\((.*)\)$", "$1")
    frame = pl.DataFrame({"raw": distinct}).with_columns(
        token=pl.coalesce(parts.struct.field("1"), parts.struct.field("3")),
        two_tokens=parts.struct.field("1").is_not_null() & parts.struct.field("3").is_not_null(),
        paren=raw.str.contains(r"^\(.*\)$") | parts.struct.field("2").str.contains(r"^\(.*\)$"),
        lead_minus=raw.str.contains(r"^[-−]"),
        lead_sign=raw.str.contains(r"^[-−+]"),
        core=core,
    )
    core = pl.col("core")
    return frame.with_columns(
        negative=pl.col("paren")
        | pl.col("lead_minus")
        | core.str.contains(r"^[-−]")
        | core.str.contains(r"-$"),
        signs=core.str.count_matches(r"[-−+]") + pl.col("lead_sign").cast(pl.Int64),
        core=core.str.replace_all(r"^[-−+]|-$", "").str.replace_all(r"[\s'’]", ""),
    ).with_columns(**_separator_counts(pl.col("core")))


def _normalise(frame: pl.DataFrame, *, decimal_comma: bool) -> pl.DataFrame:
    """Decide each value's decimal separator, then build the exact `-123.45` text and its reason."""
    n_comma, n_dot, last, tail = (pl.col(c) for c in ("n_comma", "n_dot", "last_sep", "tail"))
    core = pl.col("core")
    lone = (n_comma + n_dot) == 1
    lone_is_decimal = (tail != 3) | (last == ("," if decimal_comma else "."))
    has_decimal = ((n_comma > 0) & (n_dot > 0)) | (lone & lone_is_decimal)
    frame = frame.with_columns(
        integer=pl.when(has_decimal).then(core.str.extract(r"^(.*)[.,]\d*$", 1)).otherwise(core),
        frac=pl.when(has_decimal).then(core.str.extract(r"[.,](\d*)$", 1)).otherwise(pl.lit("")),
    ).with_columns(digits=pl.col("integer").str.replace_all(r"[.,]", ""))
    integer, frac, digits = pl.col("integer"), pl.col("frac"), pl.col("digits")
    grouping_ok = ~integer.str.contains(r"[.,]") | integer.str.contains(
        r"^\d{1,3}(?:,\d{3})+$|^\d{1,3}(?:\.\d{3})+$"
    )
    shape_ok = (
        core.str.contains(r"^[\d.,]*\d[\d.,]*$") & (pl.col("signs") <= 1) & ~pl.col("two_tokens")
    )
    zeros_only_beyond_2 = frac.str.slice(2).str.replace_all("0", "") == ""
    number = pl.format(
        "{}{}.{}",
        pl.when(pl.col("negative")).then(pl.lit("-")).otherwise(pl.lit("")),
        pl.when(digits == "").then(pl.lit("0")).otherwise(digits),
        pl.when(frac == "").then(pl.lit("0")).otherwise(frac.str.slice(0, 2)),
    )
    value = number.cast(MONEY, strict=False)
    return frame.with_columns(
        value=pl.when(shape_ok & grouping_ok & zeros_only_beyond_2).then(value),
        reason=pl.when(pl.col("raw").is_null())
        .then(None)
        .when(~shape_ok)
        .then(pl.lit("not an amount"))
        .when(~grouping_ok)
        .then(pl.lit("unusual digit grouping (thousands come in groups of 3)"))
        .when(~zeros_only_beyond_2)
        .then(
            pl.format(
                "has {} decimals; amounts carry at most 2 (API assumption A10)",
                frac.str.len_chars(),
            )
        )
        .when(value.is_null())
        .then(pl.lit("too large (at most 16 digits before the decimal separator)")),
    )


def _generic(distinct: pl.Series, *, decimal_comma: bool, options: ParseOptions) -> pl.DataFrame:
    from fincome_toolkit.parsing import parse_currencies  # the currency vocabulary lives there

    frame = _normalise(_split_affixes(distinct), decimal_comma=decimal_comma)
    currency = parse_currencies(frame["token"], options=options)
    unknown = frame["token"].is_not_null() & currency.values.is_null()
    reason = frame["reason"].set(unknown & frame["reason"].is_null(), "_unknown_currency")
    reason = pl.DataFrame({"r": reason, "t": frame["token"]}).select(
        pl.when(pl.col("r") == "_unknown_currency")
        .then(pl.format("not an amount ('{}' is not a currency symbol or code)", "t"))
        .otherwise("r")
    )
    return pl.DataFrame(
        {
            "value": frame["value"].set(unknown, None),
            "reason": reason.to_series(),
            "currency": currency.values,
            "core": frame["core"],
        }
    )


def amount_decimal_evidence(
    values: pl.Series, *, options: ParseOptions | None = None
) -> DecimalEvidence:
    """What the first distinct values of a column say about the decimal separator."""
    sample = as_text(values).drop_nulls().head(_SAMPLE).unique()
    return _evidence_of(_split_affixes(clean_text(sample, options=options).drop_nulls()))


_PLAIN_DOT = r"^-?\d{1,16}(?:\.\d{1,2})?$"
_PLAIN_COMMA = r"^-?\d{1,16}(?:,\d{1,2})?$"


def _has_thousands(text: pl.Series, *, decimal_comma: bool) -> bool:
    """Whether the first values of the column show thousands separators."""
    grouped = text.head(_SAMPLE).str.contains(r"\d[.\s]\d{3}" if decimal_comma else r"\d,\d{3}")
    return bool(grouped.any())


def _fast(
    text: pl.Series, *, decimal_comma: bool, with_thousands: bool
) -> tuple[pl.Series, pl.Series]:
    """The common shapes, on every value at once; returns (values, handled mask).

    When the first values of the column show no thousands separator (`with_thousands`), the
    cheaper plain shape is tried; any value with separators simply takes the slower
    per-distinct-value path.
    """
    if decimal_comma:
        handled = text.str.contains(_FAST_COMMA if with_thousands else _PLAIN_COMMA)
        bare = text.str.replace_all(r"[.\s]", "") if with_thousands else text
        bare = bare.str.replace(",", ".", literal=True)
    else:
        handled = text.str.contains(_FAST_DOT if with_thousands else _PLAIN_DOT)
        bare = text.str.replace_all(",", "", literal=True) if with_thousands else text
    handled = handled.fill_null(False)
    values = bare.set(~handled, None).cast(MONEY, strict=False)
    return values, handled & values.is_not_null()


def parse_amounts(
    values: pl.Series, *, options: ParseOptions | None = None, decimal_comma: bool | None = None
) -> Parsed:
    """Parse amounts to `pl.Decimal(18, 2)`; `extra["currency"]` holds currencies written in them.

    The decimal separator comes from `decimal_comma`, else `options.decimal_comma`, else the
    column's values (`amount_decimal_evidence`, then the values the fast path could not read).
    """
    options = options or ParseOptions()
    text = as_text(values)
    explicit = decimal_comma if decimal_comma is not None else options.decimal_comma
    comma = explicit
    if comma is None:
        comma = amount_decimal_evidence(text).decision()
    # billing exports repeat a few thousand prices: parse each once and map the results back
    distinct = text.drop_nulls().unique()
    repeated = len(distinct) * _REPEATS <= len(text)
    for attempt in range(2):
        result = _parse_once(
            distinct if repeated else text,
            options=options,
            decimal_comma=bool(comma),
            with_thousands=_has_thousands(text, decimal_comma=bool(comma)),
        )
        rest = result.pop("_evidence")
        if explicit is not None or comma is not None or attempt:
            break
        flipped = rest.decision()
        if not flipped:  # the rest agrees with the default decimal point
            break
        comma = True
    if repeated:
        result = map_back(text, distinct, pl.DataFrame(result), _RESULT_DTYPES).to_dict()
    name = values.name
    return Parsed(
        values=result["value"].alias(name),
        reasons=result["reason"].alias(name),
        extra={"currency": result["currency"].alias(name)},
    )


def _parse_once(
    text: pl.Series, *, options: ParseOptions, decimal_comma: bool, with_thousands: bool
) -> dict:
    fast_values, handled = _fast(text, decimal_comma=decimal_comma, with_thousands=with_thousands)
    leftover = text.set(handled, None)
    if leftover.null_count() == len(leftover):
        empty = constant(None, len(text))
        return {
            "value": fast_values,
            "reason": empty,
            "currency": empty,
            "_evidence": DecimalEvidence(),
        }

    def parse_distinct(distinct: pl.Series) -> pl.DataFrame:
        cleaned = clean_text(distinct, options=options)
        return _generic(cleaned, decimal_comma=decimal_comma, options=options)

    slow = map_distinct(leftover, parse_distinct, _RESULT_DTYPES)
    distinct_rest = clean_text(leftover.drop_nulls().unique(), options=options).drop_nulls()
    evidence = _evidence_of(_split_affixes(distinct_rest.head(_SAMPLE)))
    return {
        "value": fast_values.fill_null(slow["value"]),
        "reason": slow["reason"],
        "currency": slow["currency"],
        "_evidence": evidence,
    }
