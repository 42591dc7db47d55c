"""Mailchimp Marketing API v3 as a Tessera destination: audiences become tags on one Mailchimp
audience, with merge fields, never changing anyone's consent. See `destination.py`."""

from activation.destinations.mailchimp.destination import MailchimpDestination

__all__ = ["MailchimpDestination"]
