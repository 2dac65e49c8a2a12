"""Shared pieces of the value parsers: options, the result type, text cleaning, key normalisation.

Parsers work on the *distinct* values of a column whenever they can: billing exports repeat the
same dates, statuses and currencies millions of times, so parsing the few thousand distinct
spellings and mapping them back is both simpler and faster than parsing every row.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

import polars as pl

# Spellings of "no value" found in ERP exports, compared case-insensitively after trimming.
# "NA" is deliberately absent (Namibia's country code), and a lone "-" is safe because a minus
# sign alone is not a number.
DEFAULT_NULL_VALUES = ("", "null", "none", "nan", "n/a", "#n/a", "-", "--", "—", "nil", "(null)")

ExtraColumns = Literal["ignore", "custom_properties"]


@dataclass(frozen=True)
class ParseOptions:
    """How messy values are read. Every field has a sensible default; pass one to change it.

    - `day_first`: True for DD/MM/YYYY, False for MM/DD/YYYY, None to decide per column from the
      values (and report a column that cannot tell).
    - `decimal_comma`: True when `1,234` means 1.234, False when it means 1234, None to decide from
      the values (`12,50` or `1.234,56` show a decimal comma).
    - `status_synonyms`, `interval_synonyms`, `type_synonyms`, `currency_synonyms`,
      `country_synonyms`: extra spellings → canonical value, added to the built-in EN/FR lists.
      `status_synonyms` serves invoices and subscriptions alike (the target value tells which).
      `interval_synonyms` values may carry a count: `"bimestriel" = "2 month"`.
    - `null_values`: extra spellings of "no value", on top of `DEFAULT_NULL_VALUES`.
    - `extra_columns`: "ignore" (default) or "custom_properties" to keep every unmapped source
      column in the `custom_properties` JSON object.
    """

    day_first: bool | None = None
    decimal_comma: bool | None = None
    status_synonyms: Mapping[str, str] = field(default_factory=dict)
    interval_synonyms: Mapping[str, str] = field(default_factory=dict)
    type_synonyms: Mapping[str, str] = field(default_factory=dict)
    currency_synonyms: Mapping[str, str] = field(default_factory=dict)
    country_synonyms: Mapping[str, str] = field(default_factory=dict)
    null_values: tuple[str, ...] = ()
    extra_columns: ExtraColumns = "ignore"

    def __post_init__(self) -> None:
        if self.extra_columns not in ("ignore", "custom_properties"):
            raise ValueError(
                f"extra_columns must be 'ignore' or 'custom_properties', not {self.extra_columns!r}"
            )
        object.__setattr__(self, "null_values", tuple(self.null_values))


@dataclass(frozen=True)
class Parsed:
    """The result of parsing one column.

    `values` has the canonical dtype, null where the input was empty or could not be parsed;
    `reasons` says why, for every value that was present but not understood (null elsewhere);
    `notes` are findings about the whole column (e.g. an undecidable day/month order);
    `extra` holds side products named by field (a currency read from amounts like `€12`,
    an interval count read from units like `quarterly`).
    """

    values: pl.Series
    reasons: pl.Series
    notes: tuple[str, ...] = ()
    extra: Mapping[str, pl.Series] = field(default_factory=dict)

    @property
    def failed(self) -> pl.Series:
        """True where a value was present but could not be parsed."""
        return self.reasons.is_not_null()


def _case_variants(spellings: tuple[str, ...]) -> list[str]:
    variants = set()
    for spelling in spellings:
        variants |= {spelling, spelling.lower(), spelling.upper(), spelling.title()}
    return sorted(variants)


def constant(
    value: object, length: int, *, dtype: pl.DataType | type = pl.String, name: str = ""
) -> pl.Series:
    """`length` copies of one value, built natively (a Python list of a million items is slow)."""
    return pl.repeat(value, length, dtype=dtype, eager=True).alias(name)


def as_text(values: pl.Series) -> pl.Series:
    """The values as `pl.String` (typed input such as numbers is cast), not yet cleaned."""
    return values if values.dtype == pl.String else values.cast(pl.String)


def clean_text(values: pl.Series, *, options: ParseOptions | None = None) -> pl.Series:
    """Text with surrounding whitespace (NBSP included) trimmed and null spellings made null."""
    options = options or ParseOptions()
    text = values if values.dtype == pl.String else values.cast(pl.String)
    trimmed = text.str.strip_chars()
    nulls = _case_variants(DEFAULT_NULL_VALUES + options.null_values)
    return trimmed.set(trimmed.is_in(nulls), None) if len(trimmed) else trimmed


def normalise_key_text(text: str) -> str:
    """A spelling reduced to lower-case ASCII words: 'Payée' → 'payee', 'Pays-Bas' → 'pays bas'."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    ascii_text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    words = "".join(ch if ch.isascii() and ch.isalnum() else " " for ch in ascii_text)
    return " ".join(words.split())


