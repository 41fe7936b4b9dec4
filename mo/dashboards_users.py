"""Superset's users from the serving API's accounts (`mo dashboards sync-users`).

The serving API's staff accounts (``staff_users`` in the source database) with a role that has dashboards
(analyst, marketer, admin) become Superset users with the matching role (docs/dashboards.md, Security); an
account's organisation becomes the row-level security role ``mo_org_<id>``. A disabled or deleted account, or one
whose role lost its dashboards, deactivates the Superset user the sync made. Superset's own admin and users made
by hand (``mo dashboards add-user``) are left alone.

Passwords are never copied: the serving API keeps argon2id hashes Superset cannot check, and copying a hash would
tie two systems' credentials together. A new user gets a random password nobody is told; the admin sets the
person's password with ``mo dashboards add-user`` (which also keeps the role and organisation) and hands it over.
(Superset's reset-by-email needs a mail server the platform does not run.)

Idempotent: a second run changes nothing and writes nothing. Every change is audited in the platform's audit log
(action ``dashboards.user_sync``, actor ``cli:<the operating-system user>``).
"""

from __future__ import annotations

import getpass
import json
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from mo.dashboards import REPO_ROOT, SUPERSET_VENV, DashboardError, superset_env
from mo.dashboards_audit import AUDIT
from mo.oltp.api_tables import StaffUser

SYNCED_ROLES = ("analyst", "marketer", "admin")


def serving_accounts(source: Any) -> list[dict[str, Any]]:
    """Every staff account as the sync sends it (the ones without dashboards as inactive)."""
    staff = StaffUser.__table__
    with source.connect() as conn:
        rows = conn.execute(
            select(staff.c.username, staff.c.display_name, staff.c.role, staff.c.org_id, staff.c.disabled)
        ).all()
    return [
        {
            "username": r.username,
            "display_name": r.display_name,
            "role": r.role,
            "org": r.org_id,
            "active": r.role in SYNCED_ROLES and not r.disabled,
        }
        for r in rows
    ]


def sync_users(settings: Any, *, actor: str | None = None) -> list[dict[str, Any]]:
    """Run the sync inside Superset (dashboards/bootstrap.py sync-users); audit and return the changes."""
    from mo.oltp.db import make_engine

    python = SUPERSET_VENV / "bin" / "python"
    if not python.exists():
        raise DashboardError("Superset's environment is missing: run `make dashboards-env`")
    home = Path(settings.home)
    source = make_engine(settings.resolved_source_url)
    try:
        accounts = serving_accounts(source)
        result = subprocess.run(
            [str(python), str(REPO_ROOT / "dashboards" / "bootstrap.py"), "sync-users"],
            input="".join(json.dumps(a) + "\n" for a in accounts),
            capture_output=True,
            text=True,
            env=superset_env(home),
            timeout=600,
        )
        log_path = home / "logs" / "superset-sync-users.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(result.stdout + result.stderr, encoding="utf-8")
        if result.returncode != 0:
            lines = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error")]
            raise DashboardError(f"Superset's user sync failed: {(lines or ['see the log'])[-1]} (log: {log_path})")
        changes = [json.loads(line[10:]) for line in result.stdout.splitlines() if line.startswith("mo-change ")]
        if changes:
            at = datetime.now(UTC).replace(tzinfo=None)
            request_id = f"dashboards-sync-users:{uuid.uuid4()}"
            with source.begin() as conn:
                conn.execute(
                    insert(AUDIT),
                    [
                        {
                            "at": at,
                            "request_id": request_id,
                            "actor": f"cli:{actor or getpass.getuser()}"[:80],
                            "role": None,
                            "action": "dashboards.user_sync",
                            "resource": f"superset user {c['username']}"[:200],
                            "customer_id": None,
                            "outcome": "ok",
                            "status_code": 200,
                            "detail": f"{c['change']}; role {c['role']}; organisation {c['org']}",
                        }
                        for c in changes
                    ],
                )
        return changes
    finally:
        source.dispose()
