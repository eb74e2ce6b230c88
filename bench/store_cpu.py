#!/usr/bin/env python3
"""CPU and wall time of ``Archive.store`` per instance, without the DICOM network layer.

Calls the archive the way the C-STORE path does (pacs/scp/store.py): each file already in
the object store's staging directory with its SHA-256 computed by the receiver,
``consume=True``, the request's SOP Class/Instance UIDs given, services built by
``build_services`` (so the RIS listener runs), fsync on. Prints process CPU (all threads:
the object-put helper and the audit writer count too) and wall time per instance.

  store_cpu.py --db sqlite|pg [--n 300] [--src DIR] [--profile out.prof]

``--src`` puts another checkout first on ``sys.path``, so two versions of the code can be
measured interleaved by the same script. The corpus is bench ``small`` (CT and MR series);
``BENCH_CORPUS`` names another directory.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

CORPUS = Path(os.environ.get("BENCH_CORPUS", "/work/main/bench/work/corpus/small"))
PG_ADMIN = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def corpus_files(n: int) -> list[Path]:
    """CT then MR instances, whole series in order (as storescu sends a study)."""
    ct = sorted(p for p in CORPUS.rglob("*.dcm") if "_CT" in p.parent.name)
    mr = sorted(p for p in CORPUS.rglob("*.dcm") if "_MR" in p.parent.name)
    n_mr = min(len(mr), n // 5)
    return ct[: n - n_mr] + mr[:n_mr]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", choices=["sqlite", "pg"], default="sqlite")
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--src", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--profile", default="")
    args = ap.parse_args()
    sys.path.insert(0, args.src)

    from pydicom import dcmread
    from sqlalchemy import create_engine, text

    from ris.services import build_services
    from storage import StorageSettings
    from storage.index.migrate import upgrade
    from storage.origin import Origin

    work = Path(tempfile.mkdtemp(prefix="storecost-"))
    pg_name = ""
    if args.db == "sqlite":
        url = f"sqlite:///{work / 'index.db'}"
    else:
        pg_name = f"storecost_{uuid.uuid4().hex[:8]}"
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{pg_name}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + "/" + pg_name
    upgrade(url)
    svc = build_services(StorageSettings(database_url=url, storage_url=f"file://{work / 'obj'}"))
    staging = svc.objects.staging_dir()  # type: ignore[attr-defined]
    origin = Origin(channel="dimse", calling_ae="STORESCU", called_ae="PACS",
                    address="127.0.0.1:40000")

    files = corpus_files(args.n)
    jobs = []
    for i, src in enumerate(files):
        dst = staging / f"in-{i:05d}.dcm"
        shutil.copyfile(src, dst)
        data = dst.read_bytes()
        ds = dcmread(dst, stop_before_pixels=True, specific_tags=["SOPClassUID",
                                                                    "SOPInstanceUID"])
        jobs.append((dst, hashlib.sha256(data).hexdigest(), str(ds.SOPClassUID),
                     str(ds.SOPInstanceUID)))
    os.sync()

    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile(time.process_time)
    cpu = wall = 0.0
    for path, digest, sop_class, sop_instance in jobs:
        c0, w0 = time.process_time(), time.perf_counter()
        if profiler:
            profiler.enable()
        svc.archive.store(path, origin, sop_class_uid=sop_class, sop_instance_uid=sop_instance,
                          consume=True, sha256=digest)
        if profiler:
            profiler.disable()
        cpu += time.process_time() - c0
        wall += time.perf_counter() - w0
    n = len(jobs)
    counts = svc.archive.count()
    assert counts["instances"] == n, counts
    print(f"{args.db} n={n} cpu={cpu / n * 1000:.2f} ms/inst wall={wall / n * 1000:.2f} ms/inst"
          f" src={args.src}", flush=True)
    if profiler:
        profiler.dump_stats(args.profile)
    svc.close()
    shutil.rmtree(work, ignore_errors=True)
    if pg_name:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
