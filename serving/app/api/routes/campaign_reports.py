"""Campaign results from the lake: the weekly and monthly reports and one campaign's figures per period.

Both read the published serving store (tables ``campaign_results`` and ``campaign_uplift``, copies of the dbt
marts mart_campaign_results and mart_campaign_uplift built by build_profiles) through the platform's one reader,
``mo.serving_store.campaign_reports``, in one snapshot with the refresh they name. They are the lake's view,
as of the refresh; a campaign's live funnel comes from the core database (mo/campaigns/results.py).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import SourceDep, StoreDep, authorized
from app.api.routes.campaigns import CampaignId, ProductLine
from app.core.errors import ApiError, problem_responses
from app.core.pagination import Cursor, Limit, decode_cursor, encode_cursor
from app.core.roles import Scope
from app.services import campaigns as campaign_service
from app.services.published import snapshot, source_reads
from mo.serving_store.campaign_reports import campaign_uplift, line_uplift, results_page

router = APIRouter(tags=["campaign reports"])
Period = Literal["week", "month"]
ROW_EXAMPLE = {
    "campaign_id": 42,
    "campaign_code": "CMP-RENEW-01",
    "campaign_name": "车险续保提醒",
    "channel": "sms",
    "product_line": "auto",
    "period": "week",
    "period_start": "2026-11-30",
    "period_label": "2026-W49",
    "audience": 1200,
    "decided": 1180,
    "waiting": 20,
    "suppressed": 310,
    "suppressed_by_reason": {"no_consent": 120, "holdout": 110, "cap_7d": 80, "other": 0},
    "sent": 860,
    "delivered": 842,
    "failed": 10,
    "dead_letter": 2,
    "opened": 400,
    "clicked": 95,
    "converted": 31,
    "treated": 1010,
    "treated_converted": 34,
    "holdout": 110,
    "holdout_converted": 2,
}
UPLIFT_EXAMPLE = {
    "scope": "campaign",
    "campaign_id": 42,
    "campaign_code": "CMP-RENEW-01",
    "product_line": "auto",
    "treated": 1010,
    "treated_converted": 34,
    "holdout": 110,
    "holdout_converted": 2,
    "treated_rate": 0.0337,
    "holdout_rate": 0.0182,
    "difference": 0.0155,
    "ci_low": -0.0224,
    "ci_high": 0.0354,
}


class ResultsRow(BaseModel):
    """One campaign x channel x product line x period of the results mart."""

    model_config = ConfigDict(json_schema_extra={"examples": [ROW_EXAMPLE]})
    campaign_id: int
    campaign_code: str | None
    campaign_name: str | None
    channel: str = Field(description="'none': suppressed before a channel was chosen.")
    product_line: str
    period: Period
    period_start: date = Field(description="Monday of the ISO week, or the first day of the month.")
    period_label: str = Field(description="2026-W49 or 2026-12.")
    audience: int = Field(description="Touches decided or waiting in the period.")
    decided: int
    waiting: int
    suppressed: int
    suppressed_by_reason: dict[str, int] = Field(description="Final suppressions per reason; 'other' for the rest.")
    sent: int
    delivered: int
    failed: int
    dead_letter: int
    opened: int
    clicked: int
    converted: int = Field(description="Sent touches followed by a policy of the line within the window.")
    treated: int
    treated_converted: int
    holdout: int
    holdout_converted: int


class Uplift(BaseModel):
    """Conversion over the holdout with Newcombe's 95% hybrid score interval of the difference."""

    model_config = ConfigDict(json_schema_extra={"examples": [UPLIFT_EXAMPLE]})
    scope: Literal["campaign", "product_line"]
    campaign_id: int | None
    campaign_code: str | None
    product_line: str
    treated: int
    treated_converted: int
    holdout: int
    holdout_converted: int
    treated_rate: float | None
    holdout_rate: float | None
    difference: float | None = Field(description="Treated rate minus holdout rate.")
    ci_low: float | None
    ci_high: float | None


class CampaignReport(BaseModel):
    """A page of the weekly or monthly campaign report, with the uplift of the lines it covers."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "refresh_id": "20261206020000123456a1b2c3",
                    "as_of_date": "2026-12-05",
                    "period": "week",
                    "items": [ROW_EXAMPLE],
                    "uplift_by_product_line": [{**UPLIFT_EXAMPLE, "scope": "product_line", "campaign_id": None,
                                                "campaign_code": None}],
                    "next_cursor": None,
                }
            ]
        }
    )  # fmt: skip
    refresh_id: str
    as_of_date: date
    period: Period
    items: list[ResultsRow]
    uplift_by_product_line: list[Uplift]
    next_cursor: str | None = None


class CampaignResults(BaseModel):
    """One campaign's lake figures per period and channel, and its uplift over the holdout."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "campaign_id": 42,
                    "refresh_id": "20261206020000123456a1b2c3",
                    "as_of_date": "2026-12-05",
                    "period": "week",
                    "items": [ROW_EXAMPLE],
                    "uplift": UPLIFT_EXAMPLE,
                    "next_cursor": None,
                }
            ]
        }
    )
    campaign_id: int
    refresh_id: str
    as_of_date: date
    period: Period
    items: list[ResultsRow]
    uplift: Uplift | None = Field(description="None until a touch of the campaign reached either group.")
    next_cursor: str | None = None


