"""Audit settings: severity thresholds per rule, tolerances, audit date; loadable from TOML.

Thresholds work like pointblank's `Thresholds(warning=..., error=...)`: an int is a count of
failing units, a float in (0, 1] a fraction of the units checked. Without a threshold a rule takes
its default severity as soon as one unit fails; a threshold moves the level at which a severity is
reached, e.g. `Thresholds(error=0.05)` escalates a warning rule to error past 5% of its units.

```toml
[audit]
as_of = 2025-06-30              # the day "future" and "contradicting the dates" are judged at
skip = ["CUS-009"]              # rules not to run
block_on_error = true           # an error-severity issue blocks the upload as a whole
amount_tolerance = 0.2          # INV-016: relative distance from the subscription's price
issue_date_window_days = 45     # INV-020: days an invoice may be issued outside its period

[audit.thresholds]
INV-016 = { error = 0.05 }      # warning by default, error past 5% of invoices
CUS-004 = { warning = 10 }      # below 10 invalid e-mails: info only
```
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from fincome_toolkit.errors import ConfigError
from fincome_toolkit.rule_base import SEVERITIES, RuleOptions

Limit = int | float | None


def _check_limit(level: str, limit: Limit) -> None:
    if limit is None:
        return
    if isinstance(limit, bool) or not isinstance(limit, int | float):
        raise ConfigError(f"threshold {level}={limit!r} is neither a count nor a fraction")
    if isinstance(limit, int) and limit < 1:
        raise ConfigError(
            f"threshold {level}={limit} must be a count >= 1",
            fix="use a whole number of failing units (1, 10...) or a fraction such as 0.05",
        )
    if isinstance(limit, float) and not 0 < limit <= 1:
        raise ConfigError(
            f"threshold {level}={limit} must be a fraction in (0, 1]",
            fix="write 0.05 for 5% of the units checked, or an integer for a count",
        )


def _reached(limit: Limit, failed: int, checked: int) -> bool:
    if limit is None:
        return False
    if isinstance(limit, float):
        return checked > 0 and failed / checked >= limit
    return failed >= limit


@dataclass(frozen=True)
class Thresholds:
    """When a rule's failures reach each severity: a count (int) or a fraction (float)."""

    warning: Limit = None
    error: Limit = None

    def __post_init__(self) -> None:
        _check_limit("warning", self.warning)
        _check_limit("error", self.error)

    def severity(self, default: str, *, failed: int, checked: int) -> str:
        """The severity `failed` of `checked` units reach, or "passed" when nothing failed.

        Levels up to the rule's default severity are reached by one failure unless a threshold
        says otherwise; levels above it only through a threshold. Below every level: "info".
        """
        if failed == 0:
            return "passed"
        explicit = {"warning": self.warning, "error": self.error}
        rank = SEVERITIES.index(default)
        for level in ("error", "warning"):
            limit = explicit[level]
            if limit is None and SEVERITIES.index(level) <= rank:
                limit = 1
            if _reached(limit, failed, checked):
                return level
        return "info"


@dataclass(frozen=True)
class AuditSettings:
    """Everything the audit can be told, in one frozen object (see the module docstring)."""

    as_of: dt.date | None = None
    thresholds: Mapping[str, Thresholds] = field(default_factory=dict)
    options: RuleOptions = field(default_factory=RuleOptions)
    skip: tuple[str, ...] = ()
    block_on_error: bool = True

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> AuditSettings:
        """Settings from a parsed TOML table (the `[audit]` table, or the whole document)."""
        table = dict(table.get("audit", table))
        option_names = {f.name for f in fields(RuleOptions)}
        known = {"as_of", "thresholds", "skip", "block_on_error"} | option_names
        unknown = sorted(set(table) - known)
        if unknown:
            raise ConfigError(
                f"unknown audit setting(s): {', '.join(unknown)}",
                fix=f"use only: {', '.join(sorted(known))}",
            )
        try:
            thresholds = {
                str(code): Thresholds(**dict(levels))
                for code, levels in dict(table.get("thresholds", {})).items()
            }
            options = RuleOptions(**{k: table[k] for k in option_names if k in table})
        except TypeError as error:
            raise ConfigError(
                f"bad audit threshold or tolerance: {error}",
                fix="thresholds take only 'warning' and 'error', e.g. INV-016 = { error = 0.05 }",
            ) from None
        return cls(
            as_of=_as_date(table.get("as_of")),
            thresholds=thresholds,
            options=options,
            skip=tuple(str(code) for code in table.get("skip", ())),
            block_on_error=bool(table.get("block_on_error", True)),
        )

    @classmethod
    def from_toml(cls, path: str | Path) -> AuditSettings:
        """Settings from a TOML file holding an `[audit]` table (or audit keys at top level)."""
        source = Path(path)
        try:
            document = tomllib.loads(source.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(
                f"cannot read the settings file ({error.strerror})", where=str(source)
            ) from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(
                f"the settings file is not valid TOML: {error}", where=str(source)
            ) from None
        return cls.from_mapping(document)


def _as_date(value: Any) -> dt.date | None:
    if value is None or (isinstance(value, dt.date) and not isinstance(value, dt.datetime)):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(
            f"as_of {value!r} is not a date", fix="write it as YYYY-MM-DD, e.g. 2025-06-30"
        ) from None


def parse_as_of(value: str | dt.date | None) -> dt.date | None:
    """An audit date given as text (YYYY-MM-DD) or date; ConfigError when unreadable."""
    return _as_date(value)
