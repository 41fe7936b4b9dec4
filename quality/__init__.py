"""Data quality gates: Great Expectations suites derived from the contracts in schemas/."""

from quality.gates import GateFailure, GateResult, run_silver_gate
from quality.suites import expectations_for

__all__ = ["GateFailure", "GateResult", "expectations_for", "run_silver_gate"]
