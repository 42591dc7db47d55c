"""Shopify Admin REST API (customers, orders, abandoned checkouts, products) over the world's
`shopify_*` store tables, under `/shopify/admin/api/{version}/...`. See sandbox/docs/shopify.md
for the endpoints, limits and where the sandbox departs from Shopify."""

from sandbox.server.vendors.shopify.api import error_response, mount

__all__ = ["error_response", "mount"]
