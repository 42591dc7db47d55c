"""`python -m activation.privacy`: erasure and access requests from the command line.

  erase   --email X [--identifier source:id_type:value ...] [--destinations klaviyo mailchimp]
          Delete the person from the warehouse, the dlt load packages, the analysts' copy
          and the email platforms (every configured one, as the nightly run asks, or those
          named by --destinations), and tombstone their identifiers
          so no later load brings them back. Prints what was deleted where.
  access  --email X [--identifier ...] --out person.json
          Write everything Tessera holds about the person to one JSON file.

The warehouse is `warehouse.duckdb` in the data folder (TESSERA_DATA_DIR, or `data/` in the
project); `--warehouse X` names another, and `erase` then cleans the load packages (`dlt/`) and
the analysts' copy (`analysts.duckdb`) in X's folder. Never run `erase` while a nightly run
writes the warehouse (DuckDB has one writer).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from activation.privacy.person import parse_identifier
from orchestration.paths import data_dir


def _destinations(names: list[str]) -> list:
    """The configured email platforms, by name (settings as the pushes read them: activation.settings)."""
    from activation.privacy.destinations import configured_destinations

    return configured_destinations(names)


def _every_configured_platform() -> list:
    """Every email platform with settings now, as the nightly asks; the others are named."""
    from activation.privacy.destinations import available_destinations

    destinations, unavailable = available_destinations()
    for name, reason in unavailable.items():
        print(f"note: {name} is not asked ({reason})", file=sys.stderr)
    return destinations


def _data_folder(warehouse: Path | None) -> Path:
    """The folder of the warehouse, its dlt load packages (`dlt/`) and its analysts' copy
    (`analysts.duckdb`): the data folder, or the folder of the warehouse `--warehouse` names."""
    # Another warehouse's packages and copy lie beside it: cleaning the default folder's instead
    # would leave the person in that warehouse's files and republish a copy of the wrong warehouse.
    return warehouse.resolve().parent if warehouse is not None else data_dir()


def _erase(args: argparse.Namespace) -> int:
    from activation.privacy.destinations import DestinationUnavailable
    from activation.privacy.erase import ErasureRequest, erase_requests

    try:
        named = args.destinations
        destinations = _every_configured_platform() if named is None else _destinations(named)
    except DestinationUnavailable as exc:
        # Before anything is erased: erasing here but not at the platform asked for would leave
        # the person at the platform with no record that a deletion is owed there.
        print(f"error: {exc}; nothing was erased", file=sys.stderr)
        return 2
    root = _data_folder(args.warehouse)
    request = ErasureRequest(
        request_id=args.request_id or f"cli_{uuid.uuid4().hex[:12]}",
        email=args.email,
        requested_at=datetime.now(tz=UTC),
        identifiers=tuple(args.identifier),
    )
    batch = erase_requests(
        args.warehouse or root / "warehouse.duckdb",
        [request],
        destinations=destinations,
        pipelines_dir=root / "dlt",
        analysts_copy=root / "analysts.duckdb",
        progress=print,
    )
    report = batch.requests[0]
    print(f"request {report.request_id}: {report.customers} customer(s), {report.identifiers} identifier(s) tombstoned")
    for table, rows in sorted(report.rows_deleted.items()):
        print(f"    deleted {rows:>7,} rows from {table}")
    for name, outcomes in report.destinations.items():
        print(f"    {name}: {outcomes or 'nothing to erase'}")
        if set(outcomes) - {"ok"}:
            print(
                f"    {name}: deletions not accepted are kept in privacy.platform_erasures_pending; "
                "the next erasure (the nightly run, or this command) asks again"
            )
    print(
        f"load packages deleted: {batch.packages_deleted}; pending records scrubbed: "
        f"{batch.pending_records_scrubbed}; analysts' copy republished: {batch.analysts_copy_republished}"
    )
    return 0


def _access(args: argparse.Namespace) -> int:
    from activation.privacy.access import write_export

    warehouse = args.warehouse or data_dir() / "warehouse.duckdb"
    export = write_export(warehouse, args.out, args.email, args.identifier)
    total = sum(export["row_counts"].values())
    print(f"wrote {args.out}: {total:,} rows from {len(export['row_counts'])} tables, segments {export['segments']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m activation.privacy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("erase", "erase a person (warehouse, its files, the email platforms given) and keep them out"),
        ("access", "export everything held about a person to one JSON file"),
    ):
        sub = commands.add_parser(name, help=helptext, description=helptext)
        sub.add_argument("--email", help="the person's email address, as they gave it")
        sub.add_argument(
            "--identifier",
            action="append",
            default=[],
            metavar="SOURCE:ID_TYPE:VALUE",
            help="another identifier of the person, e.g. shopify:customer_id:123 (repeatable)",
        )
        beside = "; the dlt/ load packages and analysts.duckdb in its folder are cleaned too" if name == "erase" else ""
        sub.add_argument(
            "--warehouse",
            type=Path,
            help="the DuckDB warehouse (default: warehouse.duckdb in $TESSERA_DATA_DIR, or in the project's data/ "
            f"if unset){beside}",
        )
        if name == "erase":
            sub.add_argument("--request-id", help="the request's id in the shop's records (default: a new one)")
            sub.add_argument(
                "--destinations",
                nargs="*",
                default=None,
                choices=["klaviyo", "mailchimp"],
                help=(
                    "email platforms to delete the person from too (settings from the environment); "
                    "default: every configured one, as the nightly run asks. Named platforms must be "
                    "configured; given with no names, no platform is asked (the warehouse forgets "
                    "the address, so nothing asks them later)"
                ),
            )
        else:
            sub.add_argument("--out", type=Path, required=True, help="where to write the JSON file")
    args = parser.parse_args(argv)
    if not args.email and not args.identifier:
        parser.error("give --email or at least one --identifier")
    for position, identifier in enumerate(args.identifier, 1):
        try:
            parse_identifier(identifier, position)
        except ValueError as exc:
            parser.error(str(exc))
    return _erase(args) if args.command == "erase" else _access(args)


if __name__ == "__main__":
    sys.exit(main())
