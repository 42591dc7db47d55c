"""Shopify Admin REST endpoints: auth, the leaky bucket, list/count/single handlers, paging.

Every request under `/admin/api/{version}/` is checked in Shopify's order: a version of the
form YYYY-MM (or `unstable`, else 404), the `X-Shopify-Access-Token` header (else 401), then
the app's leaky bucket (else 429). Every response that passed auth carries
`X-Shopify-Shop-Api-Call-Limit: <used>/<capacity>`, as Shopify's do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from sandbox.server import auth
from sandbox.server.state import SandboxState
from sandbox.server.vendors.shopify import params
from sandbox.server.vendors.shopify.objects import Record, Row, Shop, customer_object
from sandbox.server.vendors.shopify.params import Cursor, ParamError
from sandbox.server.vendors.shopify.resources import RESOURCES, Resource, customers_sql

VENDOR = "shopify"
RATE_RULE = "rest"
VERSION_RE = re.compile(r"^(\d{4}-\d{2}|unstable)$")
CALL_LIMIT_HEADER = "X-Shopify-Shop-Api-Call-Limit"
AUTH_ERROR = "[API] Invalid API key or access token (unrecognized login or wrong password)"
THROTTLE_ERROR = "Exceeded 2 calls per second for api client. Reduce request rates to resume uninterrupted service."
#: The app's access scopes when the world names none: every read the loader needs.
DEFAULT_SCOPES = ("read_customers", "read_orders", "read_all_orders", "read_products")
#: Without `read_all_orders`, "only the last 60 days' worth of orders from a store are
#: accessible from the Order resource" (Shopify's Order reference).
RECENT_ORDERS_DAYS = 60
#: Shopify's documented Retry-After on a throttled REST call.
RETRY_AFTER_SECONDS = 2.0
DOCUMENTED_CAPACITY = 40

Handler = Callable[[Request], Response]


def error_response(status: int, retry_after: float | None) -> Response:
    """Shopify's error body is `{"errors": ...}`; a 429 carries `Retry-After` in seconds with
    one decimal ("2.0") and a full bucket in the call-limit header."""
    headers: dict[str, str] = {}
    if status == 401:
        message = AUTH_ERROR
    elif status == 429:
        message = THROTTLE_ERROR
        headers["Retry-After"] = f"{RETRY_AFTER_SECONDS if retry_after is None else retry_after:.1f}"
        headers[CALL_LIMIT_HEADER] = f"{DOCUMENTED_CAPACITY}/{DOCUMENTED_CAPACITY}"
    else:
        message = HTTPStatus(status).phrase
    return JSONResponse({"errors": message}, status_code=status, headers=headers)


class ShopifyApi:
    """The handlers of one served world."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        credentials = state.credentials(VENDOR)
        self.token: str | None = credentials.get("access_token")
        self.shop = Shop(credentials.get("shop", "sandbox-shop"))
        self.scopes: tuple[str, ...] = tuple(credentials.get("scopes") or DEFAULT_SCOPES)

    # -- request plumbing ---------------------------------------------------------------------

    def endpoint(self, handler: Handler) -> Handler:
        """Version, auth and rate-limit checks around a handler, plus Shopify's headers."""

        def run(request: Request) -> Response:
            version = request.path_params["version"]
            if not VERSION_RE.match(version):
                return error_response(404, None)
            token = auth.header(request, "X-Shopify-Access-Token")
            if not auth.matches(token, self.token):
                return error_response(401, None)
            decision = self.state.limits.hit(VENDOR, RATE_RULE, key=token or "")
            # A rule switched off (the world's limits.json) has no bucket to report: the
            # header is left out rather than sent as "0/0", which reads as a full bucket.
            call_limit = self.state.limits.bucket_header(decision.info) if decision.info.limit else None
            if not decision.allowed:
                response = error_response(429, max(RETRY_AFTER_SECONDS, decision.retry_after))
            else:
                try:
                    response = handler(request)
                except ParamError as exc:
                    response = JSONResponse({"errors": {exc.param: exc.message}}, status_code=400)
                response.headers["X-Shopify-API-Version"] = version
            if call_limit is not None:
                response.headers[CALL_LIMIT_HEADER] = call_limit
            return response

        return run

    def _rows(self, sql: str, bound: Mapping[str, Any]) -> list[Row]:
        cur = self.state.db().execute(sql, {"clock": self.state.clock, **bound})
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def _nested_customers(self, resource: Resource, rows: list[Row]) -> dict[int, Record]:
        if not resource.nested_customer:
            return {}
        ids = sorted({r["customer_id"] for r in rows if r["customer_id"] is not None})
        if not ids:
            return {}
        found = self._rows(customers_sql("customer_id IN (SELECT unnest($ids))"), {"ids": ids})
        return {row["id"]: customer_object(row, with_totals=False) for row in found}

    def _records(self, resource: Resource, rows: list[Row], fields: list[str] | None) -> list[Record]:
        customers = self._nested_customers(resource, rows)
        records = [resource.build(row, self.shop, customers) for row in rows]
        if fields is not None:
            records = [{k: v for k, v in r.items() if k in fields} for r in records]
        return records

    def _faults(self, key: str, records: list[Record], page_key: str, resource: Resource) -> list[Record]:
        return self.state.faults.apply_record_faults(
            VENDOR, key, records, page_key, timestamp_field="updated_at", numeric_field=resource.numeric_field
        )

    # -- filters --------------------------------------------------------------------------------

    @staticmethod
    def _recognized(resource: Resource, query: list[tuple[str, str]]) -> dict[str, str]:
        """The filters of a first-page request that this endpoint knows; like Shopify, unknown
        parameters are ignored, and so are empty values."""
        dates = {f"{base}_{edge}" for base in resource.date_params for edge in ("min", "max")}
        known = {"ids", "since_id", *dates, *resource.filters}
        return {name: value for name, value in query if name in known and value.strip()}

    def _granted(self, resource: Resource) -> str:
        """The rows the token's scopes let it see: orders of the last 60 days only, without
        `read_all_orders`."""
        if resource.name == "orders" and "read_all_orders" not in self.scopes:
            return f"created_ts >= $clock - INTERVAL {RECENT_ORDERS_DAYS} DAY"
        return "TRUE"

    def _where(self, resource: Resource, filters: Mapping[str, str]) -> tuple[str, dict[str, Any]]:
        conditions: list[str] = [self._granted(resource)]
        bound: dict[str, Any] = {}
        for name, value in {**resource.defaults, **filters}.items():
            if name == "ids":
                conditions.append("id IN (SELECT unnest($ids))")
                bound["ids"] = params.int_list(name, value)
            elif name == "since_id":
                conditions.append("id > $since_id")
                bound["since_id"] = params.integer(name, value)
            elif name in resource.filters:
                condition, values = resource.filters[name](name, value)
                conditions.append(condition)
                bound |= values
            else:  # <date>_at_min / _at_max, inclusive as on Shopify
                base, edge = name.rsplit("_", 1)
                column = base.removesuffix("_at") + "_ts"
                conditions.append(f"{column} {'>=' if edge == 'min' else '<='} ${name}")
                bound[name] = params.timestamp(name, value)
        return " AND ".join(conditions), bound

    # -- handlers -------------------------------------------------------------------------------

    def list_handler(self, resource: Resource) -> Handler:
        def handle(request: Request) -> Response:
            query = list(request.query_params.multi_items())
            page_info = request.query_params.get("page_info")
            limit = params.limit(request.query_params.get("limit"))
            fields_raw = request.query_params.get("fields")
            fields = params.fields(fields_raw)
            if page_info is not None:
                params.reject_with_page_info(query)
                cursor: Cursor | None = Cursor.decode(page_info, resource.name)
                filters = cursor.filters
            else:
                cursor = None
                filters = self._recognized(resource, query)
            where, bound = self._where(resource, filters)
            rows, has_prev, has_next = self._page(resource, where, bound, limit, cursor)

            page_key = page_info or "first:" + urlencode(sorted(filters.items()))
            records = self._faults(resource.name, self._records(resource, rows, fields), page_key, resource)
            links = []
            if has_prev:
                prev = Cursor(resource.name, "prev", rows[0]["id"], filters)
                links.append(f'<{self._page_url(request, prev, limit, fields_raw)}>; rel="previous"')
            if has_next:
                nxt = Cursor(resource.name, "next", rows[-1]["id"], filters)
                links.append(f'<{self._page_url(request, nxt, limit, fields_raw)}>; rel="next"')
            headers = {"Link": ", ".join(links)} if links else {}
            return JSONResponse({resource.name: records}, headers=headers)

        return handle

    def _page(
        self, resource: Resource, where: str, bound: dict[str, Any], limit: int, cursor: Cursor | None
    ) -> tuple[list[Row], bool, bool]:
        """Keyset paging by id: (rows, has previous page, has next page)."""
        sql = f"SELECT * FROM ({resource.visible_sql}) v WHERE {where}"
        bound = {**bound, "n": limit + 1}
        if cursor is not None and cursor.direction == "prev":
            rows = self._rows(f"{sql} AND id < $anchor ORDER BY id DESC LIMIT $n", {**bound, "anchor": cursor.anchor})
            page = rows[:limit][::-1]
            return page, len(rows) > limit, bool(page)
        if cursor is not None:
            sql += " AND id > $anchor"
            bound["anchor"] = cursor.anchor
        rows = self._rows(f"{sql} ORDER BY id LIMIT $n", bound)
        page = rows[:limit]
        return page, cursor is not None and bool(page), len(rows) > limit

    @staticmethod
    def _page_url(request: Request, cursor: Cursor, limit: int, fields_raw: str | None) -> str:
        """Absolute URL of another page: Shopify's links carry only limit, fields and page_info."""
        query = {"limit": str(limit)}
        if fields_raw:
            query["fields"] = fields_raw
        query["page_info"] = cursor.encode()
        return str(request.url.replace(query=urlencode(query)))

    def count_handler(self, resource: Resource) -> Handler:
        def handle(request: Request) -> Response:
            filters = self._recognized(resource, list(request.query_params.multi_items()))
            where, bound = self._where(resource, filters)
            rows = self._rows(f"SELECT count(*) AS n FROM ({resource.visible_sql}) v WHERE {where}", bound)
            return JSONResponse({"count": rows[0]["n"]})

        return handle

    def single_handler(self, resource: Resource) -> Handler:
        def handle(request: Request) -> Response:
            id_ = request.path_params["id"]
            fields = params.fields(request.query_params.get("fields"))
            granted = self._granted(resource)
            rows = self._rows(f"SELECT * FROM ({resource.visible_sql}) v WHERE id = $id AND {granted}", {"id": id_})
            if not rows:
                return error_response(404, None)
            # Faults are keyed per object so that a single GET never receives another page's
            # duplicates; malformed and drift faults still apply.
            records = self._faults(f"{resource.name}/{id_}", self._records(resource, rows, fields), str(id_), resource)
            return JSONResponse({resource.singular: records[-1]})

        return handle


