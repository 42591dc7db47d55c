"""Shopify's JSON objects (customer, order, abandoned checkout, product) built from rows of
the visible-rows queries in `resources`: money as decimal strings, timestamps with an offset,
nested addresses, line items and customers as Shopify nests them."""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

Row = dict[str, Any]
Record = dict[str, Any]

_STATES = {
    "AZ": "Arizona",
    "CA": "California",
    "CO": "Colorado",
    "FL": "Florida",
    "GA": "Georgia",
    "IL": "Illinois",
    "MA": "Massachusetts",
    "MN": "Minnesota",
    "NY": "New York",
    "OH": "Ohio",
    "OR": "Oregon",
    "PA": "Pennsylvania",
    "TN": "Tennessee",
    "TX": "Texas",
    "WA": "Washington",
}
_COUNTRIES = {"US": "United States"}


def ts(value: datetime | None) -> str | None:
    """Shopify's timestamp form: ISO 8601 with seconds and an offset (the sandbox shop is UTC)."""
    return value.astimezone(UTC).isoformat(timespec="seconds") if value is not None else None


def money(value: float | None) -> str | None:
    """Shopify sends amounts as decimal strings with two places."""
    return f"{value:.2f}" if value is not None else None


def gid(kind: str, id_: int) -> str:
    return f"gid://shopify/{kind}/{id_}"


@dataclass(frozen=True)
class Shop:
    """The shop behind the access token, for URLs Shopify embeds in objects."""

    name: str  # the myshopify subdomain, e.g. "northwind-outfitters"

    @property
    def domain(self) -> str:
        return f"{self.name}.myshopify.com"

    @property
    def shop_id(self) -> int:
        # Shopify's recovery URLs carry the numeric shop id; derive a stable one from the name.
        return 60_000_000_000 + zlib.crc32(self.name.encode()) % 1_000_000_000


def _address(raw: str | None) -> dict[str, Any] | None:
    """A stored address (JSON text) in Shopify's address shape; None when empty."""
    stored = json.loads(raw) if raw else {}
    if not stored.get("address1"):
        return None
    first, last = stored.get("first_name"), stored.get("last_name")
    province, country = stored.get("province_code"), stored.get("country_code")
    return {
        "first_name": first,
        "last_name": last,
        "company": None,
        "address1": stored["address1"],
        "address2": None,
        "city": stored.get("city"),
        "province": _STATES.get(province or "", province),
        "country": _COUNTRIES.get(country or "", country),
        "zip": stored.get("zip"),
        "phone": None,
        "name": " ".join(p for p in (first, last) if p) or None,
        "province_code": province,
        "country_code": country,
    }


def _email_marketing_consent(row: Row) -> dict[str, Any] | None:
    """Consent as of the clock: Shopify reports null for a customer without an email."""
    if not row["email"]:
        return None
    if row["opt_out_at"] is not None:
        state, at = "unsubscribed", row["opt_out_at"]
    elif row["opt_in_at"] is not None:
        state, at = "subscribed", row["opt_in_at"]
    else:
        state, at = "not_subscribed", None
    return {"state": state, "opt_in_level": "single_opt_in", "consent_updated_at": ts(at)}


def customer_object(row: Row, *, with_totals: bool = True) -> Record:
    """A customer as `/customers.json` lists it; nested in an order or checkout, Shopify
    leaves out the order totals."""
    first, last = row["first_name"], row["last_name"]
    address = _address(row["address"])
    if address is not None:
        address = {
            "id": row["id"] + 2_000_000_000_000,
            "customer_id": row["id"],
            **address,
            "first_name": first,
            "last_name": last,
            "name": " ".join(p for p in (first, last) if p) or None,
            "country_name": address["country"],
            "default": True,
        }
    record: Record = {
        "id": row["id"],
        "email": row["email"],
        "created_at": ts(row["created_ts"]),
        "updated_at": ts(row["updated_ts"]),
        "first_name": first,
        "last_name": last,
    }
    if with_totals:
        record |= {
            "orders_count": row["orders_count"],
            "total_spent": money(row["total_spent"]),
            "last_order_id": row["last_order_id"],
            "last_order_name": f"#{row['last_order_number']}" if row["last_order_number"] else None,
        }
    record |= {
        "state": row["state"],
        "note": None,
        "verified_email": row["verified_email"],
        "multipass_identifier": None,
        "tax_exempt": False,
        "tags": row["tags"] or "",
        "currency": "USD",
        "phone": row["phone"],
        "addresses": [address] if address else [],
        "tax_exemptions": [],
        "email_marketing_consent": _email_marketing_consent(row),
        "sms_marketing_consent": None,
        "admin_graphql_api_id": gid("Customer", row["id"]),
    }
    if address is not None:  # Shopify omits the key for a customer without addresses
        record["default_address"] = address
    return record


