"""Privacy: erasure and access requests, end to end.

- `erase`: an erasure request removes the resolved person from the warehouse (raw, staging,
  marts, the activation ledger, quarantine), from files kept on disk (dlt load packages, the
  analysts' copy) and from the email platforms (the nightly asset: every configured one; the
  command line: only those given with `--destinations`), and tombstones their hashed
  identifiers so that no later load brings them back (`ingestion.common.erasure`).
- `access`: everything Tessera holds about a person, in one JSON file.

`python -m activation.privacy --help` for the command line.
"""
