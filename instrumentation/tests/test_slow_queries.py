"""Slow query logging from SQLAlchemy events (SQLite here; PostgreSQL in test_integration)."""

from __future__ import annotations

import logging

import pytest


def test_slow_queries_sqlite(caplog):
    sa = pytest.importorskip("sqlalchemy")
    from platform_observability.sqlalchemy import log_slow_queries

    engine = sa.create_engine("sqlite://")
    log_slow_queries(engine, threshold_ms=0)
    fast = sa.create_engine("sqlite://")
    log_slow_queries(fast, threshold_ms=10_000)
    with caplog.at_level(logging.WARNING, logger="platform_observability.slow_query"):
        with engine.connect() as c:
            c.execute(sa.text("SELECT 1"))
        with fast.connect() as c:
            c.execute(sa.text("SELECT 2"))
    records = [r for r in caplog.records if r.name == "platform_observability.slow_query"]
    assert [getattr(r, "db.statement") for r in records] == ["SELECT 1"]
    assert getattr(records[0], "db.system") == "sqlite"


def test_slow_query_threshold_from_environment(monkeypatch, caplog):
    sa = pytest.importorskip("sqlalchemy")
    from platform_observability.sqlalchemy import log_slow_queries

    monkeypatch.setenv("SLOW_QUERY_THRESHOLD_MS", "100000")
    engine = sa.create_engine("sqlite://")
    log_slow_queries(engine)
    with caplog.at_level(logging.WARNING, logger="platform_observability.slow_query"):
        with engine.connect() as c:
            c.execute(sa.text("SELECT 1"))
    assert not [r for r in caplog.records if r.name == "platform_observability.slow_query"]
