"""The limits of the campaign dispatcher's lease (mo.campaigns.dispatch.DispatchLease), without the dispatcher's
imports, so ``mo campaigns dispatch`` checks its options before anything heavy loads.

The lease is renewed before every round and every decision chunk and lasts at least three round intervals, so
one late round does not hand it over. Below five seconds a slow decision chunk loses it to a standby; above an
hour a standby waits that long after a killed dispatcher before any campaign goes out again.
"""

from __future__ import annotations

LEASE_MIN_S = 5.0
LEASE_MAX_S = 3600.0
INTERVAL_MIN_S = 0.5
INTERVAL_MAX_S = LEASE_MAX_S / 3  # three intervals still fit in the longest lease


def lease_ttl(lease_s: float, interval_s: float) -> float:
    """The lease's duration for a dispatcher asked for ``lease_s`` with rounds ``interval_s`` apart: at least three
    intervals. Values outside the limits are refused (ValueError naming the value)."""
    if not LEASE_MIN_S <= lease_s <= LEASE_MAX_S:
        raise ValueError(f"lease {lease_s:g} s is outside {LEASE_MIN_S:g}..{LEASE_MAX_S:g} s")
    if not INTERVAL_MIN_S <= interval_s <= INTERVAL_MAX_S:
        raise ValueError(f"interval {interval_s:g} s is outside {INTERVAL_MIN_S:g}..{INTERVAL_MAX_S:g} s")
    return max(lease_s, 3 * interval_s)
