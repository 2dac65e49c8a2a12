"""Writing a generated sample the way real exports look, with the mapping that reads it back.

Style "erp" imitates a French ERP: `factures.csv` (`;`-separated, cp1252, comma decimals,
DD/MM/YYYY dates), `abonnements.json` (an array of objects), `clients.xlsx`; French column names,
statuses, currencies and countries in mixed spellings the loader knows, custom properties as extra
columns. Style "canonical" writes canonical column names as CSV, Parquet or NDJSON, fast enough
for tens of millions of rows. Both write `mapping.toml` (loads the folder with
`loading.load_dataset`) and `manifest.csv` (the planted defects).

Parse-level defects exist only here: the raw text of each manifest row replaces the (null) value
of its record, so the loader reports exactly the parse issues the manifest predicts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl
import xlsxwriter

from fincome_toolkit.errors import ConfigError, InputError
from fincome_toolkit.frames import FIELDS, FRAME_NAMES, MONEY
from fincome_toolkit.sample_defects import PARSE_LEVEL

if TYPE_CHECKING:
    from fincome_toolkit.sample import SampleResult

ExportStyle = Literal["erp", "canonical"]
ExportFormats = str | Mapping[str, str] | None
CANONICAL_FORMATS = ("csv", "parquet", "ndjson")
ERP_FORMATS = {"customers": "xlsx", "subscriptions": "json", "invoices": "csv"}
ERP_STEMS = {"customers": "clients", "subscriptions": "abonnements", "invoices": "factures"}
EXCEL_MAX_ROWS = 1_048_575
CSV_ENCODING = "cp1252"

ERP_COLUMNS: dict[str, dict[str, str]] = {
    "customers": {
        "id": "Code client", "name": "Raison sociale", "email": "E-mail", "country": "Pays",
        "zip_code": "Code postal", "root_parent_id": "Société mère",
    },
    "subscriptions": {
        "id": "Référence", "customer_id": "Code client", "plan_id": "Offre", "status": "Statut",
        "start_date": "Date début", "end_date": "Date fin", "cancelled_at": "Date résiliation",
        "interval_unit": "Périodicité", "quantity": "Quantité",
        "amount_excluding_tax": "Prix HT", "currency": "Devise",
    },
    "invoices": {
        "id": "N° facture", "customer_id": "Code client", "subscription_id": "Réf abonnement",
        "issue_date": "Date facture", "due_date": "Date échéance", "status": "Statut",
        "type": "Type", "period_start": "Début période", "period_end": "Fin période",
        "amount_excluding_tax": "Montant HT", "tax_amount": "TVA", "currency": "Devise",
    },
}  # fmt: skip

# Spellings drawn per row (the first, canonical-looking one most often). Only spellings the
# loader knows, plus the ERP's own words declared in mapping.toml's status_synonyms.
ERP_SYNONYMS = {"lettrée": "paid", "reconduit": "active"}
SPELLINGS: dict[tuple[str, str], dict[str, tuple[str, ...]]] = {
    ("invoices", "status"): {
        "paid": ("Payée", "Payée", "PAID", "payé", "réglé", "settled", "lettrée"),
        "open": ("En attente", "Open", "pending", "due", "à payer"),
        "unpaid": ("Impayé", "Unpaid", "overdue", "en retard"),
    },
    ("invoices", "type"): {"subscription": ("Abonnement",), "one_off": ("Ponctuel",)},
    ("subscriptions", "status"): {
        "active": ("Actif", "Actif", "active", "reconduit"),
        "cancelled": ("Résilié", "Résilié", "cancelled", "CANCELED"),
        "ended": ("Terminé", "Terminé", "ended", "expiré"),
    },
    ("*", "currency"): {
        "EUR": ("EUR", "EUR", "EUR", "€", "€", "euro"),
        "USD": ("USD", "USD", "USD", "$", "$", "dollar"),
        "GBP": ("GBP", "GBP", "GBP", "£", "£", "livre sterling"),
    },
    ("customers", "country"): {
        "FR": ("FR", "FR", "France", "France"), "DE": ("DE", "DE", "Germany", "Allemagne"),
        "ES": ("ES", "ES", "Spain", "Espagne"), "IT": ("IT", "IT", "Italy", "Italie"),
        "NL": ("NL", "NL", "Netherlands", "Pays-Bas"), "BE": ("BE", "BE", "Belgium", "Belgique"),
        "IE": ("IE", "IE", "Ireland", "Irlande"),
        "GB": ("GB", "GB", "United Kingdom", "Royaume-Uni"),
        "US": ("US", "US", "United States", "États-Unis"), "CA": ("CA", "CA", "Canada", "Canada"),
    },
}  # fmt: skip
PERIODICITY = {1: "mensuel", 3: "trimestriel", 12: "annuel"}


def write_export(
    result: SampleResult,
    out_dir: str | Path,
    *,
    style: ExportStyle = "erp",
    formats: ExportFormats = None,
) -> dict[str, Path]:
    """Write the three frames, `mapping.toml` and `manifest.csv` into `out_dir`; return the paths.

    `formats`: for style "canonical", one of csv/parquet/ndjson for every frame or a mapping
    frame → format (default csv); for style "erp", overrides per frame of the default
    xlsx/json/csv (e.g. `{"customers": "parquet"}` when there are more rows than Excel holds).
    """
    chosen = _formats(style, formats)
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise InputError(f"cannot create the folder: {error.strerror}", where=str(folder)) from None
    rng = np.random.default_rng([result.seed, 1])  # spellings: deterministic, apart from the data
    written: dict[str, Path] = {}
    for name in FRAME_NAMES:
        stem = ERP_STEMS[name] if style == "erp" else name
        path = folder / f"{stem}.{chosen[name]}"
        frame = result.dataset.frame(name).drop("source_file", "source_line")
        if style == "erp":
            frame = _erp_frame(name, frame, rng, chosen[name])
        frame = _with_raw_values(name, frame, result.manifest, style)
        _write_frame(frame, path, chosen[name], erp=style == "erp", created=result.as_of)
        written[name] = path
    written["mapping"] = folder / "mapping.toml"
    written["mapping"].write_text(mapping_toml(result, style, written), encoding="utf-8")
    written["manifest"] = folder / "manifest.csv"
    result.manifest.write_csv(written["manifest"])
    return written


def _formats(style: str, formats: ExportFormats) -> dict[str, str]:
    """The file format of each frame, checked."""
    if style not in ("erp", "canonical"):
        raise ConfigError(f"unknown export style {style!r}", fix="use 'erp' or 'canonical'")
    default = ERP_FORMATS if style == "erp" else dict.fromkeys(FRAME_NAMES, "csv")
    given = dict.fromkeys(FRAME_NAMES, formats) if isinstance(formats, str) else dict(formats or {})
    chosen = {**default, **given}
    allowed = (*CANONICAL_FORMATS, "json", "xlsx") if style == "erp" else CANONICAL_FORMATS
    for name, fmt in chosen.items():
        if name not in FIELDS or fmt not in allowed:
            raise ConfigError(
                f"cannot write {name} as {fmt!r} in the {style} style",
                fix=f"frames: {', '.join(FRAME_NAMES)}; formats: {', '.join(allowed)}",
            )
    return chosen


def _spelled(values: pl.Series, spellings: Mapping[str, tuple[str, ...]], rng) -> pl.Series:
    """Each canonical value replaced by one of its spellings, drawn per row (vectorised)."""
    choices = {key: list(words) for key, words in spellings.items()}
    draw = pl.Series(rng.integers(0, 1 << 30, len(values)))
    options = values.cast(pl.String).replace_strict(
        choices, default=None, return_dtype=pl.List(pl.String)
    )
    frame = pl.DataFrame({"options": options, "draw": draw})
    return frame.select(
        pl.col("options").list.get(pl.col("draw") % pl.col("options").list.len(), null_on_oob=True)
    ).to_series()


def _erp_frame(name: str, frame: pl.DataFrame, rng, fmt: str) -> pl.DataFrame:
    """Canonical → ERP-looking columns: French names, messy spellings, custom properties as
    extra columns. Text dates and comma decimals in CSV; ISO dates and numbers in JSON."""
    columns = {}
    for field, header in ERP_COLUMNS[name].items():
        spellings = SPELLINGS.get((name, field)) or SPELLINGS.get(("*", field))
        value = frame[field]
        if field == "interval_unit":
            months = frame.select(
                pl.when(pl.col("interval_unit") == "year").then(12).otherwise("interval_count")
            ).to_series()
            value = months.replace_strict(PERIODICITY, return_dtype=pl.String)
        elif spellings:
            value = _spelled(value, spellings, rng)
        elif value.dtype == pl.Date:
            value = value.dt.strftime("%d/%m/%Y" if fmt == "csv" else "%Y-%m-%d")
        elif value.dtype == MONEY:
            value = _comma_decimals(value) if fmt == "csv" else value.cast(pl.Float64)
        columns[header] = value.alias(header)
    return pl.DataFrame(columns).hstack(_custom_columns(frame["custom_properties"]))


def _comma_decimals(amounts: pl.Series) -> pl.Series:
    """`1234.5` → `1 234,50` (a space between thousands) or `1234,50`, alternating by row."""
    text = amounts.cast(pl.String)
    frame = pl.DataFrame({"t": text}).with_row_index("i")
    whole = pl.col("t").str.extract(r"^(-?\d+)\.", 1)
    cents = pl.col("t").str.extract(r"\.(\d+)$", 1)
    grouped = whole.str.replace(r"(\d)(\d{3})$", "$1 $2").str.replace(r"(\d)(\d{3}) ", "$1 $2 ")
    short = whole.str.len_chars() <= 7  # at most two groups of thousands
    spaced = pl.when((pl.col("i") % 2 == 0) & short).then(grouped).otherwise(whole)
    return frame.select(pl.concat_str(spaced, pl.lit(","), cents)).to_series()


def _custom_columns(custom: pl.Series) -> pl.DataFrame:
    """The custom properties as one column per key (the loader packs them back)."""
    if custom.is_null().all() or (custom == "{}").all():
        return pl.DataFrame()
    return custom.str.json_decode().struct.unnest()


def _with_raw_values(
    name: str, frame: pl.DataFrame, manifest: pl.DataFrame, style: str
) -> pl.DataFrame:
    """Write each planted parse-level raw text over its (null) value."""
    planted = manifest.filter(pl.col("frame") == name, pl.col("kind").is_in(list(PARSE_LEVEL)))
    id_column = ERP_COLUMNS[name]["id"] if style == "erp" else "id"
    for column, rows in planted.group_by("column", maintain_order=True):
        header = ERP_COLUMNS[name][column[0]] if style == "erp" else column[0]
        at = frame.with_row_index("_i").join(
            rows.select(pl.col("id").alias(id_column), "detail"), on=id_column
        )
        text = frame[header].cast(pl.String).scatter(at["_i"], at["detail"])
        frame = frame.with_columns(text.alias(header))
    return frame


def _write_frame(frame: pl.DataFrame, path: Path, fmt: str, *, erp: bool, created: date) -> None:
    """One frame in one format; the Excel file's dates are fixed so that it is reproducible."""
    if fmt == "csv" and erp:
        text = frame.write_csv(separator=";")
        path.write_bytes(text.encode(CSV_ENCODING))
    elif fmt == "csv":
        frame.write_csv(path)
    elif fmt == "parquet":
        frame.write_parquet(path)
    elif fmt == "ndjson":
        frame.write_ndjson(path)
    elif fmt == "json":
        path.write_text(frame.write_json(), encoding="utf-8")
    else:
        if frame.height > EXCEL_MAX_ROWS:
            raise ConfigError(
                f"{frame.height:,} rows do not fit in an Excel sheet",
                where=str(path),
                fix='write that frame as Parquet: formats={"customers": "parquet"}',
            )
        workbook = xlsxwriter.Workbook(path)
        workbook.set_properties({"created": datetime(created.year, created.month, created.day)})
        frame.write_excel(workbook=workbook, worksheet=path.stem, autofit=False)
        workbook.close()


