"""Superset and the platform kept in step without a person (`mo dashboards sync`, the compose service
``dashboards-sync``).

Two jobs, each on its own period, in one long-running process:

- the audit copy (:func:`mo.dashboards_audit.sync_audit_for`): Superset's dashboard views, SQL Lab queries and
  exports into the platform's ``audit_log``, every ``audit_every`` seconds;
- the user sync (:func:`mo.dashboards_users.sync_users`): Superset's users from the serving API's accounts, every
  ``users_every`` seconds.

A job that fails (a database down, Superset's tables not migrated yet, a login missing a grant) is logged with its
cause and runs again at its next turn; the loop itself never stops on a job's error. Both jobs are idempotent and
resume from what they find (the audit copy from its watermark in ``audit_log``), so a missed round loses nothing.
SIGTERM or SIGINT (``docker compose stop``) sets ``stop``: a job in progress finishes, then the loop returns.
Run one at a time: two audit copies at once could copy an entry twice (docs/dashboards.md).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("mo.dashboards_sync")


@dataclass
class Job:
    """One periodic job: ``run`` every ``every`` seconds (the first run at once)."""

    name: str
    every: float
    run: Callable[[], Any]
    due: float = 0.0
    runs: int = 0
    failures: int = 0
    last_error: str | None = field(default=None, repr=False)


def run_job(job: Job) -> bool:
    """Run ``job`` once: its result logged, a failure logged with its cause (never raised). True when it ran."""
    job.runs += 1
    try:
        result = job.run()
    except Exception as exc:  # noqa: BLE001 - a round's error is reported and retried next round, never fatal
        job.failures += 1
        job.last_error = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        log.error("%s failed (retrying in %.0f s): %s", job.name, job.every, job.last_error)
        log.debug("%s failure", job.name, exc_info=True)
        return False
    job.last_error = None
    as_dict = getattr(result, "as_dict", None)
    summary = as_dict() if callable(as_dict) else result
    log.info("%s: %s", job.name, json.dumps(summary, default=str, ensure_ascii=False))
    return True


def run_loop(jobs: list[Job], stop: threading.Event, *, clock: Callable[[], float] = time.monotonic) -> None:
    """Run each job when due, until ``stop`` is set; a job's next turn is ``every`` seconds after its start."""
    start = clock()
    for job in jobs:
        job.due = start
    while not stop.is_set():
        now = clock()
        for job in jobs:
            if stop.is_set():
                return
            if job.due <= now:
                job.due = now + job.every
                run_job(job)
        stop.wait(max(0.0, min(job.due for job in jobs) - clock()))


def sync_jobs(settings: Any, *, audit_every: float | None, users_every: float | None) -> list[Job]:
    """The jobs of `mo dashboards sync` for this install (``None``: that job is off)."""
    from mo.dashboards_audit import sync_audit_for
    from mo.dashboards_users import sync_users

    jobs = []
    if audit_every:
        jobs.append(Job("audit sync", audit_every, lambda: sync_audit_for(settings)))
    if users_every:
        jobs.append(Job("user sync", users_every, lambda: {"changes": sync_users(settings, actor="dashboards-sync")}))
    if not jobs:
        raise ValueError("nothing to run: give --audit-every, --users-every or both")
    return jobs


def check_access(settings: Any) -> None:
    """The service's health check: its logins reach the audit log and Superset's event log and queries (raises)."""
    from sqlalchemy import create_engine, func, select, text

    from mo.dashboards_audit import AUDIT, superset_metadata_url
    from mo.oltp.db import make_engine

    audit = make_engine(settings.resolved_source_url)
    superset = create_engine(superset_metadata_url(Path(settings.home)))
    try:
        with audit.connect() as conn:
            conn.execute(select(func.max(AUDIT.c.id)))
        with superset.connect() as conn:
            conn.execute(text("SELECT max(id) FROM logs"))
            conn.execute(text("SELECT max(id) FROM query"))
    finally:
        audit.dispose()
        superset.dispose()
