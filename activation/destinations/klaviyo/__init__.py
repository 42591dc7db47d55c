"""Klaviyo as an activation destination: `KlaviyoDestination(base_url, api_key)`."""

from activation.destinations.klaviyo.destination import KlaviyoDestination

__all__ = ["KlaviyoDestination"]