def mapping_toml(result: SampleResult, style: str, written: Mapping[str, Path]) -> str:
    """The mapping file that loads this export with `loading.load_dataset`."""
    lines = [
        f"# Reads this {style}-style sample export (fincome_toolkit.sample, seed {result.seed}).",
        "# Commands taking a data folder (fincome-toolkit audit/clean DIR) pick this file up;",
        '# in Python: loading.load_dataset(DIR, mapping=DIR / "mapping.toml").',
        "",
        "[options]",
        f"day_first = {'true' if style == 'erp' else 'false'}",
    ]
    if style == "erp":
        lines += ['extra_columns = "custom_properties"', "", "[options.status_synonyms]"]
        lines += [f"{_toml(word)} = {_toml(value)}" for word, value in ERP_SYNONYMS.items()]
    else:
        lines += ["decimal_comma = false"]
    for name in FRAME_NAMES:
        lines += ["", f"[{name}]", f"file = {_toml(written[name].name)}"]
        if style == "erp":
            lines += ["", f"[{name}.columns]"]
            lines += [f"{field} = {_toml(header)}" for field, header in ERP_COLUMNS[name].items()]
            if name == "subscriptions":  # "trimestriel" x 1 = every 3 months
                lines += ["", f"[{name}.constants]", "interval_count = 1"]
    return "\n".join(lines) + "\n"


def _toml(text: str) -> str:
    """A TOML basic string (JSON string syntax is valid TOML for these values)."""
    return json.dumps(text, ensure_ascii=False)
