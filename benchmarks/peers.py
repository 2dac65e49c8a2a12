"""The peers on the subset of subset.py: pointblank (polars-backed) and pandas + pandera (pandas).

Each peer reads the same canonical CSV files the way its users would (polars/pandas type
inference, dates parsed), then runs every check of `subset_checks()` and returns how many rows
each check failed, so its work ends, like the toolkit's, at the rows that break a rule.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from subset import DATE_COLUMNS, ID_COLUMNS, Check

FRAMES = ("customers", "subscriptions", "invoices")


# --- pointblank -------------------------------------------------------------------------------


def read_polars(data_dir: Path) -> dict[str, Any]:
    """The three files as polars frames with inferred types and parsed dates (ids as text)."""
    import polars as pl

    return {
        name: pl.read_csv(
            data_dir / f"{name}.csv",
            try_parse_dates=True,
            schema_overrides={column: pl.String for column in ID_COLUMNS[name]},
        )
        for name in FRAMES
    }


def run_pointblank(frames: dict[str, Any], subset: list[Check]) -> dict[str, int]:
    """Interrogate each frame with pointblank's `Validate`; failed rows per check."""
    import pointblank as pb

    failed: dict[str, int] = {}
    for name in FRAMES:
        checks = [c for c in subset if c.frame == name]
        validation = pb.Validate(data=frames[name], tbl_name=name)
        for check in checks:
            validation = _pointblank_step(validation, check)
        validation.interrogate()
        for check, step in zip(checks, validation.validation_info, strict=True):
            failed[f"{name}.{check.kind}.{check.column}"] = int(step.n_failed or 0)
    return failed


def _pointblank_step(validation: Any, check: Check) -> Any:
    import pointblank as pb

    if check.kind == "not_null":
        return validation.col_vals_not_null(columns=check.column)
    if check.kind == "unique":
        return validation.rows_distinct(columns_subset=[check.column])
    if check.kind == "in_set":
        # nulls pass (the toolkit reports them only as required-field issues)
        return validation.col_vals_in_set(columns=check.column, set=[*check.value, None])
    if check.kind == "regex":
        return validation.col_vals_regex(columns=check.column, pattern=check.value, na_pass=True)
    if check.kind == "ge":
        return validation.col_vals_ge(columns=check.column, value=check.value, na_pass=True)
    if check.kind == "lt_column":
        return validation.col_vals_lt(columns=check.column, value=pb.col(check.value), na_pass=True)
    raise ValueError(f"unknown check kind {check.kind}")


# --- pandas + pandera -------------------------------------------------------------------------


def read_pandas(data_dir: Path) -> dict[str, Any]:
    """The three files as pandas frames with inferred types, parsed dates and ids as text."""
    import pandas as pd

    return {
        name: pd.read_csv(
            data_dir / f"{name}.csv",
            dtype={column: "string" for column in ID_COLUMNS[name]},
            parse_dates=list(DATE_COLUMNS[name]),
            date_format="%Y-%m-%d",
        )
        for name in FRAMES
    }


def run_pandera(frames: dict[str, Any], subset: list[Check]) -> dict[str, int]:
    """Validate each frame with a pandera (pandas backend) schema, lazily so that every failure
    case is collected; failed rows per check."""
    from pandera.errors import SchemaErrors

    failed: dict[str, int] = {}
    for name in FRAMES:
        checks = [c for c in subset if c.frame == name]
        for check in checks:
            failed[f"{name}.{check.kind}.{check.column}"] = 0
        try:
            _pandera_schema(checks).validate(frames[name], lazy=True)
        except SchemaErrors as errors:
            cases = errors.failure_cases
            for check in checks:
                column, label = _pandera_label(check)
                hit = cases["check"].astype(str).eq(label)
                if column is not None:
                    hit &= cases["column"].astype(str).eq(column)
                failed[f"{name}.{check.kind}.{check.column}"] = int(
                    cases.loc[hit, "index"].nunique()
                )
    return failed


def _pandera_label(check: Check) -> tuple[str | None, str]:
    """(column, check name) under which pandera reports a failure of `check`."""
    if check.kind == "not_null":
        return check.column, "not_nullable"
    if check.kind == "unique":
        return check.column, "field_uniqueness"
    if check.kind == "lt_column":  # a frame-level check: reported for every column of a row
        return None, f"{check.column}<{check.value}"
    return check.column, f"{check.kind}:{check.column}"


def _pandera_schema(checks: list[Check]) -> Any:
    """The subset as a pandera `DataFrameSchema`, with pandera's own null and unique checks."""
    import pandera.pandas as pa

    options: dict[str, dict[str, Any]] = {}
    value_checks: dict[str, list[Any]] = {}
    frame_checks = []
    for check in checks:
        column = options.setdefault(check.column, {"nullable": True})
        if check.kind == "not_null":
            column["nullable"] = False
        elif check.kind == "unique":
            column["unique"] = True
        elif check.kind == "lt_column":
            frame_checks.append(
                pa.Check(
                    lambda df, a=check.column, b=check.value: (
                        df[a].isna() | df[b].isna() | (df[a] < df[b])
                    ),
                    name=_pandera_label(check)[1],
                )
            )
        else:
            value_checks.setdefault(check.column, []).append(_pandera_value(check))
    columns = {
        name: pa.Column(checks=value_checks.get(name), **kwargs) for name, kwargs in options.items()
    }
    return pa.DataFrameSchema(columns, checks=frame_checks, strict=False, coerce=False)


def _pandera_value(check: Check) -> Any:
    import pandera.pandas as pa

    label = _pandera_label(check)[1]
    if check.kind == "in_set":
        return pa.Check.isin(check.value, name=label, ignore_na=True)
    if check.kind == "regex":
        return pa.Check.str_matches(re.compile(check.value), name=label, ignore_na=True)
    if check.kind == "ge":
        return pa.Check.ge(check.value, name=label, ignore_na=True)
    raise ValueError(f"unknown check kind {check.kind}")
