"""The demo's output layer: progress lines on the terminal, every tool's output in the log file."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from mo.progress import ERROR_LINES, Progress, log_path_for


def test_tool_output_goes_to_the_log_and_only_progress_lines_to_the_terminal(tmp_path):
    terminal = io.StringIO()
    progress = Progress(log_path_for(tmp_path, "demo"), terminal=terminal)

    with progress.capture():
        with progress.step("sync") as result:
            print("dbt-like line from Python")
            print("a Python warning on stderr", file=sys.stderr)
            # a child process started meanwhile (as the Spark JVM is) inherits the log as its output
            subprocess.run(
                [sys.executable, "-c", "import sys; print('WARN Utils: from the JVM', file=sys.stderr); print('out')"],
                check=True,
            )
            result["detail"] = "3 tables"
        progress.line("summary: 3 tables in sync")

    assert progress.log_path.parent == tmp_path / "logs"
    lines = terminal.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("sync ... ok (") and lines[0].endswith(", 3 tables)")
    assert lines[1] == "summary: 3 tables in sync"
    log = progress.log_path.read_text()
    for text in ("dbt-like line from Python", "a Python warning on stderr", "WARN Utils: from the JVM", "out"):
        assert text in log
    assert "==> sync" in log and "<== sync ... ok" in log and "summary: 3 tables in sync" in log


def test_descriptors_and_streams_are_restored_after_the_capture(tmp_path, capfd):
    stdout, stderr = sys.stdout, sys.stderr
    with Progress(tmp_path / "logs" / "a.log", terminal=io.StringIO()).capture():
        print("captured")
    assert (sys.stdout, sys.stderr) == (stdout, stderr)
    print("after the capture")
    subprocess.run([sys.executable, "-c", "print('child after the capture')"], check=True)
    out = capfd.readouterr().out
    assert "after the capture" in out and "child after the capture" in out and "captured" not in out


def test_a_failed_step_names_itself_with_the_error_and_the_log(tmp_path):
    terminal = io.StringIO()
    progress = Progress(tmp_path / "logs" / "demo.log", terminal=terminal)
    long_error = "\n".join(f"at frame {i}" for i in range(40))

    with progress.capture(), pytest.raises(RuntimeError):
        with progress.step("events_ingest.ingest"):
            raise RuntimeError(f"broker unreachable\n{long_error}")

    lines = terminal.getvalue().splitlines()
    assert lines[0].startswith("events_ingest.ingest ... failed (")
    assert lines[1] == "    RuntimeError: broker unreachable"
    assert len(lines) == 1 + ERROR_LINES + 1
    assert lines[-1] == f"    ... {41 - ERROR_LINES} more lines in {progress.log_path}"
    assert "at frame 39" in progress.log_path.read_text()  # the whole error is in the log


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_step_line_is_begun_and_completed_in_place(tmp_path):
    terminal = _Tty()
    progress = Progress(tmp_path / "logs" / "demo.log", terminal=terminal)
    with progress.capture():
        progress.begin("source_sync")
        assert terminal.getvalue() == "source_sync ... "
        progress.begin("source_sync.extract")  # a nested step breaks the line; the outer one is written whole
        progress.end("source_sync.extract")
        progress.end("source_sync", "success")
    lines = terminal.getvalue().splitlines()
    assert lines[0] == "source_sync ... "
    assert lines[1].startswith("source_sync.extract ... ok (")
    assert lines[2].startswith("source_sync ... success (")
