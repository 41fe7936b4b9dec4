"""The campaign lifecycle as data: every status reachable from draft, terminal statuses final, who acts."""

from __future__ import annotations

import pytest

from mo.campaigns.lifecycle import (
    ACTIONS,
    APPROVE,
    SYSTEM,
    TERMINAL,
    WRITE,
    IllegalTransition,
    allowed_actions,
    target_status,
)
from mo.oltp.campaign_tables import CAMPAIGN_STATUSES


def test_every_status_is_reachable_from_draft_and_terminal_ones_are_final() -> None:
    reached, frontier = {"draft"}, ["draft"]
    while frontier:
        status = frontier.pop()
        for action in allowed_actions(status):
            target = target_status(action, status, paused_from="running")
            if action == "resume":
                targets = {target, target_status(action, status, paused_from="scheduled")}
            else:
                targets = {target}
            for t in targets - reached:
                reached.add(t)
                frontier.append(t)
    assert reached == set(CAMPAIGN_STATUSES)
    for status in TERMINAL:
        assert allowed_actions(status) == []


def test_who_takes_which_action() -> None:
    assert allowed_actions("submitted", by=APPROVE) == ["approve", "reject"]
    assert allowed_actions("submitted", by=WRITE) == ["cancel"]
    assert allowed_actions("scheduled", by=SYSTEM) == ["start"]
    assert allowed_actions("running", by=SYSTEM) == ["complete"]
    assert {a.by for a in ACTIONS.values()} == {WRITE, APPROVE, SYSTEM}


def test_resume_goes_back_where_the_pause_came_from() -> None:
    assert target_status("resume", "paused", paused_from="running") == "running"
    assert target_status("resume", "paused", paused_from="scheduled") == "scheduled"
    assert target_status("edit", "rejected") == "rejected"


@pytest.mark.parametrize("status", CAMPAIGN_STATUSES)
def test_illegal_actions_name_what_is_allowed(status: str) -> None:
    for action in ACTIONS:
        if action in allowed_actions(status):
            continue
        with pytest.raises(IllegalTransition) as info:
            target_status(action, status)
        assert info.value.allowed == allowed_actions(status)
        assert f"a {status} campaign cannot {action}" in str(info.value)
