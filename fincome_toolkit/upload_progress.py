"""Progress of an upload: the event the uploader emits, and adapters for a terminal and marimo.

The uploader only calls `progress(event)`; how progress is shown is the caller's choice:
`RichProgress` for the terminal (the CLI), `MarimoProgress` for a marimo notebook, or any
function taking a `ProgressEvent` (e.g. to log, or to collect events in a test).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    """One step of an upload. The first event of a run has `done=0` and no record."""

    done: int  # records finished so far (acknowledged, rejected, in conflict, held back, pending)
    total: int  # records this run sends (skipped and held-back-by-plan ones excluded)
    acknowledged: int
    problems: int  # rejected + conflict + held back + pending so far
    entity: str | None = None
    record_id: str | None = None
    outcome: str | None = None


Progress = Callable[[ProgressEvent], None]


def _describe(event: ProgressEvent) -> str:
    text = f"{event.acknowledged} acknowledged"
    return text + (f", {event.problems} to look at" if event.problems else "")


class RichProgress:
    """A rich progress bar in the terminal.

    `with RichProgress() as bar: run_upload(dataset, progress=bar)`
    """

    def __init__(self, *, console: Any = None, transient: bool = False) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("Uploading to Fincome"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=transient,
        )
        self._task: Any = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._progress.stop()

    def __call__(self, event: ProgressEvent) -> None:
        if self._task is None:
            self._task = self._progress.add_task(_describe(event), total=event.total)
        self._progress.update(
            self._task, completed=event.done, total=event.total, description=_describe(event)
        )


class MarimoProgress:
    """A `mo.status.progress_bar` in a marimo notebook: `with MarimoProgress() as bar: ...`.

    In marimo, await the async `upload(...)` in a cell (top-level await) with `progress=bar`.
    """

    def __init__(self, *, title: str = "Uploading to Fincome") -> None:
        self._title = title
        self._context: Any = None
        self._bar: Any = None
        self._done = 0

    def __enter__(self) -> MarimoProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._context is not None:
            self._context.__exit__(*exc)

    def __call__(self, event: ProgressEvent) -> None:
        if self._bar is None:
            import marimo as mo  # lazily: marimo is only needed inside a notebook

            self._context = mo.status.progress_bar(
                total=max(event.total, 1),
                title=self._title,
                completion_title="Upload finished",
            )
            self._bar = self._context.__enter__()
        self._bar.update(increment=event.done - self._done, subtitle=_describe(event))
        self._done = event.done
