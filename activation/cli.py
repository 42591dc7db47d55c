"""`python -m activation`: list the audiences, or push them (dry run first, if in doubt).

python -m activation audiences
python -m activation sync --dry-run
python -m activation sync --audience abandoned_checkouts --destination klaviyo
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import duckdb

from activation.audiences import load_audiences

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _default_warehouse() -> Path:
    data = Path(os.environ.get("TESSERA_DATA_DIR") or PROJECT_ROOT / "data")
    return data / "warehouse.duckdb"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m activation",
        description=(
            "Push Tessera's audiences (every dbt model with a meta.activation block) to Klaviyo and "
            "Mailchimp: only the changes since the last push, consent first. Destinations are configured "
            "by ACTIVATION__<DESTINATION>__* variables or the same keys in .dlt/secrets.toml "
            "(see activation/settings.py and the README)."
        ),
    )
    parser.add_argument(
        "--warehouse",
        type=Path,
        default=None,
        help="DuckDB warehouse (default: warehouse.duckdb in $TESSERA_DATA_DIR, or in the project's data/ if unset)",
    )
    parser.add_argument(
        "--manifest",
        type=Path,
        default=PROJECT_ROOT / "dbt_project" / "target" / "manifest.json",
        help="dbt manifest the audiences are read from (default: dbt_project/target/manifest.json)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("audiences", help="list the audiences, where they go and their holdout share")
    sync = commands.add_parser("sync", help="push the audiences (or --dry-run to see what would change)")
    sync.add_argument("--audience", action="append", help="only this audience (repeatable; default: all)")
    sync.add_argument(
        "--destination", action="append", choices=["klaviyo", "mailchimp"], help="only this destination (repeatable)"
    )
    sync.add_argument("--dry-run", action="store_true", help="say what would be added, updated, removed; send nothing")
    sync.add_argument("--confirm", action="store_true", help="let a change larger than the audience's guard through")
    return parser


def _print_reports(result) -> None:
    header = f"{'destination':<11} {'audience':<26} {'rows':>6} {'held':>5} {'supp':>5} "
    # `retry`: of the adds, members refused or skipped last time (the guard does not count them);
    # `wait`: skipped last time and still not subscribed on that platform, so not sent again;
    # `sent`: their event (a checkout) was sent there before, so not sent again.
    header += (
        f"{'add':>6} {'retry':>6} {'wait':>6} {'sent':>6} {'upd':>6} {'rem':>6} {'same':>6} "
        f"{'rejected':>8} {'skipped':>7}"
    )
    print(header)
    for r in result.reports:
        adds = r.planned_adds if r.dry_run else r.added
        updates = r.planned_updates if r.dry_run else r.updated
        removes = r.planned_removes if r.dry_run else r.removed
        print(
            f"{r.destination:<11} {r.audience:<26} {r.rows:>6} {r.held_out:>5} {r.suppressed:>5} "
            f"{adds:>6} {r.planned_retries:>6} {r.waiting:>6} {r.already_sent:>6} {updates:>6} {removes:>6} "
            f"{r.unchanged:>6} "
            f"{r.rejected:>8} {r.skipped:>7}"
        )
        if r.held_for_removal:
            print(f"    {r.held_for_removal} new address(es) wait until the old one's removal is accepted")
        for error in r.errors[:5]:
            print(f"    rejected {error['action']} of customer {error['customer_id']}: {error['error']}")
    for name, counts in result.suppressions.items():
        print(f"{name}: {counts['pending']} unsubscribes from other platforms to carry, {counts['suppressed']} done")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    audiences = load_audiences(args.manifest)
    if args.command == "audiences":
        for a in audiences:
            print(
                f"{a.name}: {', '.join(a.destinations)}; Klaviyo list {a.audience.klaviyo_list!r}, "
                f"Mailchimp tag {a.audience.mailchimp_tag!r}; holdout {a.holdout_share:.0%}; "
                f"properties {', '.join(a.audience.properties) or '-'}"
            )
        return 0

    from activation.settings import DestinationNotConfigured, destinations_from_env
    from activation.sync.run import push
    from ingestion.common.errors import setting
    from ingestion.raw_tables import vendor_enabled

    if args.audience:
        unknown = set(args.audience) - {a.name for a in audiences}
        if unknown:
            print(f"unknown audience(s): {sorted(unknown)}; see `python -m activation audiences`", file=sys.stderr)
            return 2
        audiences = [a for a in audiences if a.name in args.audience]
    names = args.destination or sorted({d for a in audiences for d in a.destinations})
    # A platform the shop does not use (its load turned off): its unsubscribes are not loaded.
    off = [name for name in names if not vendor_enabled(name)]
    for name in off:
        print(f"{name} is turned off ({setting(name, 'enabled')}=false): nothing is pushed there", file=sys.stderr)
    if off and args.destination:
        return 2
    names = [name for name in names if name not in off]
    try:
        destinations = destinations_from_env(names)
    except DestinationNotConfigured as exc:
        print(str(exc), file=sys.stderr)
        return 2
    warehouse = args.warehouse or _default_warehouse()
    try:
        with duckdb.connect(str(warehouse), read_only=False) as conn:
            result = push(conn, audiences, destinations, dry_run=args.dry_run, confirm=args.confirm)
    finally:
        for destination in destinations.values():
            destination.close()
    _print_reports(result)
    for failure in result.failures:
        print(f"FAILED {failure}", file=sys.stderr)
    return 0 if result.ok else 1
