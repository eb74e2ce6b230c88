"""The ``pacs`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tomllib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from pacs.settings import Settings
from storage.errors import PacsError
from storage.origin import CLI


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.load(getattr(args, "config", None))


def _services(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from pacs.bootstrap import prepare

    return prepare(_settings(args))


def cmd_serve(args: argparse.Namespace) -> int:
    from pacs.bootstrap import serve

    serve(_settings(args))
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from storage.index.migrate import upgrade

    url = _settings(args).storage().database_url
    upgrade(url)
    print("index schema is up to date")
    return 0


def cmd_ae_add(args: argparse.Namespace) -> int:
    ae = _services(args).aes.add(args.name, args.host, args.port, args.description)
    print(f"added {ae.ae_title} {ae.host}:{ae.port}")
    return 0


def cmd_ae_list(args: argparse.Namespace) -> int:
    aes = _services(args).aes.list()
    if not aes:
        print("no known AEs (add one with: pacs ae add NAME HOST PORT)")
    for ae in aes:
        print(f"{ae.ae_title:<16} {ae.host}:{ae.port}  {ae.description}".rstrip())
    return 0


def cmd_ae_remove(args: argparse.Namespace) -> int:
    _services(args).aes.remove(args.name)
    print(f"removed {args.name}")
    return 0


def _password(args: argparse.Namespace) -> str:
    """A new password: from standard input (``--password-stdin``) or typed twice."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    import getpass

    first = getpass.getpass("New password: ")
    if first != getpass.getpass("Repeat it: "):
        raise PacsError("the two passwords differ")
    return first


def cmd_user_add(args: argparse.Namespace) -> int:
    user = _services(args).accounts.add(args.name, _password(args), args.role, CLI,
                                        full_name=args.full_name)
    print(f"added user {user.username} ({user.role})")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    for user in _services(args).accounts.list():
        state = "disabled" if user.disabled else "active"
        print(f"{user.username:<24} {user.role:<13} {state:<8} {user.full_name}".rstrip())
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    _services(args).accounts.disable(args.name, CLI)
    print(f"disabled {args.name}; its tokens are revoked")
    return 0


def cmd_user_enable(args: argparse.Namespace) -> int:
    _services(args).accounts.update(args.name, CLI, disabled=False)
    print(f"enabled {args.name}")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    _services(args).accounts.set_password(args.name, _password(args), CLI)
    print(f"password of {args.name} changed; its tokens are revoked")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    services = _services(args)
    report = services.audit.verify()
    services.close()
    if report.intact:
        print(f"audit trail intact: {report.records} records, hash chain verified")
        return 0
    print(f"audit trail BROKEN at record {report.broken_at}: {report.reason}")
    return 1


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            for dirpath, _dirs, names in os.walk(path):
                for name in sorted(names):
                    yield Path(dirpath) / name
        else:
            yield path


def cmd_import(args: argparse.Namespace) -> int:
    services = _services(args)
    files = list(_files(args.paths))
    missing = [p for p in args.paths if not p.exists()]
    outcomes: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    examples: dict[str, Path] = {}

    def one(path: Path) -> tuple[Path, str, str]:
        try:
            return path, services.archive.store(path, CLI).outcome.value, ""
        except PacsError as exc:
            return path, "skipped", str(exc)
        except Exception as exc:  # one bad file must not stop an import of thousands
            return path, "skipped", f"unexpected error {type(exc).__name__}"

    with ThreadPoolExecutor(max_workers=args.jobs) as pool, tqdm(
            total=len(files), unit="file", disable=args.quiet) as bar:
        for path, outcome, reason in pool.map(one, files):
            outcomes[outcome] += 1
            if reason:
                skipped[reason] += 1
                examples.setdefault(reason, path)
            bar.update()
    services.close()
    print(f"{len(files)} files: {outcomes['stored']} stored, {outcomes['revised']} new revisions,"
          f" {outcomes['duplicate']} already archived, {outcomes['skipped']} skipped")
    for reason, n in skipped.most_common():
        print(f"  skipped {n}: {reason} (e.g. {examples[reason]})")
    for path in missing:
        print(f"  not found: {path}", file=sys.stderr)
    storage_failures = sum(n for r, n in skipped.items() if "storage" in r or "index" in r)
    return 1 if missing or storage_failures else 0


