#!/usr/bin/env python3
"""What dcmtk ``findscu`` itself costs per pending C-FIND response: the floor under any
C-FIND latency the harness measures with it.

Starts a tiny SCP on 127.0.0.1 that answers every C-FIND with N identical pending
responses (a typical 14-key study identifier), encoded once and written to the socket in
one ``send``, then Success: no index, no encoding per match. Each N is timed with the
harness's own findscu code (``bench_find.findscu_bench``: the log timestamps from
"Sending Find Request" to "Received Final Find Response"), and findscu's CPU per query
is read from ``getrusage`` of its process (association setup included, over 20 queries).

  find_floor.py [--n 2,65,612,1383] [--port 25250] [--iterations 30]

Environment: BENCH_HARNESS [../shared/bench], where bench_find.py is.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from pacs.scp import responses
from storage.index.match import Match
from storage.index.query import Level

HARNESS = Path(os.environ.get("BENCH_HARNESS", Path(__file__).resolve().parents[2] / "shared/bench"))
IDENTIFIER = Match(Level.STUDY, [
    (0x00080020, "DA", "20261101"), (0x00080030, "TM", "101010"), (0x00080050, "SH", "ACC123456"),
    (0x00080061, "CS", ["CT"]), (0x00080090, "PN", "REF^DOC"), (0x00081030, "LO", "CT CHEST"),
    (0x00100010, "PN", "SMITH^LAURA"), (0x00100020, "LO", "PID0001234"),
    (0x00100030, "DA", "19600101"), (0x00100040, "CS", "F"),
    (0x0020000D, "UI", "1.2.826.0.1.3680043.8.498.12345678901234567890"),
    (0x00200010, "SH", "1"), (0x00201206, "IS", "3"), (0x00201208, "IS", "300"),
]).encode(True, True)


def _serve(port: int, count: dict[str, int]) -> Any:
    def handle(event: Any) -> Any:
        event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = responses.PendingResponses(event)
        one = responses._pdus(pending._context_id, pending._command, IDENTIFIER,
                              pending._dimse.maximum_pdu_size)
        pending._dimse.dul.send_pdu(responses.EncodedPDUs(one * count["n"]))
        return iter(())

    responses.send_encoded_pdus()
    ae = AE("PACS")
    ae.add_supported_context(StudyRootQueryRetrieveInformationModelFind)
    return ae.start_server(("127.0.0.1", port), block=False,
                           evt_handlers=[(evt.EVT_C_FIND, handle)])


def _findscu_cpu(port: int, repeat: int = 20) -> float:
    """findscu's CPU seconds per query over ``repeat`` queries in one association."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(["findscu", "--repeat", str(repeat), "-S", "-aet", "BENCHSCU", "-aec", "PACS",
                    "-k", "QueryRetrieveLevel=STUDY", "-k", "PatientID=X", "127.0.0.1", str(port)],
                   capture_output=True, check=True, env=dict(os.environ, TCP_NODELAY="1"))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / repeat


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="2,65,612,1383")
    ap.add_argument("--port", type=int, default=25250)
    ap.add_argument("--iterations", type=int, default=30)
    args = ap.parse_args()
    sys.path.insert(0, str(HARNESS))
    import bench_find  # the harness's findscu timing, not a copy of it

    count = {"n": 0}
    server = _serve(args.port, count)
    bench = types.SimpleNamespace(iterations=args.iterations, warmup=3, aet="BENCHSCU",
                                  aec="PACS", host="127.0.0.1", port=args.port)
    try:
        for n in (int(x) for x in args.n.split(",")):
            count["n"] = n
            lat = bench_find.findscu_bench(bench, {"q": ({"PatientID": "X"}, n)})["q"]
            cpu = _findscu_cpu(args.port)
            print(f"N={n:5d} {'ok' if lat['ok'] else 'WRONG COUNT'}  latency median "
                  f"{lat['lat_ms']['median']:6.1f} ms  p95 {lat['lat_ms']['p95']:6.1f} ms  "
                  f"findscu CPU {cpu * 1e3:6.1f} ms/query", flush=True)
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
