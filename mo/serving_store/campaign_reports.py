"""Reads of the published campaign results (serving tables ``campaign_results`` and ``campaign_uplift``, copies
of the marts mart_campaign_results and mart_campaign_uplift): the one reader the serving API's weekly and
monthly reports and a campaign's lake results share.

Rows come in a stable order, ``(period_start, campaign_id, channel, product_line)``, and a page starts strictly
after the key of the previous page's last row (:func:`results_page`), so a cursor built from that key never
skips or repeats a row. The caller passes the connection of its read transaction, so every page is read from
one published refresh.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, text

from mo.campaigns.decision import SUPPRESS_REASONS
from mo.serving_store.store import SqlServingStore

PERIODS = ("week", "month")
COUNTS = (
    "audience",
    "decided",
    "waiting",
    "suppressed",
    "sent",
    "delivered",
    "failed",
    "dead_letter",
    "opened",
    "clicked",
    "converted",
    "treated",
    "treated_converted",
    "holdout",
    "holdout_converted",
)
UPLIFT_COLUMNS = (
    "uplift_scope AS scope",
    "campaign_id",
    "campaign_code",
    "product_line",
    "treated",
    "treated_converted",
    "holdout",
    "holdout_converted",
    "treated_rate",
    "holdout_rate",
    "difference",
    "ci_low",
    "ci_high",
)
ResultsKey = tuple[date, int, str, str]  # period_start, campaign_id, channel, product_line


def _day(store: SqlServingStore, value: date) -> Any:
    return value if store.dialect == "postgresql" else value.isoformat()


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def _result_row(row: Any) -> dict[str, Any]:
    values = row._mapping
    item: dict[str, Any] = {
        "campaign_id": int(values["campaign_id"]),
        "campaign_code": values["campaign_code"],
        "campaign_name": values["campaign_name"],
        "channel": values["channel"],
        "product_line": values["product_line"],
        "period": values["period_type"],
        "period_start": _as_date(values["period_start"]),
        "period_label": values["period_label"],
    }
    for name in COUNTS:
        item[name] = int(values[name] or 0)
    item["suppressed_by_reason"] = {r: int(values[f"suppressed_{r}"] or 0) for r in SUPPRESS_REASONS}
    item["suppressed_by_reason"]["other"] = int(values["suppressed_other"] or 0)
    return item


def results_page(
    conn: Connection,
    store: SqlServingStore,
    *,
    period: str,
    date_from: date | None = None,
    date_to: date | None = None,
    product_line: str | None = None,
    campaign_id: int | None = None,
    after: ResultsKey | None = None,
    limit: int = 50,
) -> tuple[list[dict[str, Any]], ResultsKey | None]:
    """One page of published results rows of ``period`` (week | month) whose period starts in [from, to],
    optionally of one product line and/or one campaign, after ``after``; returns the rows and the key to
    continue from (None on the last page)."""
    if period not in PERIODS:
        raise ValueError(f"period must be one of {', '.join(PERIODS)}")
    where = ["period_type = :period"]
    params: dict[str, Any] = {"period": period, "limit": limit + 1}
    if date_from is not None:
        where.append("period_start >= :date_from")
        params["date_from"] = _day(store, date_from)
    if date_to is not None:
        where.append("period_start <= :date_to")
        params["date_to"] = _day(store, date_to)
    if product_line is not None:
        where.append("product_line = :product_line")
        params["product_line"] = product_line
    if campaign_id is not None:
        where.append("campaign_id = :campaign_id")
        params["campaign_id"] = campaign_id
    if after is not None:
        where.append(
            "(period_start > :a_day OR (period_start = :a_day AND (campaign_id > :a_campaign OR "
            "(campaign_id = :a_campaign AND (channel > :a_channel OR (channel = :a_channel AND "
            "product_line > :a_line))))))"
        )
        params.update(a_day=_day(store, after[0]), a_campaign=after[1], a_channel=after[2], a_line=after[3])
    sql = (
        f"SELECT * FROM {store.qualified('campaign_results')} WHERE {' AND '.join(where)} "
        "ORDER BY period_start, campaign_id, channel, product_line LIMIT :limit"
    )
    rows = [_result_row(r) for r in conn.execute(text(sql), params)]
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]
    return rows, (last["period_start"], last["campaign_id"], last["channel"], last["product_line"])


def campaign_uplift(conn: Connection, store: SqlServingStore, campaign_id: int) -> dict[str, Any] | None:
    """The published uplift of one campaign over its holdout (None: no touch of it reached either group)."""
    row = conn.execute(
        text(
            f"SELECT {', '.join(UPLIFT_COLUMNS)} FROM {store.qualified('campaign_uplift')} "
            "WHERE uplift_scope = 'campaign' AND campaign_id = :campaign_id"
        ),
        {"campaign_id": campaign_id},
    ).first()
    return _uplift(row) if row is not None else None


def line_uplift(conn: Connection, store: SqlServingStore, product_line: str | None = None) -> list[dict[str, Any]]:
    """The published uplift per product line (all its campaigns), of one line or every line."""
    where = "uplift_scope = 'product_line'" + (" AND product_line = :line" if product_line is not None else "")
    rows = conn.execute(
        text(
            f"SELECT {', '.join(UPLIFT_COLUMNS)} FROM {store.qualified('campaign_uplift')} WHERE {where} "
            "ORDER BY product_line"
        ),
        {"line": product_line} if product_line is not None else {},
    )
    return [_uplift(r) for r in rows]


def _uplift(row: Any) -> dict[str, Any]:
    values = dict(row._mapping)
    for name in ("treated", "treated_converted", "holdout", "holdout_converted"):
        values[name] = int(values[name] or 0)
    for name in ("treated_rate", "holdout_rate", "difference", "ci_low", "ci_high"):
        values[name] = None if values[name] is None else float(values[name])
    if values["campaign_id"] is not None:
        values["campaign_id"] = int(values["campaign_id"])
    return values
