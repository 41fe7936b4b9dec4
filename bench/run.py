"""`make bench`: run every benchmark and write docs/benchmarks.md.

Each `bench/bench_*.py` exposes `run() -> str`, returning a markdown section whose figures include
a baseline measured in the same run, so ratios stay meaningful on any machine. Scale comes from
environment variables each module documents (defaults fit this 2-core machine).
`python -m bench.run generator events` reruns only those sections of the page.
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
ORDER = [
    "generator",
    "events",
    "sync",
    "reconcile",
    "preview",
    "publish",
    "profiles",
    "profile_read",
    "claims",
    "delivery",
    "decision",
    "dashboards",
]


def machine() -> str:
    import psutil

    return (
        f"{platform.machine()}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB, "
        f"Python {platform.python_version()}"
    )


def _merge(page: str, name: str, body: str) -> str:
    """Replace the section of `name` between its markers (or append it), leaving other benches' figures."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in page and end in page:
        return page[: page.index(start)] + block + page[page.index(end) + len(end) :]
    return page.rstrip() + "\n\n" + block + "\n"


def main(selected: list[str]) -> int:
    page = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
    if not page.startswith("# Benchmarks"):
        page = (
            "# Benchmarks\n\n"
            "Written by `make bench` (`python -m bench.run [generator|events|sync ...]` reruns single sections).\n"
            "Every figure has a baseline measured in the same run; compare ratios, not seconds, across machines.\n"
        )
    for name in selected or ORDER:
        module = importlib.import_module(f"bench.bench_{name}")
        started = time.perf_counter()
        print(f"== bench {name}", flush=True)
        body = module.run()
        print(body, flush=True)
        took = time.perf_counter() - started
        stamp = f"_{name}: measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC in {took:.0f}s on {machine()}._"
        page = _merge(page, name, f"{body.rstrip()}\n\n{stamp}")
        OUT.write_text(page, encoding="utf-8")  # after each bench, so a later failure keeps earlier figures
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
