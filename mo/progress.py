"""Progress lines on the terminal, every tool's own output in a log file.

A long job (``make demo``) runs Spark, dbt, Great Expectations and Airflow in one process; together they
print hundreds of lines (Spark warnings, dbt's line per model, Airflow's task logs) that bury what a
person wants to see. :class:`Progress` shows one line per step (``source_sync.extract ... ok (12 s)``) and
sends the rest to a log file: while :meth:`Progress.capture` is active, the process's file descriptors
1 and 2 point at the log, so whatever writes to them lands there, including child processes started
meanwhile (the Spark JVM keeps writing there for its whole life). The terminal keeps a descriptor of its
own. A failed step is never hidden: its line says ``failed``, the error follows, and the log file's path
is printed with it.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

# Lines of an error shown on the terminal; the whole error (Java stack traces included) is in the log.
ERROR_LINES = 12


def log_path_for(home: Path, job: str) -> Path:
    """``<home>/logs/<job>-<UTC timestamp>.log``: one file per run, earlier runs kept."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return home / "logs" / f"{job}-{stamp}.log"


def _seconds(elapsed: float) -> str:
    return f"{elapsed:.1f} s" if elapsed < 10 else f"{elapsed:.0f} s"


class Progress:
    """One line per step on ``terminal``; tool output to ``log_path`` while :meth:`capture` is active."""

    def __init__(self, log_path: Path, terminal: TextIO | None = None) -> None:
        self.log_path = log_path
        self._terminal = terminal
        self._own_terminal: TextIO | None = None
        self._log_fd: int | None = None
        self._pending: str | None = None  # a step line begun on the terminal, its outcome not yet written
        self._started: dict[str, float] = {}
        self.reported: set[str] = set()  # steps whose outcome has been written

    # --- where the lines go -------------------------------------------------------------------------

    @property
    def terminal(self) -> TextIO:
        return self._terminal if self._terminal is not None else sys.stdout

    @property
    def _live(self) -> bool:
        """Whether a step's line is written when it begins and completed when it ends (a terminal only)."""
        try:
            return self.terminal.isatty()
        except (AttributeError, ValueError):
            return False

    def _write_terminal(self, text: str) -> None:
        self.terminal.write(text)
        self.terminal.flush()

    def _write_log(self, text: str) -> None:
        if self._log_fd is None:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        os.write(self._log_fd, "".join(f"[mo {stamp}] {line}\n" for line in text.splitlines()).encode())

    def _break_pending(self) -> None:
        if self._pending is not None:
            self._write_terminal("\n")
            self._pending = None

    def line(self, text: str = "") -> None:
        """A line of the summary: on the terminal (styled only where it is one) and in the log."""
        import click

        self._break_pending()
        self._write_terminal((text if self._live else click.unstyle(text)) + "\n")
        self._write_log(click.unstyle(text))

    # --- steps --------------------------------------------------------------------------------------

    def begin(self, name: str) -> None:
        self._break_pending()
        self._started[name] = time.perf_counter()
        self._write_log(f"==> {name}")
        if self._live:
            self._write_terminal(f"{name} ... ")
            self._pending = name

    def end(self, name: str, outcome: str = "ok", detail: str = "", error: str | None = None) -> None:
        started = self._started.pop(name, None)
        self.reported.add(name)
        timing = _seconds(time.perf_counter() - started) if started is not None else ""
        extra = ", ".join(part for part in (timing, detail) if part)
        result = f"{outcome} ({extra})" if extra else outcome
        if self._pending == name:
            self._write_terminal(result + "\n")
            self._pending = None
        else:
            self._break_pending()
            self._write_terminal(f"{name} ... {result}\n")
        self._write_log(f"<== {name} ... {result}")
        if error:
            self.error(error)

    def error(self, message: str) -> None:
        """An error's first lines, indented under the step that failed (all of it goes to the log)."""
        lines = [line.rstrip() for line in message.strip().splitlines() if line.strip()] or ["(no message)"]
        shown = lines[:ERROR_LINES]
        if len(lines) > ERROR_LINES:
            shown.append(f"... {len(lines) - ERROR_LINES} more lines in {self.log_path}")
        self._break_pending()
        self._write_terminal("".join(f"    {line}\n" for line in shown))
        self._write_log("error:\n" + "\n".join(lines))

    @contextmanager
    def step(self, name: str) -> Iterator[dict[str, str]]:
        """``with progress.step("generate") as result: ...; result["detail"] = "14,320 rows"``."""
        result: dict[str, str] = {}
        self.begin(name)
        try:
            yield result
        except KeyboardInterrupt:
            self.end(name, "interrupted", result.get("detail", ""))
            raise
        except BaseException as exc:
            self.end(name, "failed", result.get("detail", ""), error=f"{type(exc).__name__}: {exc}")
            raise
        self.end(name, result.get("outcome", "ok"), result.get("detail", ""))

    # --- capturing the tools' output ----------------------------------------------------------------

    @contextmanager
    def capture(self) -> Iterator[Progress]:
        """Point descriptors 1 and 2 at the log file for the block; progress lines still reach the terminal."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        saved_out, saved_err = os.dup(1), os.dup(2)
        if self._terminal is None:
            # the terminal is what descriptor 1 was; keep a private copy of it
            self._own_terminal = io.TextIOWrapper(
                os.fdopen(os.dup(saved_out), "wb", buffering=0), encoding="utf-8", line_buffering=True
            )
            self._terminal = self._own_terminal
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        self._log_fd = log_fd
        # Python code printing to sys.stdout/sys.stderr goes to descriptors 1 and 2 too, even where those
        # objects had been replaced (a test runner's capture, a notebook)
        saved_streams = sys.stdout, sys.stderr
        sys.stdout = io.TextIOWrapper(os.fdopen(os.dup(1), "wb", buffering=0), encoding="utf-8", line_buffering=True)
        sys.stderr = io.TextIOWrapper(os.fdopen(os.dup(2), "wb", buffering=0), encoding="utf-8", line_buffering=True)
        try:
            yield self
        finally:
            self._break_pending()
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
                stream.close()
            sys.stdout, sys.stderr = saved_streams
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            os.close(log_fd)
            self._log_fd = None
            if self._own_terminal is not None:
                self._own_terminal.close()
                self._own_terminal = None
                self._terminal = None

    # --- Airflow task lines -------------------------------------------------------------------------

    def task_listener(self) -> Any:
        """An Airflow listener printing one line per task instance of the DAG runs in this process."""
        from airflow.sdk._shared.listeners import hookimpl

        progress = self

        def name(ti: Any) -> str:
            return f"{ti.dag_id}.{ti.task_id}"

        class TaskLines:
            @hookimpl
            def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
                progress.begin(name(task_instance))

            @hookimpl
            def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
                progress.end(name(task_instance), "ok")

            @hookimpl
            def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
                progress.end(name(task_instance), "skipped")

            @hookimpl
            def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any) -> None:
                message = str(error) if isinstance(error, str) else f"{type(error).__name__}: {error}"
                progress.end(name(task_instance), _failed_outcome(task_instance), error=message)

        return TaskLines()


def _failed_outcome(task_instance: Any) -> str:
    """``failed``, or ``failed, retrying in 2 min (attempt 1 of 3)`` when Airflow will run the task again."""
    if str(getattr(task_instance, "state", "")) != "up_for_retry":
        return "failed"
    task = getattr(task_instance, "task", None)
    attempts = (getattr(task, "retries", 0) or 0) + 1
    delay: Any = getattr(task, "retry_delay", None)
    when = f" in {delay.total_seconds() / 60:g} min" if hasattr(delay, "total_seconds") else ""
    return f"failed, retrying{when} (attempt {getattr(task_instance, 'try_number', '?')} of {attempts})"
