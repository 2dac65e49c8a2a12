"""Upload throughput against the sandbox, served by the CLI in its own process.

Three runs on the same generated records (customers, then subscriptions, then invoices), each
against a fresh, empty sandbox so every record is a creation:

- `sequential`: a plain `httpx.Client` loop, one POST after the other (time-boxed);
- `toolkit`: `run_upload` at the given concurrency (all records);
- `rate_limited`: `run_upload` against a sandbox with `--rate-limit`, reporting the achieved
  rate as a fraction of the limit.

After each toolkit run the sandbox's stored counts (`/_sandbox/stats`) are compared with the
records sent: a record acknowledged but not stored, or neither, is a lost record.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from fincome_toolkit.contract import ENTITIES, ContractSettings, build_payloads
from fincome_toolkit.sample import generate
from fincome_toolkit.upload import run_upload

API_KEY = "sandbox-key"  # the sandbox's public test key
CLI = Path(sys.executable).with_name("fincome-toolkit")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of this process, or of the process `pid` (Linux /proc)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used by this process (the client) and the sandbox process during a block."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.client = self.server = 0.0

    def __enter__(self) -> CpuMeter:
        self._client, self._server = cpu_seconds(), cpu_seconds(self.server_pid)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.client = cpu_seconds() - self._client
        self.server = cpu_seconds(self.server_pid) - self._server

    def per_record_ms(self, records: int) -> dict[str, float]:
        """Milliseconds of CPU per record, client and server."""
        records = max(records, 1)
        return {
            "client_cpu_ms_per_record": round(1000 * self.client / records, 2),
            "server_cpu_ms_per_record": round(1000 * self.server / records, 2),
        }


@contextlib.contextmanager
def served_sandbox(
    *, latency_ms: float, rate_limit: float | None = None
) -> Iterator[tuple[str, int]]:
    """`fincome-toolkit sandbox` in a child process for the block; yields (base URL, pid)."""
    port = _free_port()
    command = [str(CLI), "sandbox", "--port", str(port), "--latency", str(latency_ms)]
    if rate_limit:
        command += ["--rate-limit", str(rate_limit)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(base_url, process)
        yield base_url, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(base_url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"the sandbox exited: {process.stdout.read() if process.stdout else ''}"
            )
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(f"{base_url}/_sandbox/stats", timeout=1.0)
            return
        time.sleep(0.1)
    raise RuntimeError("the sandbox did not start within a minute")


def stored_counts(base_url: str) -> dict[str, int]:
    """Records per entity that the sandbox holds."""
    return httpx.get(f"{base_url}/_sandbox/stats", timeout=10).json()["records"]


def sandbox_stats(base_url: str) -> dict[str, Any]:
    """Everything the sandbox reports about what it served."""
    return httpx.get(f"{base_url}/_sandbox/stats", timeout=10).json()


def sequential_loop(
    dataset, base_url: str, *, max_seconds: float, server_pid: int | None = None
) -> dict[str, Any]:
    """One POST after the other with a plain httpx client, stopped after `max_seconds`."""
    contract = ContractSettings(base_url=base_url)
    payloads = [(e, p) for e in ENTITIES for p in build_payloads(e, dataset.frame(e))]
    sent = failed = 0
    headers = contract.auth_headers(API_KEY)
    meter = CpuMeter(server_pid or os.getpid())
    with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client, meter:
        started = time.perf_counter()
        for entity, payload in payloads:
            response = client.post(contract.path(entity), json=payload)
            sent += 1
            failed += response.status_code not in contract.success_statuses
            if time.perf_counter() - started > max_seconds:
                break
        seconds = time.perf_counter() - started
    return {
        "records": sent,
        "non_2xx": failed,
        "seconds": round(seconds, 3),
        "records_per_second": round(sent / seconds, 1),
        "stored": stored_counts(base_url),
        **(meter.per_record_ms(sent) if server_pid else {}),
    }


def toolkit_upload(
    dataset, base_url: str, *, concurrency: int, journal: Path, server_pid: int | None = None
) -> dict[str, Any]:
    """`run_upload` of every record; outcomes, rate and the lost-record check."""
    meter = CpuMeter(server_pid or os.getpid())
    with meter:
        started = time.perf_counter()
        result = run_upload(
            dataset,
            settings=ContractSettings(base_url=base_url),
            api_key=API_KEY,
            journal=journal,
            concurrency=concurrency,
        )
        seconds = time.perf_counter() - started
    outcomes = result.records.group_by("outcome").len()
    outcome_counts = dict(outcomes.iter_rows())
    stored = stored_counts(base_url)
    expected = {e: dataset.frame(e).height for e in ENTITIES}
    acknowledged = outcome_counts.get("acknowledged", 0)
    stats = sandbox_stats(base_url)
    return {
        "concurrency": concurrency,
        "records": result.records.height,
        "outcomes": outcome_counts,
        "requests": result.requests,
        "seconds": round(seconds, 3),
        "sending_seconds": round(result.seconds, 3),
        "records_per_second": round(acknowledged / seconds, 1),
        "stored": stored,
        "lost": sum(expected.values()) - sum(stored.get(e, 0) for e in ENTITIES),
        "rate_limited_answers": stats.get("faults", {}).get("rate_limited", 0),
        **(meter.per_record_ms(result.records.height) if server_pid else {}),
    }


def measure(
    data_dir: Path,
    *,
    invoices: int = 3000,
    latency_ms: float = 20.0,
    concurrency: tuple[int, ...] = (32, 64),
    rate_limit: float = 200.0,
    sequential_seconds: float = 20.0,
) -> dict[str, Any]:
    """All three runs; `data_dir` is unused (the records are generated here, small and clean)."""
    dataset = generate(
        customers=max(1, invoices // 20),
        subscriptions=max(1, invoices // 10),
        invoices=invoices,
        seed=0,
        defects=False,
    ).dataset
    detail: dict[str, Any] = {"records": sum(f.height for f in dataset.frames().values())}
    with tempfile.TemporaryDirectory(prefix="fincome-bench-") as scratch:
        with served_sandbox(latency_ms=latency_ms) as (url, pid):
            detail["sequential"] = sequential_loop(
                dataset, url, max_seconds=sequential_seconds, server_pid=pid
            )
        for count in concurrency:
            with served_sandbox(latency_ms=latency_ms) as (url, pid):
                journal = Path(scratch) / f"journal-{count}.sqlite"
                detail[f"toolkit_c{count}"] = toolkit_upload(
                    dataset, url, concurrency=count, journal=journal, server_pid=pid
                )
        with served_sandbox(latency_ms=latency_ms, rate_limit=rate_limit) as (url, pid):
            journal = Path(scratch) / "journal-limited.sqlite"
            limited = toolkit_upload(
                dataset, url, concurrency=concurrency[0], journal=journal, server_pid=pid
            )
            limited["rate_limit"] = rate_limit
            limited["fraction_of_limit"] = round(
                limited["outcomes"].get("acknowledged", 0) / limited["seconds"] / rate_limit, 3
            )
            detail["rate_limited"] = limited
    sequential_rate = detail["sequential"]["records_per_second"]
    best = max(detail[f"toolkit_c{c}"]["records_per_second"] for c in concurrency)
    detail["speedup_vs_sequential"] = round(best / sequential_rate, 1)
    return detail