def _after(cursor: str | None) -> tuple[date, int, str, str] | None:
    key = decode_cursor(cursor, arity=4)
    if key is None:
        return None
    try:
        day, campaign, channel, line = key
        if not (isinstance(campaign, int) and isinstance(channel, str) and isinstance(line, str)):
            raise ValueError
        if isinstance(campaign, bool) or not 0 < campaign < 2**63 or len(channel) > 16 or len(line) > 16:
            raise ValueError
        return date.fromisoformat(day), campaign, channel, line
    except (TypeError, ValueError):
        raise ApiError(
            422, "cursor is not one this API returned", kind="validation", errors=[("/query/cursor", "invalid cursor")]
        ) from None


def _cursor(key: tuple[date, int, str, str] | None) -> str | None:
    return None if key is None else encode_cursor([key[0].isoformat(), key[1], key[2], key[3]])


PeriodQuery = Annotated[Period, Query(description="week (ISO weeks) or month (calendar months).")]
FromQuery = Annotated[date | None, Query(alias="from", description="First period start to include (inclusive).")]
ToQuery = Annotated[date | None, Query(alias="to", description="Last period start to include (inclusive).")]


@router.get(
    "/v1/reports/campaigns",
    response_model=CampaignReport,
    responses=problem_responses(401, 403, 422, 429, 503),
    summary="The weekly or monthly campaign report (from the published lake marts)",
)
def campaign_report(
    caller: authorized(Scope.CAMPAIGNS_READ, "campaign_reports.read"),
    store: StoreDep,
    period: PeriodQuery = "week",
    date_from: FromQuery = None,
    date_to: ToQuery = None,
    product_line: Annotated[ProductLine | None, Query(description="Only this product line.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    """Every campaign's results per channel and product line in each period whose start lies in [from, to],
    ordered by period, campaign, channel and line; with the uplift over the holdout per product line."""
    if date_from is not None and date_to is not None and date_from > date_to:
        raise ApiError(422, "from is after to", kind="validation", errors=[("/query/from", "must not be after to")])
    after = _after(cursor)
    with snapshot(store) as snap:
        items, last = results_page(
            snap.conn, store, period=period, date_from=date_from, date_to=date_to, product_line=product_line,
            after=after, limit=limit,
        )  # fmt: skip
        uplift = line_uplift(snap.conn, store, product_line)
        refresh_id, as_of = snap.refresh_id, snap.as_of_date
    return {
        "refresh_id": refresh_id,
        "as_of_date": as_of,
        "period": period,
        "items": items,
        "uplift_by_product_line": uplift,
        "next_cursor": _cursor(last),
    }


@router.get(
    "/v1/campaigns/{campaign_id}/results",
    response_model=CampaignResults,
    responses=problem_responses(401, 403, 404, 422, 429, 503),
    summary="A campaign's results per period and channel (from the published lake marts)",
)
def campaign_results(
    campaign_id: CampaignId,
    caller: authorized(Scope.CAMPAIGNS_READ, "campaign_reports.campaign"),
    source: SourceDep,
    store: StoreDep,
    period: PeriodQuery = "week",
    date_from: FromQuery = None,
    date_to: ToQuery = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    """An unknown campaign is a 404; a campaign the lake has not seen yet has no rows and no uplift."""
    if date_from is not None and date_to is not None and date_from > date_to:
        raise ApiError(422, "from is after to", kind="validation", errors=[("/query/from", "must not be after to")])
    after = _after(cursor)
    with source_reads(source) as conn:
        campaign_service.load(conn, campaign_id)
    with snapshot(store) as snap:
        items, last = results_page(
            snap.conn, store, period=period, date_from=date_from, date_to=date_to, campaign_id=campaign_id,
            after=after, limit=limit,
        )  # fmt: skip
        uplift = campaign_uplift(snap.conn, store, campaign_id)
        refresh_id, as_of = snap.refresh_id, snap.as_of_date
    return {
        "campaign_id": campaign_id,
        "refresh_id": refresh_id,
        "as_of_date": as_of,
        "period": period,
        "items": items,
        "uplift": uplift,
        "next_cursor": _cursor(last),
    }
