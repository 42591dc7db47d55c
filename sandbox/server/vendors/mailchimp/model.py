"""The member model of the Mailchimp sandbox: a member as served, and the overlay of what the
API changed on it (the payload of a "member" destination object)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.server.state import parse_ts
from sandbox.server.vendors.mailchimp.common import subscriber_hash


def tag_id(list_id: str, name: str) -> int:
    """A tag is a static segment; its id is derived from its name so that tags from the
    generated world and tags created through the API share one stable id space."""
    return 1_000_000 + int(hashlib.md5(f"{list_id}:{name}".encode()).hexdigest()[:7], 16) % 9_000_000


def event(pair: tuple[str, str]) -> tuple[datetime, str]:
    """A stored (status, ISO time) pair as (time, status), for ordering status events."""
    return parse_ts(pair[1]), pair[0]


@dataclass
class Member:
    """A member as served, all timestamps at whole seconds."""

    list_id: str
    email_address: str
    unique_email_id: str
    web_id: int
    status: str
    merge_fields: dict[str, Any]
    tags: dict[str, datetime]  # active tag name -> date added
    ip_signup: str
    ip_opt: str
    timestamp_signup: datetime | None
    timestamp_opt: datetime | None
    last_changed: datetime
    created_at: datetime
    email_type: str = "html"
    language: str = ""
    vip: bool = False
    stats: tuple[int, int, int] = (0, 0, 0)  # campaigns sent, opened, clicked
    #: "unsubscribed" or "cleaned" when the last consent event was an opt-out or a bounce: such a
    #: contact stays in a compliance state even while a re-opt-in is pending.
    opted_out: str | None = None

    @property
    def id(self) -> str:
        return subscriber_hash(self.email_address)

    @property
    def contact_id(self) -> str:
        return hashlib.md5(f"contact:{self.unique_email_id}".encode()).hexdigest()


@dataclass
class Overlay:
    """What the API changed on one member (the payload of a "member" destination object)."""

    base: dict[str, Any] | None = None  # identity and creation data of a member the API created
    status: tuple[str, str] | None = None  # (status, world time it was set)
    consent: tuple[str, str] | None = None  # the last subscribed/unsubscribed/cleaned the API set
    fields: dict[str, Any] = field(default_factory=dict)  # email_type, language, vip, ip_*, timestamp_*
    merge_fields: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, tuple[bool, str]] = field(default_factory=dict)  # name -> (active, world time)
    updated_at: str | None = None  # last change that counts for last_changed
    deleted_at: str | None = None  # permanently deleted ("forgotten")

    @classmethod
    def load(cls, payload: dict[str, Any] | None) -> Overlay:
        if payload is None:
            return cls()
        status, consent = payload.get("status"), payload.get("consent")
        return cls(
            base=payload.get("base"),
            status=(status[0], status[1]) if status else None,
            consent=(consent[0], consent[1]) if consent else None,
            fields=dict(payload.get("fields", {})),
            merge_fields=dict(payload.get("merge_fields", {})),
            tags={name: (bool(v[0]), v[1]) for name, v in payload.get("tags", {}).items()},
            updated_at=payload.get("updated_at"),
            deleted_at=payload.get("deleted_at"),
        )

    def dump(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "status": list(self.status) if self.status else None,
            "consent": list(self.consent) if self.consent else None,
            "fields": self.fields,
            "merge_fields": self.merge_fields,
            "tags": {name: [active, at] for name, (active, at) in self.tags.items()},
            "updated_at": self.updated_at,
            "deleted_at": self.deleted_at,
        }