def normalise_keys(values: pl.Series) -> pl.Series:
    """`normalise_key_text` vectorised (same result, used on distinct values)."""
    return (
        values.str.to_lowercase()
        .str.normalize("NFKD")
        .str.replace_all(r"\p{M}", "")
        .str.replace_all(r"[^a-z0-9]+", " ")
        .str.strip_chars()
    )


def normalise_synonyms(synonyms: Mapping[str, str]) -> dict[str, str]:
    """Synonym table with normalised keys, so lookups ignore case, accents and punctuation."""
    return {normalise_key_text(key): value for key, value in synonyms.items()}


def map_distinct(
    values: pl.Series,
    parse_distinct: Callable[[pl.Series], pl.DataFrame],
    dtypes: Mapping[str, pl.DataType],
    *,
    distinct: pl.Series | None = None,
) -> pl.DataFrame:
    """Parse the distinct non-null values of `values` and map the results back onto every row.

    `parse_distinct` receives the distinct raw values (not yet cleaned) and returns a frame with
    one row per value and the columns named in `dtypes`. Returns those columns for every row.
    `distinct` may be passed when the caller already computed `values.drop_nulls().unique()`.
    """
    if distinct is None:
        distinct = values.drop_nulls().unique()
    return map_back(values, distinct, parse_distinct(distinct), dtypes)


# A result column carried by at most this many distinct values (typically failure reasons) is
# mapped back by finding their rows with `is_in` and scattering: ~3x cheaper than a full lookup.
_SPARSE_KEYS = 64


def map_back(
    values: pl.Series,
    distinct: pl.Series,
    parsed: pl.DataFrame,
    dtypes: Mapping[str, pl.DataType],
) -> pl.DataFrame:
    """Spread per-distinct-value results (`parsed`, aligned with `distinct`) onto every row."""
    height = len(values)
    result = {}
    for name, dtype in dtypes.items():
        column = parsed[name]
        present = len(column) - column.null_count()
        if present == 0:  # e.g. no failure reasons: skip the lookup
            result[name] = constant(None, height, dtype=dtype, name=name)
            continue
        if present <= _SPARSE_KEYS and 2 * present <= len(column):
            sparse = _map_sparse(values, distinct, column, dtype)
            if sparse is not None:
                result[name] = sparse.alias(name)
                continue
        result[name] = values.replace_strict(
            distinct, column, default=None, return_dtype=dtype
        ).alias(name)
    return pl.DataFrame(result)


def _map_sparse(
    values: pl.Series, distinct: pl.Series, column: pl.Series, dtype: pl.DataType
) -> pl.Series | None:
    """`column` mapped back through the rows holding one of its few non-null keys; None when
    those rows are too many for this to pay off."""
    known = column.is_not_null()
    keys, targets = distinct.filter(known), column.filter(known)
    hits = values.is_in(keys.implode())
    if hits.sum() * 8 > len(values):
        return None
    rows = hits.arg_true()
    found = values.gather(rows).replace_strict(keys, targets, return_dtype=dtype)
    return constant(None, len(values), dtype=dtype).scatter(rows, found)


def lookup_vocabulary(
    distinct: pl.Series,
    vocabulary: Mapping[str, str],
    *,
    reason: str,
) -> pl.DataFrame:
    """Map distinct cleaned values through a normalised vocabulary; unknown ones get `reason`."""
    keys = normalise_keys(distinct)
    value = keys.replace_strict(vocabulary, default=None, return_dtype=pl.String)
    return pl.DataFrame(
        {
            "value": value,
            "reason": constant(reason, len(distinct)).set(
                value.is_not_null() | distinct.is_null(), None
            ),
        }
    )
