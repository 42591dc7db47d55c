"""Mailchimp Marketing API v3 as a Tessera destination: audiences become tags on one Mailchimp
audience, with merge fields, never changing anyone's consent. See `destination.py`."""

from activation.destinations.mailchimp.destination import MailchimpDestination

__all__ = ["MailchimpDestination", "from_env"]


def from_env() -> MailchimpDestination:
    """The destination built from the `ACTIVATION__MAILCHIMP__*` settings (`activation.settings`),
    read at call time."""
    from activation.settings import mailchimp_from_env

    destination = mailchimp_from_env()
    assert isinstance(destination, MailchimpDestination)
    return destination
