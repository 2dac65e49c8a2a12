"""Customer-months as integers: the sorting and summing behind MRR and its movements.

Millions of (customer, month) rows are sorted and summed far faster by one packed integer than
by text ids: `encode_keys` numbers the ids, the sums run on `_key` and a month number, and
`decode_keys` puts the ids back at the end.
"""

from __future__ import annotations

import polars as pl


def encode_keys(
    frame: pl.DataFrame, keys: list[str], *, order: str | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Number the distinct `keys` (in their sorted order) as one integer column `_key`.

    Sorting and grouping millions of rows by an integer is many times faster than by text; the
    returned table (`_key` + keys) turns the numbers back into ids at the end. A frame already
    sorted by `keys` then `order` (as `mrr_by_customer` returns it) is numbered by runs,
    without hashing.
    """
    if order is not None and frame.height and _is_sorted(frame, [*keys, order]):
        first = ~pl.all_horizontal(pl.col(key).eq_missing(pl.col(key).shift(1)) for key in keys)
        coded = frame.with_columns(_key=(first.cast(pl.UInt32).cum_sum() - 1))
        table = coded.filter(first).select("_key", *keys)
        return coded.drop(keys), table
    table = frame.select(keys).unique().sort(keys).with_row_index("_key")
    return frame.join(table, on=keys, how="left", nulls_equal=True).drop(keys), table


def decode_keys(frame: pl.DataFrame, table: pl.DataFrame) -> pl.DataFrame:
    """Add the key columns of `encode_keys`'s table back to a frame with `_key` (appended last).

    The table's `_key` is its row number, so this is a lookup by position, not a join.
    """
    keys = [name for name in table.columns if name != "_key"]
    return frame.with_columns(pl.lit(table[key]).gather(pl.col("_key")) for key in keys)


def _is_sorted(frame: pl.DataFrame, columns: list[str]) -> bool:
    """Whether each row comes after the previous one in (columns...) order (no nulls)."""
    after, same = pl.lit(False), pl.lit(True)
    for column in columns:
        now, before = pl.col(column), pl.col(column).shift(1)
        after = after | (same & (now > before))
        same = same & (now == before)
    ordered = (after | same).fill_null(False).slice(1).all()
    no_nulls = pl.all_horizontal(pl.col(column).is_not_null().all() for column in columns)
    return bool(frame.select(ordered & no_nulls).item())


def _position() -> pl.Expr:
    """`_key` and `month` packed in one integer that sorts like the pair (months < 2**16)."""
    return pl.col("_key").cast(pl.Int64) * 65536 + pl.col("month").cast(pl.Int64)


def _strictly_increasing(frame: pl.DataFrame, column: str) -> bool:
    """Whether `column` (no nulls) only goes up: the frame is sorted and has no repeated value."""
    if frame.height < 2:
        return frame.height == 0 or frame[column].null_count() == 0
    ordered = (pl.col(column).diff().slice(1) > 0).all() & (pl.col(column).null_count() == 0)
    return bool(frame.select(ordered).item())


def sum_by_key_month(frame: pl.LazyFrame, values: list[str]) -> pl.DataFrame:
    """Sum `values` per `_key` and `month`; the result is sorted by both (column `_pos`).

    A sort and running sums read at the end of each run: linear after the sort, and much faster
    than a hash group-by when nearly every (customer, month) pair is distinct. A frame already
    sorted with one row per pair (an MRR frame) is its own sum: only the types change.
    """
    positioned = frame.with_columns(_pos=_position()).collect()
    no_nulls = all(positioned[value].null_count() == 0 for value in values)
    if no_nulls and _strictly_increasing(positioned, "_pos"):
        schema = _sum_runs(positioned.clear().lazy(), values).collect_schema()
        return positioned.cast(dict(schema)).set_sorted("_pos")
    return _sum_runs(positioned.lazy().sort("_pos"), values).collect()


def _sum_runs(ordered: pl.LazyFrame, values: list[str]) -> pl.LazyFrame:
    """Running sums of a frame sorted by `_pos`, read at the end of each run of equal `_pos`."""
    last_of_run = (pl.col("_pos") != pl.col("_pos").shift(-1)).fill_null(True)
    running = ordered.with_columns(pl.col(values).cum_sum()).filter(last_of_run)
    return running.with_columns(
        pl.col(value) - pl.col(value).shift(1).fill_null(0) for value in values
    )


def add_stop_rows(mrr: pl.DataFrame, last: int) -> pl.DataFrame:
    """Add a zero row for the month after each run of active months (if not after `last`).

    `mrr` has an integer `_key` and a month number `month`; the result is sorted by both.
    """
    ordered = mrr.with_columns(_pos=_position())
    if _strictly_increasing(ordered, "_pos"):  # sorting sorted millions still costs
        ordered = ordered.set_sorted("_pos")
    else:
        ordered = ordered.sort("_pos")
    continues = (pl.col("_pos").shift(-1) == pl.col("_pos") + 1).fill_null(False)
    zero = {"month": pl.col("month") + 1, "_pos": pl.col("_pos") + 1}
    for name in ("mrr", "native_mrr"):
        if name in ordered.columns:
            zero[name] = pl.lit(0).cast(ordered.schema[name])
    stops = ordered.filter(~continues & (pl.col("month") < last)).with_columns(**zero)
    return ordered.merge_sorted(stops, key="_pos")
