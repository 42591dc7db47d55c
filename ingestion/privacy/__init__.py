"""Erasure requests: the shop's "forget me" requests, loaded into `raw_privacy.erasure_requests`.

No vendor API carries them: a shop receives them its own way (an email to privacy@, a form,
Shopify's `customers/redact` webhook). Tessera reads them from one of two places:

- an HTTP endpoint answering `GET {base_url}/erasure-requests` with
  `{"items": [{"request_id", "email", "requested_at", "identifiers"?}]}` (bearer `api_key` when
  set). The sandbox serves the world's requests at `/_sandbox/erasure-requests`, the default;
- a file, `requests_file`: JSON lines with the same fields, or a CSV with a header row
  `request_id,email,requested_at[,identifiers]`. A webhook receiver appends one line per
  request; for Shopify's `customers/redact`, `{"request_id": "<webhook id>", "email":
  customer.email, "requested_at": "<received at>", "identifiers": ["shopify:customer_id:<id>"]}`.

`identifiers` (optional) lists further identifiers of the person as `source:id_type:value`.
Configure with `SOURCES__PRIVACY__BASE_URL`, `SOURCES__PRIVACY__API_KEY`,
`SOURCES__PRIVACY__REQUESTS_FILE` (a file wins over the URL). Requests are merged on
`request_id`; once processed, the request's row is erased with the rest of the person's data
(the processing log keeps the request id), and every load skips the requests processed
(`ingestion.common.erasure.drop_erased`), which the endpoint or file goes on listing.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import requests
from dlt.sources import DltResource

from ingestion.common.errors import VendorError

REQUEST_FIELDS = ("request_id", "email", "requested_at")


def _from_file(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise VendorError(
            "privacy", f"erasure requests file {path} does not exist: fix SOURCES__PRIVACY__REQUESTS_FILE"
        )
    text = path.read_text()
    if path.suffix.lower() == ".csv":
        rows = [dict(r) for r in csv.DictReader(text.splitlines())]
        for row in rows:
            ids = row.get("identifiers")
            row["identifiers"] = [i for i in (ids or "").split(";") if i]
        return rows
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _from_endpoint(base_url: str, api_key: str | None) -> list[dict[str, Any]]:
    # A key read from a CRLF file ends in a line break, which no header may hold.
    headers = {"Authorization": f"Bearer {api_key.strip()}"} if api_key else {}
    url = f"{base_url.rstrip('/')}/erasure-requests"
    try:
        response = requests.get(url, headers=headers, timeout=60)
    except requests.ConnectionError as exc:
        raise VendorError(
            "privacy", f"nothing answers at {url}: fix SOURCES__PRIVACY__BASE_URL ({type(exc).__name__})"
        ) from None
    except requests.RequestException as exc:  # requests' own text may quote the header, key and all
        raise VendorError(
            "privacy",
            f"the request to {url} could not be sent ({type(exc).__name__}): "
            "check SOURCES__PRIVACY__BASE_URL and SOURCES__PRIVACY__API_KEY",
        ) from None
    if response.status_code in (401, 403):
        raise VendorError("privacy", f"{url} refused the credential: fix SOURCES__PRIVACY__API_KEY")
    response.raise_for_status()
    return list(response.json().get("items", []))


def read_erasure_requests(
    base_url: str | None = None, api_key: str | None = None, requests_file: str | None = None
) -> list[dict[str, Any]]:
    """Every erasure request the shop has received, as dicts with `REQUEST_FIELDS` and
    `identifiers` (a list of `source:id_type:value`)."""
    if requests_file:
        raw = _from_file(Path(requests_file))
    elif base_url:
        raw = _from_endpoint(base_url, api_key)
    else:
        raise VendorError(
            "privacy", "no erasure request source: set SOURCES__PRIVACY__BASE_URL or SOURCES__PRIVACY__REQUESTS_FILE"
        )
    out = []
    for item in raw:
        if not item.get("request_id") or not (item.get("email") or item.get("identifiers")):
            raise ValueError(f"erasure request {item!r} needs a request_id and an email or identifiers")
        out.append(
            {
                "request_id": str(item["request_id"]),
                "email": item.get("email"),
                "requested_at": item.get("requested_at"),
                "identifiers": [str(i) for i in item.get("identifiers") or []],
            }
        )
    return out


@dlt.source(name="privacy", max_table_nesting=0)
def privacy_source(
    base_url: str | None = dlt.config.value,
    api_key: str | None = dlt.secrets.value,
    requests_file: str | None = None,
) -> DltResource:
    """The shop's erasure requests from its endpoint at `base_url` or from `requests_file`."""

    @dlt.resource(
        name="erasure_requests",
        write_disposition="merge",
        primary_key="request_id",
        columns={"requested_at": {"data_type": "timestamp"}, "identifiers": {"data_type": "json"}},
    )
    def erasure_requests() -> Iterator[dict[str, Any]]:
        yield from read_erasure_requests(base_url, api_key, requests_file)

    return erasure_requests
