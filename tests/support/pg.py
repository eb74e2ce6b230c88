"""PostgreSQL for tests: one migrated template database, one copy per test.

The server runs on this machine (127.0.0.1:5432, trust auth). Without it the PostgreSQL
variants skip with a reason naming what is missing, unless PACS_TEST_REQUIRE_POSTGRES=1
(as in CI), where they fail instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

ADMIN_URL = os.environ.get(
    "PACS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TEMPLATE = f"pacs_tmpl_{os.getpid()}"


def _admin():  # type: ignore[no-untyped-def]
    return create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def database_url(name: str) -> str:
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def unavailable_reason() -> str | None:
    try:
        engine = _admin()
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means: no usable server
        return f"PostgreSQL not reachable at {ADMIN_URL.split('@')[-1]} ({type(exc).__name__})"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """Create and migrate the template database once per session."""
    reason = unavailable_reason()
    if reason:
        if os.environ.get("PACS_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(reason + " and PACS_TEST_REQUIRE_POSTGRES=1")
        pytest.skip(reason)
    from storage.index.migrate import upgrade

    engine = _admin()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{TEMPLATE}"'))
        conn.execute(text(f'CREATE DATABASE "{TEMPLATE}"'))
    upgrade(database_url(TEMPLATE))
    yield TEMPLATE
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{TEMPLATE}" WITH (FORCE)'))
    engine.dispose()


def fresh_database(template: str) -> tuple[str, str]:
    name = f"pacs_t_{uuid.uuid4().hex[:12]}"
    engine = _admin()
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    engine.dispose()
    return name, database_url(name)


def drop_database(name: str) -> None:
    engine = _admin()
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()