def cmd_verify(args: argparse.Namespace) -> int:
    from storage.verify import Problem, indexed_objects, verify

    services = _services(args)
    total = len(indexed_objects(services.db))
    findings = []
    with tqdm(total=total, unit="object", disable=args.quiet) as bar:
        for finding in verify(services.db, services.objects, progress=bar.update):
            findings.append(finding)
    for f in findings:
        print(f"{f.problem.value}: {f.object_key} {f.sop_instance_uid}".rstrip())
    print(f"checked {total} indexed objects: "
          + ("everything is consistent" if not findings else f"{len(findings)} problem(s)"))
    if args.repair:
        orphans = [f.object_key for f in findings if f.problem is Problem.ORPHAN_OBJECT]
        for key in orphans:
            try:
                print(f"adopted {key}: {services.archive.adopt(key, CLI).value}")
            except PacsError as exc:
                print(f"cannot adopt {key}: {exc}")
            else:
                findings = [f for f in findings if f.object_key != key]
        print(f"repaired {len(orphans) - sum(f.problem is Problem.ORPHAN_OBJECT for f in findings)}"
              f" of {len(orphans)} objects without index row")
    services.close()
    return 1 if findings else 0


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _write(args: argparse.Namespace, body: bytes) -> None:
    if args.output is None or str(args.output) == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
    else:
        args.output.write_bytes(body)
        print(f"wrote {args.output} ({len(body):,} bytes)", file=sys.stderr)


def cmd_report_savings(args: argparse.Namespace) -> int:
    from ris.savings import Format, Group, render
    from ris.savings.service import default_period as period

    services = _services(args)
    start, end = period(args.start, args.end)
    report = services.savings.report(start, end, Group(args.group))
    operations = (services.savings.operations_report(start, end)
                  if args.format in ("html", "json") and args.operations else None)
    _write(args, render(report, Format(args.format), lang=args.lang, operations=operations))
    services.close()
    return 0


def cmd_report_operations(args: argparse.Namespace) -> int:
    import json

    from ris.savings.service import default_period as period

    services = _services(args)
    start, end = period(args.start, args.end)
    body = services.savings.operations_report(start, end).to_dict()
    _write(args, (json.dumps(body, indent=1) + "\n").encode())
    services.close()
    return 0


def cmd_report_printed(args: argparse.Namespace) -> int:
    services = _services(args)
    mark = services.savings.printed.mark(args.study_uid, args.sheets, CLI,
                                         sheet_size=args.size, note=args.note)
    print(f"marked {mark.study_uid} as printed on {mark.sheets} sheet(s) of {mark.sheet_size}")
    services.close()
    return 0