def _money_set(amount: float | None, currency: str) -> dict[str, Any]:
    value = money(amount)
    return {
        "shop_money": {"amount": value, "currency_code": currency},
        "presentment_money": {"amount": value, "currency_code": currency},
    }


def _order_line_items(raw: str, fulfilled: bool, currency: str) -> list[Record]:
    items = []
    for item in json.loads(raw or "[]"):
        items.append(
            {
                "id": item["id"],
                "admin_graphql_api_id": gid("LineItem", item["id"]),
                "product_id": item["product_id"],
                "variant_id": item["variant_id"],
                "title": item["title"],
                "variant_title": None,
                "name": item["title"],
                "sku": item["sku"],
                "quantity": item["quantity"],
                "current_quantity": item["quantity"],
                "fulfillable_quantity": 0 if fulfilled else item["quantity"],
                "fulfillment_status": "fulfilled" if fulfilled else None,
                "price": item["price"],
                "price_set": _money_set(float(item["price"]), currency),
                "total_discount": "0.00",
                "gift_card": False,
                "requires_shipping": True,
                "taxable": True,
                "product_exists": True,
                "properties": [],
            }
        )
    return items


def _shipping_lines(amount: float | None, currency: str, shipped: bool) -> list[Record]:
    if not shipped:
        return []
    return [
        {
            "title": "Standard",
            "code": "Standard",
            "source": "shopify",
            "price": money(amount),
            "price_set": _money_set(amount, currency),
            "discounted_price": money(amount),
        }
    ]


def order_object(row: Row, shop: Shop, customers: Mapping[int, Record]) -> Record:
    currency = row["currency"]
    closed = row["closed_ts"]
    subtotal = row["subtotal_price"]
    return {
        "id": row["id"],
        "admin_graphql_api_id": gid("Order", row["id"]),
        "name": f"#{row['order_number']}",
        "order_number": row["order_number"],
        "number": row["order_number"] - 1000,
        "email": row["email"],
        "contact_email": row["email"],
        "phone": row["phone"],
        "created_at": ts(row["created_ts"]),
        "updated_at": ts(row["updated_ts"]),
        "processed_at": ts(row["processed_ts"]),
        "closed_at": ts(closed),
        "cancelled_at": None,
        "cancel_reason": None,
        "checkout_token": row["checkout_token"],
        "source_name": row["source_name"],
        "financial_status": row["financial_status"],
        "fulfillment_status": row["fulfillment_status"],
        "confirmed": True,
        "test": False,
        "taxes_included": False,
        "currency": currency,
        "presentment_currency": currency,
        "subtotal_price": money(subtotal),
        "total_line_items_price": money(subtotal),
        "total_discounts": "0.00",
        "total_tax": money(row["total_tax"]),
        "total_price": money(row["total_price"]),
        "total_shipping_price_set": _money_set(row["total_shipping"], currency),
        "subtotal_price_set": _money_set(subtotal, currency),
        "total_tax_set": _money_set(row["total_tax"], currency),
        "total_price_set": _money_set(row["total_price"], currency),
        "line_items": _order_line_items(row["line_items"], closed is not None, currency),
        "shipping_lines": _shipping_lines(row["total_shipping"], currency, True),
        "shipping_address": _address(row["shipping_address"]),
        "customer": customers.get(row["customer_id"]),
    }


