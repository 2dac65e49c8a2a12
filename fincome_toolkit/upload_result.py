"""What an upload did, record by record: `UploadResult`, its counts, CSV and notebook display."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape
from pathlib import Path

import polars as pl

from fincome_toolkit.frames import FRAME_NAMES, SOURCE_FILE, SOURCE_LINE

# Every record of the export ends in exactly one of these.
OUTCOMES = ("acknowledged", "skipped", "rejected", "conflict", "held_back", "pending")
PROBLEMS = ("rejected", "conflict", "held_back", "pending")  # what an analyst has to look at

RESULT_SCHEMA: dict[str, pl.DataType] = {
    "entity": pl.String(),
    "record_id": pl.String(),
    "outcome": pl.String(),
    "http_status": pl.Int64(),
    "attempts": pl.Int64(),
    "detail": pl.String(),
    SOURCE_FILE: pl.String(),
    SOURCE_LINE: pl.Int64(),
}
HTML_PREVIEW_ROWS = 20


@dataclass(frozen=True)
class UploadResult:
    """One row per record of the export (`RESULT_SCHEMA`) with its outcome and the server's detail.

    - acknowledged: Fincome holds it (sent in this run); skipped: held already, unchanged;
    - rejected: Fincome refused it (`detail` says why); conflict: Fincome holds other content;
    - held_back: not sent (audit errors, or a record it references is not in Fincome);
    - pending: no answer after every retry; the next run sends it again.
    """

    records: pl.DataFrame
    requests: int = 0  # HTTP requests made by this run
    seconds: float = 0.0  # wall time of the sending phase

    def counts(self) -> pl.DataFrame:
        """One row per entity plus a `total` row: `entity, records, <one column per outcome>`."""
        per_entity = (
            pl.DataFrame({"entity": list(FRAME_NAMES)})
            .join(
                self.records.group_by("entity").agg(
                    (pl.col("outcome") == o).sum().cast(pl.Int64).alias(o) for o in OUTCOMES
                ),
                on="entity",
                how="left",
            )
            .fill_null(0)
            .with_columns(records=pl.sum_horizontal(OUTCOMES))
            .select("entity", "records", *OUTCOMES)
        )
        total = per_entity.select(pl.lit("total").alias("entity"), pl.exclude("entity").sum())
        return pl.concat([per_entity, total])

    def count(self, outcome: str, entity: str | None = None) -> int:
        """How many records (of one entity, or all) ended with `outcome`."""
        selected = self.records.filter(pl.col("outcome") == outcome)
        if entity is not None:
            selected = selected.filter(pl.col("entity") == entity)
        return selected.height

    def problems(self) -> pl.DataFrame:
        """Records rejected, in conflict, held back or pending, in file order."""
        return self.records.filter(pl.col("outcome").is_in(PROBLEMS)).sort(
            SOURCE_FILE, SOURCE_LINE, "entity", "record_id", nulls_last=True
        )

    @property
    def exit_code(self) -> int:
        """0 when every record is in Fincome (acknowledged or skipped), else 1."""
        return 0 if self.problems().is_empty() else 1

    @property
    def records_per_second(self) -> float:
        """Records acknowledged per second of sending."""
        return self.count("acknowledged") / self.seconds if self.seconds > 0 else 0.0

    def to_frame(self) -> pl.DataFrame:
        """The per-record results as a polars frame."""
        return self.records

    def write_csv(self, path: Path | str, *, problems_only: bool = True) -> Path:
        """Write the records to fix (or every record) with detail, source file and line."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        (self.problems() if problems_only else self.records).write_csv(path)
        return path

    def _repr_html_(self) -> str:
        parts = [html_table(self.counts(), title="Upload to Fincome")]
        problems = self.problems()
        if problems.height:
            shown = problems.head(HTML_PREVIEW_ROWS).select(
                "entity", "record_id", "outcome", "detail", SOURCE_FILE, SOURCE_LINE
            )
            more = problems.height - shown.height
            caption = f"Records to look at ({problems.height}" + (
                f", first {shown.height} shown; `.problems()` has all)" if more else ")"
            )
            parts.append(html_table(shown, title=caption))
        return "\n".join(parts)

    def _mime_(self) -> tuple[str, str]:
        return "text/html", self._repr_html_()


def html_table(frame: pl.DataFrame, *, title: str) -> str:
    """A small, fully escaped HTML table of a frame (for notebooks)."""
    head = "".join(f"<th>{escape(name)}</th>" for name in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
        for row in frame.iter_rows()
    )
    return (
        f"<table><caption style='text-align:left;font-weight:600'>{escape(title)}</caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    )