def mount(state: SandboxState) -> Mount:
    """Routes relative to the vendor prefix, as the real API lays them out."""
    api = ShopifyApi(state)
    routes: list[Route] = []
    for resource in RESOURCES.values():
        base = f"/admin/api/{{version}}/{resource.name}"
        routes.append(Route(f"{base}.json", api.endpoint(api.list_handler(resource)), methods=["GET"]))
        routes.append(Route(f"{base}/count.json", api.endpoint(api.count_handler(resource)), methods=["GET"]))
        if resource.single:
            routes.append(Route(f"{base}/{{id:int}}.json", api.endpoint(api.single_handler(resource)), methods=["GET"]))

    def access_scopes(request: Request) -> Response:
        """`GET /admin/oauth/access_scopes.json`: the scopes the token was granted (unversioned)."""
        if not auth.matches(auth.header(request, "X-Shopify-Access-Token"), api.token):
            return error_response(401, None)
        return JSONResponse({"access_scopes": [{"handle": scope} for scope in api.scopes]})

    routes.append(Route("/admin/oauth/access_scopes.json", access_scopes, methods=["GET"]))

    def not_found(request: Request) -> Response:
        return error_response(404, None)

    routes.append(Route("/{path:path}", not_found, methods=["GET", "POST", "PUT", "DELETE", "PATCH"]))
    return Mount(f"/{VENDOR}", routes=routes)
