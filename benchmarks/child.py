"""One measurement in a fresh interpreter: `python benchmarks/child.py STEP DATA_DIR [JSON]`.

The parent (run.py) starts one child per measurement so every peak RSS is that step's own. The
child imports what the step needs, notes its resident memory, runs the step with a wall clock
around it and prints one line `BENCH_RESULT {json}`: `seconds` (the step, imports excluded),
`peak_rss_mb` (getrusage's maximum RSS of this process, imports included), `import_rss_mb`
and whatever the step reports about itself in `detail`.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

MARKER = "BENCH_RESULT "
STEPS: dict[str, Callable[[Path, dict[str, Any]], Callable[[], dict[str, Any]]]] = {}


def step(name: str):
    """Register a step: a function (data_dir, args) that imports and prepares, returning the
    timed callable (which returns its detail dict)."""

    def register(function):
        STEPS[name] = function
        return function

    return register


def current_rss_mb() -> float:
    """Resident memory now, in MB (from /proc, Linux)."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- the steps --------------------------------------------------------------------------------

FRAMES = ("customers", "subscriptions", "invoices")


@step("floor_strings")
def floor_strings(data_dir: Path, args: dict[str, Any]):
    import polars as pl

    def run():
        rows = {n: pl.read_csv(data_dir / f"{n}.csv", infer_schema=False).height for n in FRAMES}
        return {"rows": rows}

    return run


@step("floor_infer")
def floor_infer(data_dir: Path, args: dict[str, Any]):
    import polars as pl

    def run():
        rows = {n: pl.read_csv(data_dir / f"{n}.csv", try_parse_dates=True).height for n in FRAMES}
        return {"rows": rows}

    return run


@step("load")
def load(data_dir: Path, args: dict[str, Any]):
    from fincome_toolkit.loading import load_dataset

    def run():
        dataset = load_dataset(data_dir, mapping=data_dir / "mapping.toml")
        return {
            "rows": {n: f.height for n, f in dataset.frames().items()},
            "parse_issues": dataset.parse_issues.height,
        }

    return run


def _audit_detail(result, load_seconds: float, audit_seconds: float) -> dict[str, Any]:
    slowest = sorted(result.context["rule_seconds"].items(), key=lambda kv: -kv[1])[:8]
    return {
        "load_seconds": round(load_seconds, 3),
        "audit_seconds": round(audit_seconds, 3),
        "issues": result.issues.height,
        "counts": result.counts,
        "verdict": result.verdict,
        "slowest_rules": dict(slowest),
    }


@step("audit")
def audit_step(data_dir: Path, args: dict[str, Any]):
    from fincome_toolkit.audit import audit
    from fincome_toolkit.loading import load_dataset

    def run():
        started = time.perf_counter()
        dataset = load_dataset(data_dir, mapping=data_dir / "mapping.toml")
        loaded = time.perf_counter()
        result = audit(dataset, as_of=args.get("as_of"), rules=args.get("rules"))
        done = time.perf_counter()
        return _audit_detail(result, loaded - started, done - loaded)

    return run


@step("report")
def report_step(data_dir: Path, args: dict[str, Any]):
    from fincome_toolkit.audit import audit
    from fincome_toolkit.loading import load_dataset
    from fincome_toolkit.report import write_html_report

    out = Path(args["out"])

    def run():
        started = time.perf_counter()
        dataset = load_dataset(data_dir, mapping=data_dir / "mapping.toml")
        loaded = time.perf_counter()
        result = audit(dataset, as_of=args.get("as_of"))
        audited = time.perf_counter()
        write_html_report(result, out)
        done = time.perf_counter()
        detail = _audit_detail(result, loaded - started, audited - loaded)
        html = out.read_text(encoding="utf-8")
        detail |= {
            "report_seconds": round(done - audited, 3),
            "html_mb": round(len(html.encode()) / 2**20, 2),
            "html_table_rows": html.count("<tr"),
        }
        return detail

    return run


@step("pointblank")
def pointblank_step(data_dir: Path, args: dict[str, Any]):
    import peers
    import pointblank  # noqa: F401 - imported before the clock starts
    from subset import from_data

    checks = from_data(args["checks"])

    def run():
        started = time.perf_counter()
        frames = peers.read_polars(data_dir)
        read = time.perf_counter()
        failed = peers.run_pointblank(frames, checks)
        return _peer_detail(failed, read - started, time.perf_counter() - read)

    return run


@step("pandera_pandas")
def pandera_step(data_dir: Path, args: dict[str, Any]):
    import pandera.pandas  # noqa: F401 - imported before the clock starts
    import peers
    from subset import from_data

    checks = from_data(args["checks"])

    def run():
        started = time.perf_counter()
        frames = peers.read_pandas(data_dir)
        read = time.perf_counter()
        failed = peers.run_pandera(frames, checks)
        return _peer_detail(failed, read - started, time.perf_counter() - read)

    return run


def _peer_detail(failed: dict[str, int], read_seconds: float, check_seconds: float):
    return {
        "read_seconds": round(read_seconds, 3),
        "validate_seconds": round(check_seconds, 3),
        "failed_rows": sum(failed.values()),
        "checks": len(failed),
    }


@step("toolkit_subset")
def toolkit_subset(data_dir: Path, args: dict[str, Any]):
    from subset import toolkit_subset_codes

    return audit_step(data_dir, args | {"rules": list(toolkit_subset_codes())})


@step("metrics")
def metrics_step(data_dir: Path, args: dict[str, Any]):
    """Invoice-based MRR per customer-month and the monthly movements, from canonical frames
    (read from the Parquet copy written at generation, so that loading CSV is not counted)."""
    import polars as pl

    from fincome_toolkit.bridge import movements
    from fincome_toolkit.frames import Dataset
    from fincome_toolkit.metrics import mrr_by_customer

    canonical = data_dir / "canonical"
    dataset = Dataset(**{n: pl.read_parquet(canonical / f"{n}.parquet") for n in FRAMES})

    def run():
        started = time.perf_counter()
        mrr = mrr_by_customer(dataset, source="invoices")
        computed = time.perf_counter()
        monthly = movements(mrr)
        return {
            "invoices": dataset.invoices.height,
            "mrr_seconds": round(computed - started, 3),
            "movements_seconds": round(time.perf_counter() - computed, 3),
            "mrr_rows": mrr.height,
            "months": monthly.height,
        }

    return run


@step("generate")
def generate_step(data_dir: Path, args: dict[str, Any]):
    import datasets

    import fincome_toolkit.sample  # noqa: F401 - imported before the clock starts

    def run():
        return datasets.generate_export(data_dir, **args)

    return run


@step("upload")
def upload_step(data_dir: Path, args: dict[str, Any]):
    import upload_bench

    def run():
        return upload_bench.measure(data_dir, **args)

    return run


def main(argv: list[str]) -> None:
    """Run one step and print its measurement as one JSON line."""
    name, data_dir = argv[0], Path(argv[1])
    args = json.loads(argv[2]) if len(argv) > 2 else {}
    prepared = STEPS[name](data_dir, args)
    import_rss = current_rss_mb()
    started = time.perf_counter()
    detail = prepared()
    seconds = time.perf_counter() - started
    result = {
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "import_rss_mb": round(import_rss, 1),
        "detail": detail,
    }
    print(MARKER + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
