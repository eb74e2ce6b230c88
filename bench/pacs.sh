#!/usr/bin/env bash
# Manage a private Filmless PACS for benchmarking: start | stop | reset | status | rss [LABEL] | pids
#
# Usable as the harness's BENCH_RESET_CMD: `bench/pacs.sh reset` records the peak RSS of the
# running server (the run that just ended), stops it, wipes its data directory (and, for
# PostgreSQL, drops and re-creates its database), syncs, starts it again empty and waits
# until `echoscu` and GET /api/health answer.
#
# Environment (defaults in brackets):
#   PACS_BENCH_DB        sqlite | postgres                         [sqlite]
#   PACS_BENCH_WORKERS   PACS_DICOM_WORKERS for the server         [2]
#   PACS_BENCH_DICOM_PORT / PACS_BENCH_HTTP_PORT                   [11400 / 8400]
#   PACS_BENCH_AET       called AE title                           [PACS]
#   PACS_BENCH_RUN       run dir: data dir, pid file, log          [bench/work/pacs-<db>]
#   PACS_BENCH_PGDB      PostgreSQL database name (postgres only)  [pacs_bench]
#   PACS_BENCH_PGURL     server URL without the db name            [postgresql+psycopg://postgres@127.0.0.1:5432]
#   PACS_BIN             the pacs executable                       [<repo>/.venv/bin/pacs]
#   PACS_BENCH_RSS_FILE  where `rss`/`reset` append JSON lines     [bench/results/rss.jsonl]
#   PACS_BENCH_LABEL     label stored with each RSS snapshot       [pacs-<db>-w<workers>]
#   PACS_BENCH_CODE      run the project code from this directory (a `git archive` snapshot
#                        made by run.sh, put first on PYTHONPATH) instead of the live
#                        working tree the editable install points at          [unset]
# Only the PID in our own pid file and its descendants (recorded before stopping) are signalled.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
DB="${PACS_BENCH_DB:-sqlite}"
WORKERS="${PACS_BENCH_WORKERS:-2}"
DPORT="${PACS_BENCH_DICOM_PORT:-11400}"
HPORT="${PACS_BENCH_HTTP_PORT:-8400}"
AET="${PACS_BENCH_AET:-PACS}"
RUN="${PACS_BENCH_RUN:-$HERE/work/pacs-$DB}"
PGDB="${PACS_BENCH_PGDB:-pacs_bench}"
PGURL="${PACS_BENCH_PGURL:-postgresql+psycopg://postgres@127.0.0.1:5432}"
PACS_BIN="${PACS_BIN:-$REPO/.venv/bin/pacs}"
RSS_FILE="${PACS_BENCH_RSS_FILE:-$HERE/results/rss.jsonl}"
LABEL="${PACS_BENCH_LABEL:-pacs-$DB-w$WORKERS}"
PY="${BENCH_PY:-$HERE/.venv/bin/python}"
[[ -x $PY ]] || PY=python3
DATA="$RUN/pacs-data"
PIDF="$RUN/pacs.pid"
LOG="$RUN/pacs.log"

case "$DB" in
  sqlite) DBURL="" ;;
  postgres) DBURL="$PGURL/$PGDB" ;;
  *) echo "PACS_BENCH_DB must be sqlite or postgres" >&2; exit 2 ;;
esac

running() { [[ -f $PIDF ]] && kill -0 "$(cat "$PIDF")" 2>/dev/null; }
port_busy() { ss -Hltn "sport = :$1" | grep -q LISTEN; }

# every variable the server and `pacs` sub-commands (ae add, import) need
pacs_env() {
  export PACS_DATA_DIR="$DATA" PACS_DICOM_PORT="$DPORT" PACS_HTTP_PORT="$HPORT" \
         PACS_AE_TITLE="$AET" PACS_DICOM_WORKERS="$WORKERS"
  if [[ -n $DBURL ]]; then export PACS_DATABASE_URL="$DBURL"; else unset PACS_DATABASE_URL; fi
  if [[ -n ${PACS_BENCH_CODE:-} ]]; then export PYTHONPATH="$PACS_BENCH_CODE${PYTHONPATH:+:$PYTHONPATH}"; fi
}

code_rev() {  # what code the server runs
  if [[ -n ${PACS_BENCH_CODE:-} ]]; then echo "snapshot:$(cat "$PACS_BENCH_CODE/.bench-rev" 2>/dev/null || echo "$PACS_BENCH_CODE")"
  else echo "worktree:$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$REPO" diff --quiet HEAD -- . ':!bench' 2>/dev/null || echo +dirty)"; fi
}

descendants() {  # all descendants of PID $1 (children first level, then deeper)
  local kids k
  kids=$(ps -o pid= --ppid "$1" 2>/dev/null || true)
  for k in $kids; do echo "$k"; descendants "$k"; done
}

