"""The machine description and the results table (markdown) of the benchmarks, and the README
section they are written into."""

from __future__ import annotations

import os
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

START, END = "<!-- results:start -->", "<!-- results:end -->"
GB = 1024  # MB
TARGET_RATIO_TO_FLOOR = 4.0
TARGET_RSS_10M_MB = 6 * GB
TARGET_METRICS_10M_S = 10.0
TARGET_UPLOAD_SPEEDUP = 10.0
TARGET_RATE_FRACTION = 0.9
PEER_STEPS = {"pointblank": "pointblank", "pandera_pandas": "pandas+pandera"}


def describe_machine() -> dict[str, Any]:
    """CPU, memory and versions, as facts and as one summary line."""
    model = "unknown CPU"
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        total_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo.read())[1])
    versions = {}
    for package in ("polars", "pandera", "pointblank", "pandas", "great-tables", "httpx"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "absent"
    facts = {
        "nproc": os.cpu_count(),
        "memory_gb": round(total_kb / 2**20, 1),
        "cpu": model,
        "python": platform.python_version(),
        "versions": versions,
    }
    facts["summary"] = (
        f"{facts['nproc']} cores ({model}), {facts['memory_gb']} GB RAM, Python "
        f"{facts['python']}, "
        + ", ".join(f"{name} {version}" for name, version in versions.items())
    )
    return facts


def one_line(measured: dict[str, Any]) -> str:
    """What a measurement printed while running: time and memory, or the error."""
    if "error" in measured:
        return "FAILED: " + measured["error"].splitlines()[-1]
    return f"{measured['seconds']:.2f} s, peak {measured['peak_rss_mb']:.0f} MB"


def _index(results: list[dict[str, Any]]) -> dict[tuple[int, str, str], dict[str, Any]]:
    return {(r["invoices"], r["variant"], r["step"]): r for r in results if "error" not in r}


def _floor(index, invoices: int) -> float | None:
    floors = [
        index[(invoices, "clean", step)]["seconds"]
        for step in ("floor_strings", "floor_infer")
        if (invoices, "clean", step) in index
    ]
    return min(floors) if floors else None


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _row(size, step, wall, rss, ratio="", target="", met="", note="") -> str:
    wall_text = f"{wall:.2f}" if isinstance(wall, float | int) else wall
    rss_text = f"{rss:,.0f}" if isinstance(rss, float | int) else rss
    return f"| {size} | {step} | {wall_text} | {rss_text} | {ratio} | {target} | {met} | {note} |"


def markdown_table(results: list[dict[str, Any]]) -> str:
    """Every measurement as a markdown table: size, step, wall s, peak RSS MB, ratio, target,
    met?, and a note on where the time went."""
    index = _index(results)
    lines = [
        "| size | step | wall s | peak RSS MB | ratio | target | met? | where the time went |",
        "|---|---|---:|---:|---|---|---|---|",
    ]
    order = [
        "generate", "floor_strings", "floor_infer", "load", "audit", "toolkit_subset",
        "pointblank", "pandera_pandas", "report", "metrics",
    ]  # fmt: skip
    for invoices in sorted({r["invoices"] for r in results}):
        for step in order:
            for variant in ("clean", "dirty"):
                entry = index.get((invoices, variant, step))
                if entry:
                    lines.append(_step_row(index, entry))
        for entry in results:
            if entry["invoices"] == invoices and "error" in entry:
                lines.append(
                    _row(entry["size"], f"{entry['step']} ({entry['variant']})", "failed", "",
                         note=entry["error"].splitlines()[-1][:120])
                )  # fmt: skip
    upload = [r for r in results if r["step"] == "upload" and "error" not in r]
    for entry in upload:
        lines += _upload_rows(entry)
    return "\n".join(lines)


def _step_row(index, entry: dict[str, Any]) -> str:
    invoices, step, variant = entry["invoices"], entry["step"], entry["variant"]
    detail = entry.get("detail", {})
    floor = _floor(index, invoices)
    ratio = f"{entry['seconds'] / floor:.1f}× floor" if floor and step != "generate" else ""
    if step.startswith("floor_"):
        ratio = ""
    target = met = note = ""
    name = f"{step} ({variant})"
    if step == "load":
        note = f"{detail.get('parse_issues', 0):,} parse issues"
    if step in ("audit", "toolkit_subset", "report"):
        note = f"load {detail.get('load_seconds', '?')} s"
        if "audit_seconds" in detail:
            note += f" + audit {detail['audit_seconds']} s ({detail.get('issues', 0):,} issue rows)"
            slow = list(detail.get("slowest_rules", {}).items())[:3]
            note += "; slowest: " + ", ".join(f"{k} {v:.2f}" for k, v in slow)
    if step == "report":
        note = (
            f"html {detail.get('report_seconds')} s, {detail.get('html_mb')} MB, "
            f"{detail.get('html_table_rows')} table rows; " + note
        )
    if step in ("audit", "toolkit_subset"):
        peers = []
        for peer_step, peer_name in PEER_STEPS.items():
            peer = index.get((invoices, "clean", peer_step))
            if peer:
                peers.append((peer_name, entry["seconds"] / peer["seconds"]))
        ratio = "; ".join([ratio, *(f"{r:.2f}× {n}" for n, r in peers)]).strip("; ")
        if step == "audit" and variant == "clean" and invoices == 1_000_000 and floor:
            ok = entry["seconds"] <= TARGET_RATIO_TO_FLOOR * floor and all(r < 1 for _, r in peers)
            target, met = "≤ 4× floor, < each peer", _met(ok)
        if step == "toolkit_subset" and invoices == 1_000_000 and peers:
            target, met = "< each peer", _met(all(r < 1 for _, r in peers))
    if step == "audit" and invoices >= 10_000_000:
        target = "peak RSS ≤ 6 GB"
        met = _met(entry["peak_rss_mb"] <= TARGET_RSS_10M_MB)
    if step in PEER_STEPS:
        note = f"read {detail.get('read_seconds')} s + validate {detail.get('validate_seconds')} s"
        note += f" ({detail.get('failed_rows')} failed rows)"
    if step == "metrics":
        note = (
            f"MRR {detail.get('mrr_seconds')} s + movements {detail.get('movements_seconds')} s; "
            f"{detail.get('mrr_rows', 0):,} customer-months"
        )
        if invoices >= 10_000_000:
            target = "≤ 10 s"
            met = _met(entry["seconds"] <= TARGET_METRICS_10M_S)
        ratio = ""
    if step == "generate":
        note = f"{detail.get('csv_mb')} MB of CSV; rows {detail.get('rows')}"
    return _row(
        entry["size"], name, entry["seconds"], entry["peak_rss_mb"], ratio, target, met, note
    )


def _upload_rows(entry: dict[str, Any]) -> list[str]:
    detail = entry["detail"]
    size = f"{detail['records']:,} records"
    sequential = detail["sequential"]
    base = sequential["records_per_second"]
    rows = [
        _row(size, "upload: sequential httpx loop", sequential["seconds"], "", "1.0×", "", "",
             f"{base} records/s ({sequential['records']} sent, time-boxed){_cpu(sequential)}")
    ]  # fmt: skip
    for key, run in detail.items():
        if not key.startswith("toolkit_c"):
            continue
        speedup = run["records_per_second"] / base
        rows.append(
            _row(size, f"upload: toolkit, concurrency {run['concurrency']}", run["seconds"],
                 entry["peak_rss_mb"], f"{speedup:.1f}× sequential", "≥ 10× sequential",
                 _met(speedup >= TARGET_UPLOAD_SPEEDUP and run["lost"] == 0),
                 f"{run['records_per_second']} records/s, {run['requests']} requests, "
                 f"lost {run['lost']}{_cpu(run)}")
        )  # fmt: skip
    limited = detail["rate_limited"]
    fraction = limited["fraction_of_limit"]
    rows.append(
        _row(size, f"upload: rate limit {limited['rate_limit']:g}/s", limited["seconds"],
             "", f"{fraction:.0%} of the limit", "≥ 90 %, 0 lost",
             _met(fraction >= TARGET_RATE_FRACTION and limited["lost"] == 0),
             f"{limited['records_per_second']} records/s, {limited['rate_limited_answers']} "
             f"answers 429, lost {limited['lost']}")
    )  # fmt: skip
    return rows


def _cpu(run: dict[str, Any]) -> str:
    if "client_cpu_ms_per_record" not in run:
        return ""
    return (
        f"; CPU per record: client {run['client_cpu_ms_per_record']} ms, "
        f"sandbox {run['server_cpu_ms_per_record']} ms"
    )


def update_readme(path: Path, machine: dict[str, Any], table: str, *, command: str) -> None:
    """Rewrite the README's results section (between the markers) with the table and machine."""
    section = "\n".join(
        [
            START,
            f"Machine: {machine['summary']}.",
            "",
            f"Reproduce: `{command}` (results merged into `benchmarks/results.json`).",
            "",
            table,
            END,
        ]
    )
    text = (
        path.read_text(encoding="utf-8") if path.is_file() else f"# Benchmarks\n\n{START}\n{END}\n"
    )
    if START not in text:
        text += f"\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1] if END in rest else ""
    path.write_text(head + section + tail, encoding="utf-8")
