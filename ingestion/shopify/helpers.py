"""Shopify's quirks: the Admin API path, Link-header paging, and records made loadable.

- Paging follows the `rel="next"` URL exactly as given: Shopify refuses any parameter but
  `limit` and `fields` beside `page_info`, so filters go on the first request only.
- Each page is screened before dlt's incremental cursor sees it: a record with a missing id,
  an unparseable timestamp or a non-numeric id/quantity goes to the `quarantine` table (an
  `updated_at` of "not-a-timestamp" must never become the cursor). Timestamps are parsed to
  UTC, because Shopify reports them in the shop's time zone, whose offset changes with DST.
- A record seen twice in one listing (pages shifting under the reader) is yielded once.
- A quarantined record is remembered in the source state and fetched again on later runs
  (by id, or by its exact `updated_at` when the id was lost) until it arrives clean: the
  cursor has moved past it, so the lookback alone would not bring it back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import dlt

from ingestion.common.errors import VendorError, setting
from ingestion.common.http import VendorSession, raise_for_status
from ingestion.common.quarantine import check, parse_timestamp, quarantine_row
from ingestion.shopify.settings import REPAIR_ATTEMPTS, VENDOR, Endpoint

log = logging.getLogger("tessera.ingestion")

Record = dict[str, Any]


def _iso(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def without_nulls(value: Any) -> Any:
    """A record without its null fields, at any depth. Shopify sends every field, null or not
    (`note`, `company`, a guest's `customer`); a null column a load never fills is not created
    anyway, and dlt warned about each one, on every first load of a shop. A null is the same
    in the warehouse whether sent or not: merged rows replace the whole row."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


def repair_key(record: Any) -> str | None:
    """How to ask Shopify for this record again: by id, else by its exact `updated_at`."""
    if not isinstance(record, dict):
        return None
    id_ = record.get("id")
    if isinstance(id_, int) and not isinstance(id_, bool):
        return f"id:{id_}"
    if isinstance(id_, str) and id_.strip().isdigit():
        return f"id:{int(id_)}"
    updated = parse_timestamp(record.get("updated_at"))
    return f"updated_at:{updated.isoformat()}" if updated else None


def _nested_problem(record: Record, endpoint: Endpoint) -> str | None:
    for name, rules in endpoint.nested.items():
        items = record.get(name)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            reason = check(item, rules)
            if reason is not None:
                return f"{name}[{i}]: {reason}"
    return None


def _prepare(record: Record, endpoint: Endpoint) -> Record:
    for name in endpoint.rules.timestamps:
        parsed = parse_timestamp(record.get(name))
        if parsed is not None:
            record[name] = parsed.astimezone(UTC)
    if endpoint.parent_key:
        for name in endpoint.nested:
            for item in record.get(name) or ():
                item.setdefault(endpoint.parent_key, record["id"])
    return record


def screen_page(page: Iterable[Any], endpoint: Endpoint) -> tuple[list[Record], list[tuple[Any, str | None]]]:
    """(good records, ready to load; [(quarantine row, repair key)] for the others)."""
    good: list[Record] = []
    bad: list[tuple[Any, str | None]] = []
    for record in page:
        reason = check(record, endpoint.rules)
        if reason is None:
            reason = _nested_problem(record, endpoint)
        if reason is None:
            good.append(_prepare(record, endpoint))
        else:
            bad.append((quarantine_row(endpoint.resource, record, reason), repair_key(record)))
    return good, bad


class ShopifyApi:
    """The Admin REST API of one shop, read through a `VendorSession` that holds the token."""

    def __init__(self, session: VendorSession, base_url: str, api_version: str, page_size: int) -> None:
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.root = f"{self.base_url}/admin/api/{api_version}/"
        self.page_size = page_size

    def orders_reach_back_only_60_days(self) -> bool:
        """Whether the token lacks `read_all_orders`: then Shopify serves "only the last 60 days'
        worth of orders" and older ones are missing from every load without an error. Read
        from `GET /admin/oauth/access_scopes.json`; an answer that cannot say counts as no."""
        try:
            response = self.session.get(f"{self.base_url}/admin/oauth/access_scopes.json")
        except VendorError:
            return False
        if response.status_code != 200:
            return False
        try:
            granted = {scope.get("handle") for scope in response.json().get("access_scopes") or []}
        except (ValueError, AttributeError):
            return False
        return "read_all_orders" not in granted

    # -- HTTP -----------------------------------------------------------------------------------

    def _get(self, url: str, params: Mapping[str, Any] | None, endpoint: Endpoint) -> tuple[list[Any], str | None]:
        """One page: (records, URL of the next page or None)."""
        response = self.session.get(url, params=params)
        if response.status_code == 404:
            raise VendorError(
                VENDOR,
                f"404 from {response.url.split('?')[0]}: no Shopify Admin API there. Check "
                f"{setting(VENDOR, 'base_url')} (https://<shop>.myshopify.com) and {setting(VENDOR, 'api_version')}",
            )
        raise_for_status(response, VENDOR)
        try:
            records = response.json()[endpoint.root]
        except (ValueError, KeyError, TypeError):  # not JSON, or not a list answer
            raise VendorError(
                VENDOR,
                f"{response.url.split('?')[0]} did not answer with a list of {endpoint.root}. "
                f"Check {setting(VENDOR, 'base_url')}",
            ) from None
        return records, response.links.get("next", {}).get("url")

    def pages(self, endpoint: Endpoint, params: Mapping[str, Any]) -> Iterator[list[Any]]:
        """Every page of a listing; `params` (filters) go on the first request only."""
        url: str | None = self.root + endpoint.path
        query: dict[str, Any] | None = {"limit": self.page_size, **params}
        while url:
            records, url = self._get(url, query, endpoint)
            query = None  # the next link already carries limit and page_info, and may carry nothing else
            yield records

    # -- resources ------------------------------------------------------------------------------

    def changed(self, endpoint: Endpoint, updated_at: dlt.sources.incremental[datetime]) -> Iterator[Any]:
        """Records changed since the cursor (minus the lookback) and before this read began, page
        by page. The upper bound matters for a read longer than the lookback (a big shop's first
        load): a record updated while the read goes on, after its page was read, would otherwise
        fall behind a cursor that a later page pushed past it, and never be read. Bounded, the
        cursor stays before the read began, and the next run reads what changed during it."""
        began = datetime.now(UTC)
        end = began if updated_at.end_value is None else min(updated_at.end_value, began)
        window = {"updated_at_min": _iso(updated_at.start_value), "updated_at_max": _iso(end)}
        pending = _pending(endpoint)
        load_id = _load_id()
        if endpoint.resource == "orders" and self.orders_reach_back_only_60_days():
            log.warning(
                "%s: the access token lacks the read_all_orders scope, so Shopify serves only the last "
                "60 days of orders: older orders are missing from raw_shopify.orders. Grant read_all_orders "
                "to the app; the orders skipped so far come in only when the orders are read again from the start.",
                VENDOR,
            )
        for listing in endpoint.listings:
            seen: set[int] = set()
            for page in self.pages(endpoint, {**listing, **window}):
                good, bad = screen_page(page, endpoint)
                fresh = []
                for record in good:
                    if record["id"] not in seen:
                        seen.add(record["id"])
                        fresh.append(without_nulls(record))
                if fresh:
                    yield fresh
                for row, key in bad:
                    if key is not None:
                        pending.setdefault(key, {"load_id": load_id, "attempts": 0})
                    yield row

    def repair(self, endpoints: Iterable[Endpoint]) -> Iterator[Any]:
        """Fetch again the records quarantined by earlier runs; load those that arrive clean."""
        load_id = _load_id()
        for endpoint in endpoints:
            pending = _pending(endpoint)
            # Only earlier runs' keys: this run's are still being collected by the other resources.
            for key in [k for k, v in pending.items() if v["load_id"] != load_id]:
                good, bad, found = self._refetch(endpoint, key)
                if good:
                    yield dlt.mark.with_table_name([without_nulls(r) for r in good], endpoint.resource)
                for row, _ in bad:
                    yield row
                entry = pending[key]
                entry["attempts"] += 1
                if not found or not bad:
                    del pending[key]
                elif entry["attempts"] >= REPAIR_ATTEMPTS:
                    del pending[key]
                    log.warning(
                        "%s: %s %s still malformed after %d fetches; it stays in quarantine",
                        VENDOR,
                        endpoint.resource,
                        key,
                        entry["attempts"],
                    )

    def _refetch(self, endpoint: Endpoint, key: str) -> tuple[list[Record], list[tuple[Any, str | None]], bool]:
        kind, _, value = key.partition(":")
        good: list[Record] = []
        bad: list[tuple[Any, str | None]] = []
        for listing in endpoint.listings:
            if kind == "id":
                # `since_id` is the one id filter every list endpoint has (checkouts lack `ids`).
                query = {**listing, "since_id": int(value) - 1, "limit": 1}
                pages = [self._get(self.root + endpoint.path, query, endpoint)[0]]
            else:
                pages = self.pages(endpoint, {**listing, "updated_at_min": value, "updated_at_max": value})
            for page in pages:
                page_good, page_bad = screen_page(page, endpoint)
                good += [r for r in page_good if kind != "id" or r["id"] == int(value)]
                bad += page_bad
            if good or bad:
                return good, bad, True
        return good, bad, False


def _pending(endpoint: Endpoint) -> dict[str, dict[str, Any]]:
    """Quarantined records still to fetch again, by repair key (kept in the source state)."""
    return dlt.current.source_state().setdefault("quarantined", {}).setdefault(endpoint.resource, {})


def _load_id() -> str:
    return str(dlt.current.load_package_state()["load_id"])
