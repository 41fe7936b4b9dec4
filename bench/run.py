"""`make bench`: run every benchmark and write docs/benchmarks.md.

Each `bench/bench_*.py` exposes `run() -> str`, returning a markdown section whose figures include
a baseline measured in the same run, so ratios stay meaningful on any machine. Scale comes from
environment variables each module documents (defaults fit this 2-core machine).
`python -m bench.run generator events` runs a subset.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "benchmarks.md"
ORDER = ["generator", "events", "sync"]


def machine() -> str:
    import psutil

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}"
    )


def main(selected: list[str]) -> int:
    names = selected or ORDER
    sections = []
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        started = time.perf_counter()
        print(f"== bench {name}", flush=True)
        body = module.run()
        print(body, flush=True)
        sections.append(f"{body.rstrip()}\n\n_{name}: measured in {time.perf_counter() - started:.0f}s._\n")
    if selected and OUT.exists():
        print(f"subset run: {OUT} left as it was (run `make bench` for the full page)")
        return 0
    header = (
        "# Benchmarks\n\n"
        f"Written by `make bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({machine()}).\n"
        "Every figure has a baseline measured in the same run; compare ratios, not seconds, across machines.\n\n"
    )
    OUT.write_text(header + "\n".join(sections), encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
