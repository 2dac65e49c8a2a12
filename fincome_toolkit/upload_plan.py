"""What an upload will do, decided before any request: the plan, and the dry run that writes it.

For every row of the three frames the plan says one of:

- `send`: build the payload and send it (new, changed since the last run, or never answered);
- `skip`: the journal says Fincome acknowledged this exact content already (same payload hash);
- `rejected`: Fincome rejected this exact content in an earlier run (re-sent with
  `retry_rejected=True`, or automatically once the record changes);
- `held_back`: not sent, with the reason: error-severity audit issues (unless `force`), an id
  that is missing or repeated with different content, a parent cycle, or a record it references
  that is itself held back, rejected, or unknown (neither in this export nor acknowledged).

The plan is vectorised polars over the frames; only payload building and hashing are per row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from fincome_toolkit.contract import (
    ContractSettings,
    build_payloads,
    canonical_json,
    payload_hash,
    referenced_ids,
)
from fincome_toolkit.frames import FRAME_NAMES, SOURCE_FILE, SOURCE_LINE, Dataset
from fincome_toolkit.journal import Journal
from fincome_toolkit.upload_result import html_table

if TYPE_CHECKING:
    from fincome_toolkit.audit import AuditResult

SINGULAR = {"customers": "customer", "subscriptions": "subscription", "invoices": "invoice"}
ENTITY_RANK = {name: rank for rank, name in enumerate(FRAME_NAMES)}
ACTIONS = ("send", "skip", "rejected", "held_back")
_BLOCKING = ("rejected", "held_back")  # a record referencing one of these cannot be sent

PLAN_SCHEMA: dict[str, pl.DataType] = {
    "entity": pl.String(),
    "record_id": pl.String(),
    "action": pl.String(),
    "reason": pl.String(),
    "payload_hash": pl.String(),
    SOURCE_FILE: pl.String(),
    SOURCE_LINE: pl.Int64(),
    "depth": pl.Int64(),  # customers: level in the parent hierarchy (0 = no parent in the export)
    "row": pl.Int64(),  # index of the row (and payload) in its frame
}
EDGE_SCHEMA: dict[str, pl.DataType] = {
    "entity": pl.String(),
    "record_id": pl.String(),
    "target": pl.String(),
    "referenced_id": pl.String(),
}


@dataclass(frozen=True)
class UploadPlan:
    """The decision for every row (`records`), the payloads, and the references between records.

    `records` has `PLAN_SCHEMA`; `edges` lists, for records to send, the records to send first.
    """

    records: pl.DataFrame
    payloads: Mapping[str, list[dict[str, Any]]]
    edges: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=EDGE_SCHEMA))

    def counts(self) -> pl.DataFrame:
        """One row per entity: `entity, total, send, skip, rejected, held_back`."""
        base = pl.DataFrame({"entity": list(FRAME_NAMES)})
        wide = (
            self.records.group_by("entity", "action")
            .len()
            .pivot(on="action", index="entity", values="len")
        )
        counts = base.join(wide, on="entity", how="left")
        actions = (
            pl.col(a).fill_null(0) if a in counts.columns else pl.lit(0).alias(a) for a in ACTIONS
        )
        return (
            counts.select("entity", *actions)
            .cast(dict.fromkeys(ACTIONS, pl.Int64))
            .with_columns(total=pl.sum_horizontal(ACTIONS))
            .select("entity", "total", *ACTIONS)
        )

    def to_send(self) -> pl.DataFrame:
        """Records to send, in sending order: customers by depth, subscriptions, invoices."""
        return (
            self.records.filter(pl.col("action") == "send")
            .with_columns(rank=pl.col("entity").replace_strict(ENTITY_RANK, return_dtype=pl.Int64))
            .sort("rank", "depth", "row")
            .drop("rank")
        )

    def payload(self, entity: str, row: int) -> dict[str, Any]:
        """The JSON payload of one row."""
        return self.payloads[entity][row]

    def to_frame(self) -> pl.DataFrame:
        """The per-record plan (without the internal `row` and `depth`)."""
        return self.records.drop("row", "depth")

    def write(self, out_dir: Path | str) -> Path:
        """Write `<entity>.ndjson` (payloads to send, in order), `plan.csv` and `plan.json`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        to_send = self.to_send()
        for entity in FRAME_NAMES:
            rows = to_send.filter(pl.col("entity") == entity).get_column("row").to_list()
            lines = (canonical_json(self.payload(entity, row)) + "\n" for row in rows)
            (out / f"{entity}.ndjson").write_text("".join(lines), encoding="utf-8")
        self.to_frame().write_csv(out / "plan.csv")
        summary = {
            "counts": self.counts().to_dicts(),
            "files": [f"{e}.ndjson" for e in FRAME_NAMES],
        }
        (out / "plan.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
        return out

    def _repr_html_(self) -> str:
        return html_table(self.counts(), title="Upload plan")


# --- building the plan ------------------------------------------------------------------------


def plan_upload(
    dataset: Dataset,
    *,
    audit: AuditResult | None = None,
    journal: Journal | None = None,
    force: bool = False,
    retry_rejected: bool = False,
) -> UploadPlan:
    """Decide, for every row of `dataset`, whether to send, skip or hold it back (no network)."""
    payloads: dict[str, list[dict[str, Any]]] = {}
    parts = []
    for entity in FRAME_NAMES:
        frame = dataset.frame(entity)
        payloads[entity] = build_payloads(entity, frame)
        parts.append(_rows(entity, frame, [payload_hash(p) for p in payloads[entity]]))
    records = pl.concat(parts)
    edges = _edges(dataset)

    known = journal.to_frame() if journal is not None else None  # read once

    records = _hold_bad_ids(records)
    records = _apply_journal(records, known, retry_rejected=retry_rejected)
    if audit is not None and not force:
        records = _hold_audit_blocked(records, audit)
    records = _hold_unknown_references(records, edges, known, force=force)
    records = _with_depth(records, edges)
    records = _propagate_holds(records, edges)
    sendable = records.filter(pl.col("action") == "send").select("entity", "record_id")
    targets = sendable.rename({"entity": "target", "record_id": "referenced_id"})
    send_edges = edges.join(sendable, on=["entity", "record_id"], how="semi").join(
        targets, on=["target", "referenced_id"], how="semi"
    )
    return UploadPlan(records=records, payloads=payloads, edges=send_edges.unique())


def dry_run(
    dataset: Dataset,
    out_dir: Path | str,
    *,
    audit: AuditResult | None = None,
    settings: ContractSettings | None = None,
    journal: Journal | None = None,
    force: bool = False,
    retry_rejected: bool = False,
) -> UploadPlan:
    """Plan the upload and write the exact payloads and the plan to `out_dir`; no network.

    `settings` is accepted so a dry run is called like an upload; payloads do not depend on it.
    """
    del settings  # the payload builders follow A9/A10, which settings do not change
    plan = plan_upload(
        dataset, audit=audit, journal=journal, force=force, retry_rejected=retry_rejected
    )
    plan.write(out_dir)
    return plan


def _rows(entity: str, frame: pl.DataFrame, hashes: list[str]) -> pl.DataFrame:
    return frame.select(
        pl.lit(entity).alias("entity"),
        pl.col("id").alias("record_id"),
        pl.lit("send").alias("action"),
        pl.lit(None, pl.String).alias("reason"),
        pl.Series("payload_hash", hashes, dtype=pl.String),
        pl.col(SOURCE_FILE),
        pl.col(SOURCE_LINE),
        pl.lit(0, pl.Int64).alias("depth"),
        pl.int_range(pl.len(), dtype=pl.Int64).alias("row"),
    ).cast(PLAN_SCHEMA)


def _edges(dataset: Dataset) -> pl.DataFrame:
    parts = [
        referenced_ids(entity, dataset.frame(entity))
        .select(pl.lit(entity).alias("entity"), "record_id", "target", "referenced_id")
        .filter(pl.col("record_id").is_not_null())
        for entity in FRAME_NAMES
    ]
    return pl.concat([pl.DataFrame(schema=EDGE_SCHEMA), *parts]).unique()


def _hold(records: pl.DataFrame, held: pl.DataFrame, *, action: str = "held_back") -> pl.DataFrame:
    """Set `action` and `reason` on the rows of `held` (`entity, row, reason`) still to send."""
    update = held.select("entity", "row", pl.lit(action).alias("action"), "reason").unique(
        ["entity", "row"], keep="first", maintain_order=True
    )
    still_to_send = records.filter(pl.col("action") == "send")
    return records.update(
        update.join(still_to_send, on=["entity", "row"], how="semi"), on=["entity", "row"]
    )


def _rows_of(records: pl.DataFrame, reasons: pl.DataFrame) -> pl.DataFrame:
    """`entity, row, reason` for the rows to send whose id has a reason (`entity, record_id`)."""
    return (
        records.filter(pl.col("action") == "send")
        .select("entity", "record_id", "row")
        .join(reasons.select("entity", "record_id", "reason"), on=["entity", "record_id"])
    )


def _hold_bad_ids(records: pl.DataFrame) -> pl.DataFrame:
    """Hold rows without an id; drop exact repeats; hold ids repeated with other content."""
    no_id = records.filter(pl.col("record_id").str.strip_chars().fill_null("") == "")
    records = _hold(
        records,
        no_id.with_columns(
            reason=pl.lit("the row has no id; Fincome needs one to avoid duplicates")
        ),
    )
    # Identical repeats are one record: keep the first row (the audit reports the repeat).
    keyed = records.filter(pl.col("action") == "send")
    repeats = keyed.filter(pl.struct("entity", "record_id", "payload_hash").is_duplicated())
    first = repeats.group_by("entity", "record_id", "payload_hash").agg(pl.col("row").min())
    extra = repeats.join(first, on=["entity", "record_id", "payload_hash", "row"], how="anti")
    records = records.join(extra, on=["entity", "row"], how="anti")
    # The same id with different contents: which one is right is the analyst's call.
    keyed = records.filter(pl.col("action") == "send")
    clashing = keyed.filter(pl.struct("entity", "record_id").is_duplicated()).with_columns(
        reason=pl.format(
            "id {} appears on lines {} with different content; keep one row per id",
            "record_id",
            pl.col(SOURCE_LINE)
            .sort()
            .cast(pl.String)
            .fill_null("?")
            .str.join(", ")
            .over("entity", "record_id"),
        )
    )
    return _hold(records, clashing)


def _apply_journal(
    records: pl.DataFrame, known: pl.DataFrame | None, *, retry_rejected: bool
) -> pl.DataFrame:
    """Skip what Fincome already holds unchanged; keep unchanged rejects rejected unless asked.

    `known` is the journal's frame (`journal.JOURNAL_SCHEMA`), None without a journal.
    """
    if known is None:
        return records
    known = known.select(
        "entity", "record_id", "state", pl.col("payload_hash").alias("journal_hash"), "message"
    )
    seen = records.join(known, on=["entity", "record_id"], how="inner").filter(
        pl.col("payload_hash") == pl.col("journal_hash")
    )
    skipped = seen.filter(pl.col("state") == "acknowledged").with_columns(
        reason=pl.lit("acknowledged in an earlier run, unchanged")
    )
    records = _hold(records, skipped, action="skip")
    if retry_rejected:
        return records
    rejected = seen.filter(pl.col("state") == "rejected").with_columns(
        reason=pl.format("rejected in an earlier run: {}", pl.col("message").fill_null("?"))
    )
    return _hold(records, rejected, action="rejected")


def _hold_audit_blocked(records: pl.DataFrame, audit: AuditResult) -> pl.DataFrame:
    """Hold records with error-severity audit issues, quoting the issues."""
    blocked = audit.blocked_records().select(
        pl.col("frame").alias("entity"), pl.col("record_id").cast(pl.String)
    )
    messages = (
        audit.issues.filter(pl.col("severity") == "error")
        .group_by(pl.col("frame").alias("entity"), "record_id", maintain_order=True)
        .agg(
            pl.format("{}: {}", "rule", "message")
            .unique(maintain_order=True)
            .str.join("; ")
            .alias("messages")
        )
    )
    reasons = (
        blocked.unique()
        .join(messages, on=["entity", "record_id"], how="left")
        .select(
            "entity",
            "record_id",
            reason=pl.concat_str(
                pl.lit("error issues in the audit: "),
                pl.col("messages").fill_null("see the audit report"),
            ),
        )
    )
    return _hold(records, _rows_of(records, reasons))


def _hold_unknown_references(
    records: pl.DataFrame, edges: pl.DataFrame, known: pl.DataFrame | None, *, force: bool
) -> pl.DataFrame:
    """Hold records referencing ids that are neither in the export nor acknowledged (not forced)."""
    present = records.select(
        pl.col("entity").alias("target"), pl.col("record_id").alias("referenced_id")
    )
    unknown = edges.join(present, on=["target", "referenced_id"], how="anti")
    if known is not None:
        acknowledged = known.filter(pl.col("state") == "acknowledged")
        unknown = unknown.join(
            acknowledged.select(
                pl.col("entity").alias("target"), pl.col("record_id").alias("referenced_id")
            ),
            on=["target", "referenced_id"],
            how="anti",
        )
    if force or unknown.is_empty():
        return records  # forced: Fincome itself will say whether the reference exists
    reasons = (
        unknown.sort("target", "referenced_id")
        .group_by("entity", "record_id", maintain_order=True)
        .first()
        .with_columns(
            reason=pl.format(
                "refers to {} {}, which is neither in this export nor already in Fincome",
                pl.col("target").replace_strict(SINGULAR),
                "referenced_id",
            )
        )
    )
    return _hold(records, _rows_of(records, reasons))


def _with_depth(records: pl.DataFrame, edges: pl.DataFrame) -> pl.DataFrame:
    """Customers' depth in the parent hierarchy; customers in a parent cycle are held back."""
    customers = records.filter(pl.col("entity") == "customers").select("record_id", "row")
    parents = edges.filter(pl.col("entity") == "customers").select(
        "record_id", pl.col("referenced_id").alias("parent")
    )
    # A parent outside the export (acknowledged earlier, or forced) counts as a root.
    parents = parents.join(
        customers.select(pl.col("record_id").alias("parent")), on="parent", how="semi"
    )
    depth = (
        customers.select("record_id", pl.lit(0, pl.Int64).alias("depth"))
        .join(parents, on="record_id", how="anti")
        .unique("record_id")
    )
    frontier = depth
    while not frontier.is_empty():
        frontier = (
            parents.join(frontier.rename({"record_id": "parent"}), on="parent")
            .select("record_id", (pl.col("depth") + 1).alias("depth"))
            .join(depth, on="record_id", how="anti")
            .unique("record_id")
        )
        depth = pl.concat([depth, frontier])
    in_cycle = customers.join(depth, on="record_id", how="anti").join(
        parents, on="record_id", how="semi"
    )
    records = _hold(
        records,
        in_cycle.select(
            pl.lit("customers").alias("entity"),
            "row",
            reason=pl.lit(
                "its chain of parents (root_parent_id) loops and never reaches a top-level "
                "customer; break the cycle"
            ),
        ),
    )
    return records.update(
        customers.join(depth, on="record_id").select(
            pl.lit("customers").alias("entity"), "row", "depth"
        ),
        on=["entity", "row"],
    )


def _propagate_holds(records: pl.DataFrame, edges: pl.DataFrame) -> pl.DataFrame:
    """Hold every record that references, directly or not, a record that is held or rejected."""
    blocked = records.filter(pl.col("action").is_in(_BLOCKING))
    while not blocked.is_empty():
        causes = blocked.select(
            pl.col("entity").alias("target"),
            pl.col("record_id").alias("referenced_id"),
            pl.col("reason").alias("cause"),
            pl.when(pl.col("action") == "rejected")
            .then(pl.lit("was rejected"))
            .otherwise(pl.lit("is held back"))
            .alias("why"),
        ).unique(["target", "referenced_id"])
        waiting = (
            edges.join(causes, on=["target", "referenced_id"])
            .sort("target", "referenced_id")
            .group_by("entity", "record_id", maintain_order=True)
            .first()
            .with_columns(
                reason=pl.format(
                    "waiting on {} {}, which {}: {}",
                    pl.col("target").replace_strict(SINGULAR),
                    "referenced_id",
                    "why",
                    "cause",
                )
            )
        )
        newly = _rows_of(records, waiting)
        records = _hold(records, newly)
        blocked = newly.with_columns(action=pl.lit("held_back"))
    return records
