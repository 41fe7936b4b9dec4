"""Which customers a caller may see: everyone, an organisation's subtree, or an agent's own customers.

A customer belongs to the organisations and the agents of their policies (the core systems' facts, read
from the source database, never from a copy). Unscoped callers (the company-wide apps, head-office staff)
skip the query entirely.
"""

from __future__ import annotations

import time
from threading import Lock

from sqlalchemy import Connection, Engine, exists, select

from app.core.errors import ApiError
from app.core.security import Principal
from mo.oltp.models import Organization, Policy

POLICIES = Policy.__table__
ORGS = Organization.__table__
SUBTREE_TTL_SECONDS = 300

_subtrees: dict[int, tuple[float, frozenset[int]]] = {}
_lock = Lock()


def org_subtree(conn: Connection, root: int) -> frozenset[int]:
    """The organisation and everything under it (cached for a few minutes: the tree changes rarely)."""
    now = time.monotonic()
    with _lock:
        cached = _subtrees.get(root)
        if cached and now - cached[0] < SUBTREE_TTL_SECONDS:
            return cached[1]
    children: dict[int | None, list[int]] = {}
    for org_id, parent_id in conn.execute(select(ORGS.c.id, ORGS.c.parent_id)):
        children.setdefault(parent_id, []).append(org_id)
    found, frontier = {root}, [root]
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, []) if c not in found]
        found.update(frontier)
    subtree = frozenset(found)
    with _lock:
        _subtrees[root] = (now, subtree)
    return subtree


def can_see(conn: Connection, principal: Principal, customer_id: int) -> bool:
    if not principal.scoped_to_customers:
        return True
    condition = POLICIES.c.customer_id == customer_id
    if principal.agent_id is not None:
        condition = condition & (POLICIES.c.agent_id == principal.agent_id)
    if principal.org_id is not None:
        condition = condition & POLICIES.c.org_id.in_(org_subtree(conn, principal.org_id))
    return bool(conn.execute(select(exists().where(condition))).scalar())


def require_visible(source: Engine | Connection, principal: Principal, customer_id: int) -> None:
    """404 (not 403) for a customer outside the caller's scope: whether they exist is not the caller's to know."""
    if not principal.scoped_to_customers:
        return
    if isinstance(source, Connection):
        visible = can_see(source, principal, customer_id)
    else:
        with source.connect() as conn:
            visible = can_see(conn, principal, customer_id)
    if not visible:
        raise ApiError(404, f"customer {customer_id} not found")
