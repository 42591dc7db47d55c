"""Klaviyo JSON:API request bodies, built from pre-encoded items so a batch is cut to the
vendor's count and size limits without encoding anything twice."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from activation.destinations.base import Member


def encode(obj: Any) -> bytes:
    """Compact JSON; orjson because a 100k-profile push encodes 200k items."""
    return orjson.dumps(obj, default=str)


def profile_item(member: Member) -> bytes:
    """One profile of a Bulk Import Profiles job: identified by email, properties merged key
    by key into the profile's custom properties. No consent field: an import never changes
    a subscription."""
    attributes: dict[str, Any] = {"email": member.email}
    if member.properties:
        attributes["properties"] = dict(member.properties)
    return encode({"type": "profile", "attributes": attributes})


def event_entry(member: Member, metric: str) -> bytes:
    """One entry of Bulk Create Events: the profile (by email only, its properties come from
    the import) and one event whose `unique_id` is the member's event id, which Klaviyo
    de-duplicates on, so a resend never makes a second event."""
    event = {
        "type": "event",
        "attributes": {
            "properties": dict(member.properties),
            "metric": {"data": {"type": "metric", "attributes": {"name": metric}}},
            "unique_id": member.event_id,
        },
    }
    return encode(
        {
            "type": "event-bulk-create",
            "attributes": {
                "profile": {"data": {"type": "profile", "attributes": {"email": member.email}}},
                "events": {"data": [event]},
            },
        }
    )


def import_job_body(items: Sequence[bytes], list_id: str | None) -> bytes:
    relationships = b""
    if list_id is not None:
        relationships = b',"relationships":{"lists":{"data":[' + encode({"type": "list", "id": list_id}) + b"]}}"
    return (
        b'{"data":{"type":"profile-bulk-import-job","attributes":{"profiles":{"data":['
        + b",".join(items)
        + b"]}}"
        + relationships
        + b"}}"
    )


def events_job_body(items: Sequence[bytes]) -> bytes:
    return (
        b'{"data":{"type":"event-bulk-create-job","attributes":{"events-bulk-create":{"data":['
        + b",".join(items)
        + b"]}}}}"
    )


def suppression_body(emails: Sequence[str]) -> dict[str, Any]:
    profiles = [{"type": "profile", "attributes": {"email": e}} for e in emails]
    return {"data": {"type": "profile-suppression-bulk-create-job", "attributes": {"profiles": {"data": profiles}}}}


def deletion_body(email: str) -> dict[str, Any]:
    profile = {"data": {"type": "profile", "attributes": {"email": email}}}
    return {"data": {"type": "data-privacy-deletion-job", "attributes": {"profile": profile}}}


def list_body(name: str) -> dict[str, Any]:
    return {"data": {"type": "list", "attributes": {"name": name}}}


def remove_body(profile_ids: Sequence[str]) -> dict[str, Any]:
    return {"data": [{"type": "profile", "id": pid} for pid in profile_ids]}


def batches(items: Sequence[bytes], max_count: int, max_bytes: int, overhead: int = 512) -> Iterator[range]:
    """Index ranges of consecutive items within a count and an encoded-size limit."""
    start, size = 0, overhead
    for i, item in enumerate(items):
        if i > start and (i - start >= max_count or size + len(item) + 1 > max_bytes):
            yield range(start, i)
            start, size = i, overhead
        size += len(item) + 1
    if start < len(items):
        yield range(start, len(items))


def pointer_index(pointer: str | None, prefix: str) -> int | None:
    """The item index in an error pointer such as `/data/attributes/profiles/data/3/...`."""
    if not pointer:
        return None
    match = re.match(re.escape(prefix) + r"/(\d+)(/|$)", pointer)
    return int(match.group(1)) if match else None


def filter_string(value: str) -> str:
    """A string literal in Klaviyo's filter syntax."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
