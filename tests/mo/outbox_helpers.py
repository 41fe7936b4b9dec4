"""Shared by the outbox tests: throwaway source databases (named mo_outbox_*) and a topic reader."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from mo.oltp.db import make_engine, migrate
from tests.conftest import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL, _create_database, _drop_database, unique

ADMIN_URLS = {"mariadb": MARIADB_ADMIN_URL, "postgres": POSTGRES_ADMIN_URL}


def migrated_engine(kind: str, tmp_path) -> Iterator[Any]:
    """A migrated source database of the kind ('sqlite', 'mariadb', 'postgres'), dropped afterwards."""
    if kind == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'source.db'}")
        migrate(engine)
        yield engine
        engine.dispose()
        return
    name = unique("mo_outbox")
    url = _create_database(ADMIN_URLS[kind], name)
    engine = make_engine(url)
    try:
        migrate(engine)
        yield engine
    finally:
        engine.dispose()
        _drop_database(ADMIN_URLS[kind], name)


def customer_row(customer_id: int) -> dict[str, Any]:
    now = datetime(2026, 12, 1, 9, 0, 0)
    return {
        "id": customer_id,
        "name": "T*",
        "id_number": f"11010119900101{customer_id:04d}",
        "phone": "138****0000",
        "gender": "F",
        "birth_date": date(1990, 1, 1),
        "province": "Beijing",
        "city": "Beijing",
        "acquisition_channel": "app",
        "wechat_openid": None,
        "app_user_id": None,
        "risk_rating": "R2",
        "created_at": now,
        "updated_at": now,
        "deleted_at": None,
    }


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 20.0) -> list:
    """Every message of the topic (by explicit assignment, no group join), stopping once ``expected`` arrived."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        deadline = time.monotonic() + timeout_s
        partitions: list = []
        while not partitions and time.monotonic() < deadline:
            partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not partitions:
                time.sleep(0.1)
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        messages: list = []
        while len(messages) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                messages.extend(batch)
        # A little longer: more than expected (a duplicate) must be seen too.
        for batch in consumer.poll(timeout_ms=300).values():
            messages.extend(batch)
        return sorted(messages, key=lambda m: (m.partition, m.offset))
    finally:
        consumer.close()
