"""Benchmark data: canonical-style CSV exports made by the sample generator, cached by size + seed.

A size of N invoices asks for N / 20 customers and N / 10 subscriptions. Two variants:
"clean" (no planted defect: what peers can read with type inference) and "dirty" (the
generator's planted defects: parse issues and rule failures, to show the audit's issue rows).
Each folder holds `customers.csv`, `subscriptions.csv`, `invoices.csv`, `mapping.toml`,
`manifest.csv`, `canonical/*.parquet` (the generator's typed frames, for the metrics step) and
`ready.json`, written last: a folder without it is generated again.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

READY = "ready.json"
VARIANTS = ("clean", "dirty")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmM]?)\s*$")


def parse_size(text: str) -> int:
    """'100k' → 100_000, '1M' → 1_000_000, '2500' → 2500."""
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"cannot read the size {text!r}: use e.g. 2k, 100k, 1M, 10M")
    number, unit = float(match[1]), match[2].lower()
    return int(number * {"": 1, "k": 1_000, "m": 1_000_000}[unit])


def size_label(invoices: int) -> str:
    """1_000_000 → '1M', 100_000 → '100k', 2500 → '2500'."""
    if invoices % 1_000_000 == 0:
        return f"{invoices // 1_000_000}M"
    if invoices % 1_000 == 0:
        return f"{invoices // 1_000}k"
    return str(invoices)


def data_folder(root: Path, invoices: int, seed: int, variant: str) -> Path:
    """Where the export of this size, seed and variant is cached."""
    return root / f"{variant}-{size_label(invoices)}-seed{seed}"


def is_ready(folder: Path) -> bool:
    """Whether the folder holds a complete export."""
    return (folder / READY).is_file()


def generate_export(folder: Path, *, invoices: int, seed: int, variant: str) -> dict[str, Any]:
    """Generate and write one export into `folder` (replacing a partial one); return its facts."""
    import time

    from fincome_toolkit.sample import generate, write_export

    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: use clean or dirty")
    if folder.exists():
        shutil.rmtree(folder)
    started = time.perf_counter()
    result = generate(
        customers=max(1, invoices // 20),
        subscriptions=max(1, invoices // 10),
        invoices=invoices,
        seed=seed,
        defects=variant == "dirty",
    )
    generated = time.perf_counter()
    write_export(result, folder, style="canonical", formats="csv")
    canonical = folder / "canonical"
    canonical.mkdir()
    for name, frame in result.dataset.frames().items():
        frame.write_parquet(canonical / f"{name}.parquet")
    facts = {
        "invoices_requested": invoices,
        "seed": seed,
        "variant": variant,
        "rows": result.counts,
        "planted_defects": result.manifest.height,
        "generate_seconds": round(generated - started, 3),
        "write_seconds": round(time.perf_counter() - generated, 3),
        "csv_mb": round(sum(f.stat().st_size for f in folder.glob("*.csv")) / 2**20, 1),
    }
    (folder / READY).write_text(json.dumps(facts, indent=2), encoding="utf-8")
    return facts