def _checkout_line_items(raw: str) -> list[Record]:
    items = []
    for item in json.loads(raw or "[]"):
        price = float(item["price"])
        items.append(
            {
                # Abandoned-checkout line items are keyed by a string, not a numeric id.
                "key": hashlib.md5(str(item["id"]).encode()).hexdigest(),
                "product_id": item["product_id"],
                "variant_id": item["variant_id"],
                "title": item["title"],
                "variant_title": None,
                "sku": item["sku"],
                "quantity": item["quantity"],
                "price": item["price"],
                "line_price": money(price * item["quantity"]),
                "compare_at_price": None,
                "gift_card": False,
                "requires_shipping": True,
                "taxable": True,
                "fulfillment_service": "manual",
                "grams": 0,
            }
        )
    return items


def checkout_object(row: Row, shop: Shop, customers: Mapping[int, Record]) -> Record:
    currency = row["currency"]
    token = row["token"]
    key = hashlib.sha256(f"recover:{token}".encode()).hexdigest()[:32]
    return {
        "id": row["id"],
        "token": token,
        "cart_token": row["cart_token"],
        "email": row["email"],
        "phone": row["phone"],
        "gateway": None,
        "buyer_accepts_marketing": False,
        "created_at": ts(row["created_ts"]),
        "updated_at": ts(row["updated_ts"]),
        "completed_at": None,
        "closed_at": None,
        "note": None,
        "source_name": "web",
        "customer_locale": "en",
        "currency": currency,
        "presentment_currency": currency,
        "taxes_included": False,
        "subtotal_price": money(row["subtotal_price"]),
        "total_line_items_price": money(row["subtotal_price"]),
        "total_discounts": "0.00",
        "total_tax": money(row["total_tax"]),
        "total_price": money(row["total_price"]),
        "total_weight": 0,
        "abandoned_checkout_url": f"https://{shop.domain}/{shop.shop_id}/checkouts/{token}/recover?key={key}",
        "line_items": _checkout_line_items(row["line_items"]),
        # A shopper who left at the contact step never saw a shipping rate.
        "shipping_lines": _shipping_lines(row["total_shipping"], currency, bool(row["total_shipping"])),
        "customer": customers.get(row["customer_id"]) if row["customer_id"] is not None else None,
    }


def product_object(row: Row, shop: Shop, customers: Mapping[int, Record]) -> Record:
    created, updated = ts(row["created_ts"]), ts(row["updated_ts"])
    product_id, variant_id = row["id"], row["variant_id"]
    variant = {
        "id": variant_id,
        "product_id": product_id,
        "title": "Default Title",
        "price": money(row["price"]),
        "sku": row["sku"],
        "position": 1,
        "inventory_policy": "deny",
        "compare_at_price": None,
        "option1": "Default Title",
        "option2": None,
        "option3": None,
        "created_at": created,
        "updated_at": updated,
        "taxable": True,
        "barcode": None,
        "inventory_item_id": variant_id + 3_000_000_000_000,
        "inventory_quantity": row["inventory_quantity"],
        "old_inventory_quantity": row["inventory_quantity"],
        "requires_shipping": True,
        "admin_graphql_api_id": gid("ProductVariant", variant_id),
        "image_id": None,
    }
    return {
        "id": product_id,
        "title": row["title"],
        "body_html": None,
        "vendor": row["vendor"],
        "product_type": row["product_type"],
        "created_at": created,
        "handle": row["handle"],
        "updated_at": updated,
        "published_at": created,
        "template_suffix": None,
        "published_scope": "global",
        "tags": row["tags"] or "",
        "status": row["status"],
        "admin_graphql_api_id": gid("Product", product_id),
        "variants": [variant],
        "options": [
            {
                "id": product_id + 2_000_000_000_000,
                "product_id": product_id,
                "name": "Title",
                "position": 1,
                "values": ["Default Title"],
            }
        ],
        "images": [],
        "image": None,
    }
