"""What the sync engine asks of an email platform, whatever the vendor.

The engine decides *who* changes (adds, updates, removals, consent first); a destination only
knows *how* its vendor takes those changes: batch sizes, rate limits, retries of 429 and 5xx,
and the vendor's per-record errors, which it hands back as `Outcome`s instead of raising, so
one bad address never sinks a batch.

Rules every destination keeps:
- No call changes a subscription status towards subscribed: no subscribe endpoints, no
  `status`/`status_if_new` of subscribed, no new member created as subscribed.
- Every call is idempotent: sending the same member twice leaves one member with the same
  properties; an event carries a unique id the vendor de-duplicates on.
- Credentials never appear in exceptions, logs or outcomes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

OutcomeStatus = Literal["ok", "rejected", "skipped"]


@dataclass(frozen=True)
class Audience:
    """One audience as the warehouse defines it (a segment model's `meta.activation`)."""

    name: str  # the dbt model, e.g. "abandoned_checkouts", "seg_vip_customers"
    klaviyo_list: str | None = None  # Klaviyo list name, created when missing
    mailchimp_tag: str | None = None  # tag on the Mailchimp audience
    properties: tuple[str, ...] = ()  # columns pushed as profile properties / merge fields
    event: str | None = None  # Klaviyo metric created once per member's event_id (a flow trigger)


@dataclass(frozen=True)
class Member:
    """One person as the audience wants them delivered."""

    customer_id: str
    email: str
    properties: Mapping[str, Any] = field(default_factory=dict)  # JSON-safe values
    # Idempotency key of the event that comes with this member (the abandoned checkout's
    # token); None when the audience sends no event.
    event_id: str | None = None


@dataclass(frozen=True)
class Outcome:
    """What the vendor made of one member of a call.

    - ok: done (or already so);
    - rejected: the vendor refused this record (`error` in its own words); retried next run;
    - skipped: the vendor cannot take it without a change Tessera never makes (for example a
      Mailchimp tag for someone who is not a subscribed member of the audience); not retried
      until the person's state changes.
    """

    email: str
    status: OutcomeStatus
    error: str | None = None


def email_key(email: str) -> str:
    """An address as the email platforms match it: case and surrounding spaces do not count."""
    return email.strip().lower()


class Destination(Protocol):
    name: str  # "klaviyo" or "mailchimp": the ledger's `destination`

    def upsert(self, audience: Audience, members: Sequence[Member]) -> list[Outcome]:
        """Make each member part of the audience with these properties (and its event, once,
        when `audience.event` and `member.event_id` are set). Subscription status untouched."""
        ...

    def remove(self, audience: Audience, members: Sequence[Member]) -> list[Outcome]:
        """Take members out of the audience (list membership, tag). Profiles, their properties
        and consent stay."""
        ...

    def suppress(self, emails: Sequence[str]) -> list[Outcome]:
        """Stop marketing email to these addresses here because they unsubscribed on the other
        platform (Klaviyo: suppress the profile; Mailchimp: set the member unsubscribed).
        Only ever moves away from subscribed; unknown addresses are ok."""
        ...

    def erase(self, emails: Sequence[str]) -> list[Outcome]:
        """Delete the person from the platform for an erasure request (Klaviyo's data privacy
        deletion, Mailchimp's permanent delete). Unknown addresses are ok."""
        ...

    def close(self) -> None:
        """Release connections (HTTP sessions, worker threads)."""
        ...