wait_ready() {
  for _ in $(seq 1 240); do
    running || { echo "pacs died; last lines of $LOG:" >&2; tail -20 "$LOG" >&2; return 1; }
    if curl -fsS "http://127.0.0.1:$HPORT/api/health" >/dev/null 2>&1 &&
       echoscu -to 2 -aec "$AET" 127.0.0.1 "$DPORT" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.25
  done
  echo "pacs not ready after 60 s; see $LOG" >&2; return 1
}

start() {
  if running; then echo "pacs already running (pid $(cat "$PIDF"))"; return 0; fi
  for p in "$DPORT" "$HPORT"; do
    if port_busy "$p"; then echo "port $p is already in use; set PACS_BENCH_DICOM_PORT/PACS_BENCH_HTTP_PORT" >&2; exit 1; fi
  done
  mkdir -p "$DATA"
  if [[ $DB == postgres ]] && ! psql -h 127.0.0.1 -U postgres -d "$PGDB" -Atc 'select 1' >/dev/null 2>&1; then
    createdb -h 127.0.0.1 -U postgres "$PGDB"
  fi
  pacs_env
  echo "=== $(date -Is) start db=$DB workers=$WORKERS dicom=$DPORT http=$HPORT code=$(code_rev)" >>"$LOG"
  (cd "$RUN" && exec nohup "$PACS_BIN" serve >>"$LOG" 2>&1) &
  echo $! >"$PIDF"
  wait_ready
  echo "pacs started (pid $(cat "$PIDF"), db $DB, workers $WORKERS, DICOM $DPORT, HTTP $HPORT)"
}

stop() {
  if running; then
    local pid kids
    pid=$(cat "$PIDF")
    kids=$(descendants "$pid")
    kill "$pid"
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then echo "pacs $pid did not stop on SIGTERM in 30 s: SIGKILL" >&2; kill -9 "$pid" || true; fi
    # The DICOM worker processes recorded above should be gone with the main process. They
    # are not (pacs 0.1.0): uvicorn re-raises SIGTERM after its shutdown, so the main process
    # dies before its `finally` terminates the workers, and they keep listening on the port.
    # Stop the survivors ourselves (SIGTERM, which they handle; SIGKILL after 5 s) and log it.
    sleep 0.5
    for k in $kids; do
      if kill -0 "$k" 2>/dev/null && [[ $(ps -o stat= -p "$k") != Z* ]]; then
        echo "$(date -Is) pacs.sh: child $k ($(ps -o args= -p "$k" | cut -c1-60)) survived SIGTERM of main $pid: SIGTERM" >>"$LOG"
        kill "$k" 2>/dev/null || true
      fi
    done
    for k in $kids; do
      for _ in $(seq 1 20); do { kill -0 "$k" 2>/dev/null && [[ $(ps -o stat= -p "$k") != Z* ]]; } || break; sleep 0.25; done
      if kill -0 "$k" 2>/dev/null && [[ $(ps -o stat= -p "$k") != Z* ]]; then
        echo "$(date -Is) pacs.sh: child $k still alive after 5 s: SIGKILL" >>"$LOG"; kill -9 "$k" 2>/dev/null || true
      fi
    done
    echo "pacs stopped (pid $pid)"
  fi
  rm -f "$PIDF"
}

rss() {  # append one JSON line: VmHWM/VmRSS of the server and all its descendants
  running || return 0
  mkdir -p "$(dirname "$RSS_FILE")"
  "$PY" "$HERE/rss.py" --pid "$(cat "$PIDF")" --label "$LABEL" --event "${1:-snapshot}" \
        --note "db=$DB workers=$WORKERS code=$(code_rev) ${BENCH_NOTE:-}" >>"$RSS_FILE"
}

wipe() {
  rm -rf "$DATA"
  if [[ $DB == postgres ]]; then
    dropdb -h 127.0.0.1 -U postgres --if-exists --force "$PGDB" 2>/dev/null
    createdb -h 127.0.0.1 -U postgres "$PGDB"
  fi
  sync
}

reset() {  # peak RSS of the run that ended -> stop -> empty -> start -> wait until it answers
  rss reset
  stop >/dev/null
  wipe
  start >/dev/null
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  reset) reset ;;
  wipe) if running; then echo "stop it first" >&2; exit 1; fi; wipe ;;
  rss) rss "${2:-snapshot}" ;;
  pids) running && { cat "$PIDF"; descendants "$(cat "$PIDF")"; } ;;
  env) pacs_env; env | grep -E '^(PACS_|PYTHONPATH=)' | sort ;;   # e.g. eval "$(bench/pacs.sh env | sed 's/^/export /')"
  status) if running; then echo "running pid $(cat "$PIDF")"; else echo stopped; exit 1; fi ;;
  *) echo "usage: $0 start|stop|reset|status|rss [EVENT]|pids|env|wipe" >&2; exit 2 ;;
esac
