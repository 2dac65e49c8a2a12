"""Benchmarks of fincome_toolkit against the polars reading floor and peers: `./dev bench`.

    ./dev bench                                   # 100k and 1M invoices, every step
    ./dev bench --sizes 10M --only audit,metrics  # one size, some steps
    ./dev bench --sizes 2k --only upload --upload-invoices 100 --out /tmp/r.json --no-readme

Data comes from the sample generator (canonical CSV, cached in --data-dir by size + seed). Each
measurement runs in a fresh interpreter (child.py) that reports its own wall time and peak RSS.
Results are merged into --out (JSON, keyed by size, variant and step) and the table in
benchmarks/README.md is rewritten from that file, between its result markers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import datasets  # noqa: E402
import subset  # noqa: E402
import tables  # noqa: E402

from fincome_toolkit.sample import AS_OF as SAMPLE_AS_OF  # noqa: E402

AS_OF = SAMPLE_AS_OF.isoformat()  # the day the generated histories end: audit "today" there

# Step groups accepted by --only, in running order. Each step: (name, variant).
GROUPS: dict[str, list[tuple[str, str]]] = {
    "floor": [("floor_strings", "clean"), ("floor_infer", "clean")],
    "load": [("load", "clean")],
    "audit": [("audit", "clean"), ("audit", "dirty")],
    "report": [("report", "dirty")],
    "subset": [("toolkit_subset", "clean")],
    "pointblank": [("pointblank", "clean")],
    "pandera": [("pandera_pandas", "clean")],
    "metrics": [("metrics", "clean")],
    "upload": [("upload", "clean")],
}
PEERS = ("subset", "pointblank", "pandera")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--sizes", default="100k,1M", help="invoice counts, e.g. 100k,1M,10M")
    parser.add_argument(
        "--only", default=",".join(GROUPS), help=f"steps among: {', '.join(GROUPS)}, peers"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    parser.add_argument("--data-dir", type=Path, default=HERE / ".data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per measurement")
    parser.add_argument(
        "--peer-max", default="1M", help="largest size the peers and the subset run at"
    )
    parser.add_argument("--upload-invoices", type=int, default=3000)
    parser.add_argument("--upload-concurrency", default="32,64")
    parser.add_argument("--sequential-seconds", type=float, default=20.0)
    parser.add_argument("--regenerate", action="store_true", help="ignore cached data")
    parser.add_argument("--readme", type=Path, default=HERE / "README.md")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    return parser.parse_args(argv)


def selected_groups(only: str) -> list[str]:
    """The groups named by --only ('peers' stands for subset, pointblank and pandera)."""
    names: list[str] = []
    for item in (part.strip() for part in only.split(",") if part.strip()):
        expanded = PEERS if item == "peers" else (item,)
        for name in expanded:
            if name not in GROUPS:
                raise SystemExit(f"unknown step {name!r}: use some of {', '.join(GROUPS)}, peers")
            names.append(name)
    return [name for name in GROUPS if name in names]


def run_child(step: str, data_dir: Path, args: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return what it reported."""
    command = [sys.executable, str(HERE / "child.py"), step, str(data_dir), json.dumps(args)]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH_RESULT ")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-12:]
        return {"error": f"exit {done.returncode}: " + "\n".join(tail)}
    result = json.loads(lines[-1].removeprefix("BENCH_RESULT "))
    result["process_seconds"] = round(time.perf_counter() - started, 3)
    return result


def ensure_data(root: Path, invoices: int, seed: int, variant: str, options) -> tuple[Path, Any]:
    """The cached export folder, generated (in a child, measured) when missing."""
    folder = datasets.data_folder(root, invoices, seed, variant)
    if datasets.is_ready(folder) and not options.regenerate:
        return folder, None
    print(f"  generating {variant} data, {datasets.size_label(invoices)} invoices...", flush=True)
    args = {"invoices": invoices, "seed": seed, "variant": variant}
    measured = run_child("generate", folder, args, timeout=options.timeout)
    if "error" in measured:
        print(f"  generation failed: {measured['error']}", flush=True)
    return folder, measured


def step_args(step: str, options, out_dir: Path, label: str) -> dict[str, Any]:
    """What a step needs beyond its data folder."""
    if step in ("audit", "toolkit_subset"):
        return {"as_of": AS_OF}
    if step == "report":
        return {"as_of": AS_OF, "out": str(out_dir / f"report-{label}.html")}
    if step in ("pointblank", "pandera_pandas"):
        return {"checks": subset.as_data(subset.subset_checks())}
    if step == "upload":
        return {
            "invoices": options.upload_invoices,
            "concurrency": [int(c) for c in options.upload_concurrency.split(",")],
            "sequential_seconds": options.sequential_seconds,
        }
    return {}


def load_results(path: Path) -> list[dict[str, Any]]:
    """Earlier results, so a partial run (--only, --sizes) keeps the others."""
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8")).get("results", [])
    return []


def save_results(path: Path, results: list[dict[str, Any]], machine: dict[str, Any]) -> None:
    """Write the merged results with the machine they were measured on."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {"machine": machine, "results": results}
    path.write_text(json.dumps(body, indent=2, default=str) + "\n", encoding="utf-8")


def merge(results: list[dict[str, Any]], entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Replace the entry of the same size, variant and step, or add it."""
    key = (entry["invoices"], entry["variant"], entry["step"])
    kept = [r for r in results if (r["invoices"], r["variant"], r["step"]) != key]
    return [*kept, entry]


def main(argv: list[str] | None = None) -> int:
    """Run the selected measurements, save them and rewrite the README table."""
    options = parse_args(argv)
    sizes = [datasets.parse_size(s) for s in options.sizes.split(",") if s.strip()]
    groups = selected_groups(options.only)
    peer_max = datasets.parse_size(options.peer_max)
    machine = tables.describe_machine()
    results = load_results(options.out)
    scratch = options.data_dir / "reports"
    scratch.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine['summary']}", flush=True)
    for invoices in sizes:
        label = datasets.size_label(invoices)
        for group in groups:
            if group in PEERS and invoices > peer_max:
                continue
            if group == "upload" and invoices != sizes[0]:
                continue  # the upload does not depend on the data size
            for step, variant in GROUPS[group]:
                folder, generated = ensure_data(
                    options.data_dir, invoices, options.seed, variant, options
                )
                if generated is not None:
                    results = merge(results, _entry(invoices, variant, "generate", generated))
                    if "error" in generated:
                        continue
                print(f"  {label} {variant} {step}...", end=" ", flush=True)
                args = step_args(step, options, scratch, f"{label}-{variant}")
                measured = run_child(step, folder, args, timeout=options.timeout)
                print(tables.one_line(measured), flush=True)
                results = merge(results, _entry(invoices, variant, step, measured))
                save_results(options.out, results, machine)
    save_results(options.out, results, machine)
    table = tables.markdown_table(results)
    print(table)
    if not options.no_readme:
        tables.update_readme(options.readme, machine, table, command=_command(argv))
    return 0


def _entry(invoices: int, variant: str, step: str, measured: dict[str, Any]) -> dict[str, Any]:
    return {
        "invoices": invoices,
        "size": datasets.size_label(invoices),
        "variant": variant,
        "step": step,
        **measured,
        "measured_at": dt.datetime.now().isoformat(timespec="seconds"),
        "load_average": round(os.getloadavg()[0], 2),
    }


def _command(argv: list[str] | None) -> str:
    shown = sys.argv[1:] if argv is None else argv
    return " ".join(["./dev bench", *shown])


if __name__ == "__main__":
    raise SystemExit(main())
