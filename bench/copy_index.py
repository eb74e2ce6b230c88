#!/usr/bin/env python3
"""Copy every row of one Filmless PACS index into another (e.g. SQLite -> PostgreSQL).

Used by run.sh (BENCH_PG_100K_LOAD=copy) to give the PostgreSQL index the same 100,000
studies that `pacs import` put into the SQLite index, without importing 95,000 files a
second time. The target schema is created by the project's own migrations (`pacs db
upgrade` code path), the rows are copied table by table in foreign-key order with the
project's table definitions (storage.index.models), and PostgreSQL sequences are moved past
the copied ids so later inserts work. The target must hold no studies; the rows its
migrations seed (the audit chain's head, default settings) are replaced by the source's.

  copy_index.py SOURCE_URL TARGET_URL
  e.g. copy_index.py sqlite:////path/index.db postgresql+psycopg://postgres@127.0.0.1:5432/pacs_bench
"""
from __future__ import annotations

import sys
import time

from sqlalchemy import create_engine, func, select, text

from storage.index.migrate import upgrade
from storage.index.models import Base

BATCH = 5000


def main() -> int:
    src_url, dst_url = sys.argv[1], sys.argv[2]
    upgrade(dst_url)
    src, dst = create_engine(src_url), create_engine(dst_url)
    tables = [t for t in Base.metadata.sorted_tables]
    t0 = time.perf_counter()
    with src.connect() as s, dst.begin() as d:
        studies = Base.metadata.tables["studies"]
        if d.scalar(select(func.count()).select_from(studies)):
            print("target index already holds studies", file=sys.stderr)
            return 1
        for t in reversed(tables):  # seeded rows only: the source's replace them
            d.execute(t.delete())
        for t in tables:
            n = 0
            res = s.execution_options(stream_results=True).execute(select(t).order_by(*t.primary_key.columns))
            while True:
                rows = res.fetchmany(BATCH)
                if not rows:
                    break
                d.execute(t.insert(), [r._asdict() for r in rows])
                n += len(rows)
            if dst.dialect.name == "postgresql" and n:
                for c in t.primary_key.columns:
                    seq = d.scalar(text("select pg_get_serial_sequence(:t, :c)"), {"t": t.name, "c": c.name})
                    if seq:
                        d.execute(text(f"select setval('{seq}', (select max({c.name}) from {t.name}))"))
            print(f"{t.name}: {n} rows", file=sys.stderr)
    if dst.dialect.name == "postgresql":
        with dst.connect().execution_options(isolation_level="AUTOCOMMIT") as d:
            d.execute(text("ANALYZE"))
    print(f"copied in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
