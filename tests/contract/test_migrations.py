"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

import ris.models  # noqa: F401  (the RIS tables share the index Base)
import ris.reports.models  # noqa: F401 - the report tables share the index's Base
import ris.savings.models  # noqa: F401 - registers the savings tables on Base
from storage.index.models import Base


def test_migrated_schema_matches_models(database_url: str) -> None:
    engine = create_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []
