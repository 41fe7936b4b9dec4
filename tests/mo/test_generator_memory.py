"""Generating a world takes memory for a few batches only, never for the whole book."""

from __future__ import annotations

import tracemalloc

from mo.generator.world import generate_world
from mo.oltp.db import make_engine, migrate


def _peak_bytes(path, customers: int) -> int:
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    tracemalloc.start()
    try:
        report = generate_world(engine, customers=customers, seed=3, batch_size=150)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        engine.dispose()
    assert report["rows"]["customers"] == customers
    return peak


def test_peak_memory_does_not_grow_with_the_number_of_customers(tmp_path):
    small = _peak_bytes(tmp_path / "small.db", 600)
    large = _peak_bytes(tmp_path / "large.db", 2_400)
    # Four times the customers, (nearly) the same peak: only the batches in flight are ever held.
    assert large < small * 1.25 + 1_000_000, (small, large)