def parser() -> argparse.ArgumentParser:
    # --config is accepted before or after the command (`pacs serve --config pacs.toml`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help="TOML settings file (environment variables PACS_* win)")
    p = argparse.ArgumentParser(
        prog="pacs", description="Filmless PACS: DICOM archive, RIS and web viewer.",
        parents=[common])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_parser = sub.add_parser

    def sub_parser(name: str, **kw: Any) -> argparse.ArgumentParser:
        return add_parser(name, parents=[common], **kw)

    sub.add_parser = sub_parser  # type: ignore[method-assign]

    s = sub.add_parser("serve", help="start the DICOM, HTTP and HL7 listeners")
    s.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="index database maintenance").add_subparsers(
        dest="db_command", required=True, metavar="ACTION")
    db.add_parser = partial(db.add_parser, parents=[common])  # type: ignore[method-assign]
    db.add_parser("upgrade", help="create or migrate the index schema").set_defaults(
        func=cmd_db_upgrade)

    ae = sub.add_parser("ae", help="known DICOM peers (C-MOVE destinations)").add_subparsers(
        dest="ae_command", required=True, metavar="ACTION")
    ae.add_parser = partial(ae.add_parser, parents=[common])  # type: ignore[method-assign]
    a = ae.add_parser("add", help="register an AE: NAME HOST PORT")
    a.add_argument("name")
    a.add_argument("host")
    a.add_argument("port", type=int)
    a.add_argument("--description", default="")
    a.set_defaults(func=cmd_ae_add)
    ae.add_parser("list", help="list registered AEs").set_defaults(func=cmd_ae_list)
    r = ae.add_parser("remove", help="forget an AE")
    r.add_argument("name")
    r.set_defaults(func=cmd_ae_remove)

    from storage.accounts import Role

    us = sub.add_parser("user", help="HTTP users and their roles").add_subparsers(
        dest="user_command", required=True, metavar="ACTION")
    us.add_parser = partial(us.add_parser, parents=[common])  # type: ignore[method-assign]
    u = us.add_parser("add", help="create a user: NAME --role ROLE (password prompted)")
    u.add_argument("name")
    u.add_argument("--role", required=True, choices=[r.value for r in Role])
    u.add_argument("--full-name", default="")
    u.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input instead of prompting")
    u.set_defaults(func=cmd_user_add)
    us.add_parser("list", help="list users").set_defaults(func=cmd_user_list)
    u = us.add_parser("disable", help="disable a user and revoke its tokens")
    u.add_argument("name")
    u.set_defaults(func=cmd_user_disable)
    u = us.add_parser("enable", help="enable a disabled user")
    u.add_argument("name")
    u.set_defaults(func=cmd_user_enable)
    u = us.add_parser("passwd", help="set a user's password (revokes its tokens)")
    u.add_argument("name")
    u.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input instead of prompting")
    u.set_defaults(func=cmd_user_passwd)

    au = sub.add_parser("audit", help="the audit trail").add_subparsers(
        dest="audit_command", required=True, metavar="ACTION")
    au.add_parser = partial(au.add_parser, parents=[common])  # type: ignore[method-assign]
    au.add_parser("verify", help="check the hash chain; exit 1 at the first broken "
                  "record").set_defaults(func=cmd_audit_verify)

    i = sub.add_parser("import", help="archive DICOM files from folders (recursive)")
    i.add_argument("paths", nargs="+", type=Path, help="files or folders")
    i.add_argument("--jobs", type=int, default=2, help="parallel imports (default 2)")
    i.add_argument("--quiet", action="store_true", help="no progress bar")
    i.set_defaults(func=cmd_import)

    rep = sub.add_parser("report", help="filmless savings and operations reports")
    rep_sub = rep.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    rep_sub.add_parser = partial(rep_sub.add_parser,  # type: ignore[method-assign]
                                 parents=[common])
    period_help = ("exam dates, YYYY-MM-DD, inclusive; default: the last twelve calendar "
                   "months up to today")
    rs = rep_sub.add_parser(
        "savings", help="what going filmless saved, in money (docs/savings.md)",
        description="Studies and images archived, films avoided, studies delivered "
        "digitally versus still printed, costs avoided, storage cost and net savings, "
        "grouped; the totals are the sum of the groups. Prices come from the [savings] "
        "table of the settings (docs/savings.md).")
    rr = rep_sub.add_parser("operations", help="studies per day, turnaround, storage forecast,"
                            " ingest errors (JSON)")
    for r in (rs, rr):
        r.add_argument("--from", dest="start", type=_date, default=None, metavar="DATE",
                       help=period_help)
        r.add_argument("--to", dest="end", type=_date, default=None, metavar="DATE",
                       help="last exam date, inclusive; default: today")
        r.add_argument("--output", "-o", type=Path, default=None, metavar="FILE",
                       help="write to FILE instead of standard output")
    rs.add_argument("--group", choices=["month", "modality", "department", "referring"],
                    default="month", help="one row per ... (default: month)")
    rs.add_argument("--format", choices=["json", "csv", "html", "pdf", "png"], default="json",
                    help="json (default), csv, html (printable page), pdf, png (charts)")
    rs.add_argument("--lang", choices=["vi", "en"], default="en",
                    help="language of html/pdf/png (default: en)")
    rs.add_argument("--operations", action="store_true",
                    help="add the operations figures (json and html)")
    rs.set_defaults(func=cmd_report_savings)
    rr.set_defaults(func=cmd_report_operations)
    rp = rep_sub.add_parser("printed", help="mark a study as printed on film")
    rp.add_argument("study_uid", help="Study Instance UID")
    rp.add_argument("--sheets", type=int, required=True, help="film sheets printed")
    rp.add_argument("--size", default="", help='sheet size in cm, e.g. "35x43"')
    rp.add_argument("--note", default="")
    rp.set_defaults(func=cmd_report_printed)

    v = sub.add_parser("verify", help="check that index and object storage agree")
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    v.add_argument("--repair", action="store_true",
                   help="index objects that have no index row (after a crash or power loss)")
    v.set_defaults(func=cmd_verify)
    return p


def main(argv: list[str] | None = None) -> int:
    from pacs.bootstrap import configure_logging

    args = parser().parse_args(argv)
    if args.command != "serve":
        configure_logging(logging.WARNING)
    try:
        return int(args.func(args))
    except (PacsError, FileNotFoundError) as exc:
        print(f"pacs: {exc}", file=sys.stderr)
        return 2
    except tomllib.TOMLDecodeError as exc:
        print(f"pacs: configuration file {getattr(args, 'config', '')} is not valid TOML: {exc}",
              file=sys.stderr)
        return 2
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        print(f"pacs: invalid setting: {problems}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
