"""One audience (list) as Mailchimp shows it at the world clock: the generated members from
the store, overlaid with what API clients wrote (kept in the destinations store).

A member's state is never frozen at write time. Status is the latest of its status events:
the store's (`subscribed_at`, `unsubscribed_at`, `cleaned_at`, each once it is <= clock) and
the last status an API call set (at the world clock of that call). So a push that tags a
member today still sees them unsubscribe tomorrow when the clock moves on.

Destination objects (vendor "mailchimp"):
  kind "member"   key "<list_id>:<subscriber_hash>"  what the API changed on one member
  kind "segment"  key "<list_id>:<segment_id>"       tags / static segments created by the API
"""

from __future__ import annotations

import bisect
import hashlib
import json
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox.server.cache import cache
from sandbox.server.state import SandboxState, format_ts, parse_ts
from sandbox.server.vendors.mailchimp.common import (
    NOT_VALID,
    VENDOR,
    ApiError,
    query,
    subscriber_hash,
    to_second,
    valid_email,
)
from sandbox.server.vendors.mailchimp.merge_schema import check_merge_values
from sandbox.server.vendors.mailchimp.model import Member, Overlay, event, tag_id

STATUSES = ("subscribed", "unsubscribed", "cleaned", "pending", "transactional")
#: Every write is a read-modify-write of one member's overlay; one lock keeps them atomic.
WRITE_LOCK = threading.Lock()

_MEMBER_SQL = """
SELECT email_address, unique_email_id, web_id, first_name, last_name, phone, address, ip_signup,
       tags, subscribed_at, unsubscribed_at, cleaned_at, created_at
FROM mailchimp_members
WHERE list_id = $list AND created_at <= $clock
ORDER BY created_at, web_id
"""

_STATS_SQL = """
SELECT md5(lower(email_address)) AS hash,
       count(DISTINCT campaign_id) FILTER (WHERE action = 'sent') AS sent,
       count(DISTINCT campaign_id) FILTER (WHERE action = 'open') AS opened,
       count(DISTINCT campaign_id) FILTER (WHERE action = 'click') AS clicked
FROM mailchimp_activity
WHERE list_id = $list AND timestamp <= $clock AND campaign_id IS NOT NULL
GROUP BY 1
"""
#: The campaign stats (sent, opened, clicked) of a member without activity.
_NO_STATS = (0, 0, 0)


@dataclass
class _Composed:
    """The members of a list with the overlays they were composed with, and the listings
    (filtered and sorted) made of them so far, by query."""

    overlays: dict[str, dict[str, Any]]
    members: list[Member]
    listings: dict[Hashable, list[Member]] = field(default_factory=dict)


@dataclass
class _Snapshot:
    """What the store shows of one list at one clock, built by the first whole-list read and
    shared by the reads that follow: at a million customers, querying and building every
    member took seconds, on every page. The store is fixed while a world is served and writes
    only change overlays, so only a clock move makes a snapshot stale."""

    #: The store's members visible at the clock, built without overlays, in creation order.
    members: list[Member]
    #: Subscriber hash -> index in `members`.
    positions: dict[str, int]
    #: Campaign stats of hashes without a store member at the clock (what a member the API
    #: made of such an address shows).
    other_stats: dict[str, tuple[int, int, int]]
    #: Hash -> (overlay payload, the member built with it, None when it hides the member):
    #: a member is built again only when its overlay changed since the last read.
    overlaid: dict[str, tuple[dict[str, Any], Member | None]] = field(default_factory=dict)
    #: The members as last composed with the overlays.
    composed: _Composed | None = None


#: Listings kept per composition: a client pages through one query at a time, and each listing
#: holds a reference per member (a few MB at a million customers).
_LISTINGS_KEPT = 8
_LISTINGS_LOCK = threading.Lock()


def _creation_order(member: Member) -> tuple[datetime, int]:
    return member.created_at, member.web_id


class Audience:
    """Reads and writes of one list's members, as of the world clock."""

    def __init__(self, state: SandboxState, list_id: str) -> None:
        self.state = state
        self.list_id = list_id
        self.clock = state.clock
        self._members_read: dict[str, tuple[dict[str, Any] | None, tuple[int, int, int]]] = {}

    # -- reads -------------------------------------------------------------------------------

    def exists(self) -> bool:
        rows = (
            self.state.db()
            .execute(
                "SELECT 1 FROM mailchimp_lists WHERE list_id = ? AND created_at <= ?",
                [self.list_id, self.clock],
            )
            .fetchall()
        )
        return bool(rows)

    def _overlay_payloads(self) -> dict[str, dict[str, Any]]:
        """Hash -> what the API changed on that member, in the order the members were first
        written."""
        prefix = f"{self.list_id}:"
        store = self.state.destinations

        def read() -> dict[str, dict[str, Any]]:
            return {o.key[len(prefix) :]: o.payload for o in store.list_objects(VENDOR, "member", key_prefix=prefix)}

        # Kept until a member is written: read on every page, tens of thousands of overlays
        # (after a first push at 1M) cost half a second a page.
        version = (store.generation(VENDOR, "member"),)
        return cache(self.state).get(("mailchimp_overlays", self.list_id), version, read)

    def _load_store(self) -> dict[str, dict[str, Any]]:
        rows = query(self.state, _MEMBER_SQL, {"list": self.list_id, "clock": self.clock})
        return {subscriber_hash(row["email_address"]): row for row in rows}

    def _load_stats(self) -> dict[str, tuple[int, int, int]]:
        rows = query(self.state, _STATS_SQL, {"list": self.list_id, "clock": self.clock})
        return {r["hash"]: (int(r["sent"]), int(r["opened"]), int(r["clicked"])) for r in rows}

    def _store(self) -> tuple[dict[str, dict[str, Any]], dict[str, tuple[int, int, int]]]:
        """Every member's store row and campaign stats, by subscriber hash, as of the clock.
        The store is fixed while a world is served, so they are read once per clock: read per
        member, each single-member call or write scanned the whole activity table twice (at 1M
        customers a push's PATCHes went at 2 a second, a 500-member batch took a minute)."""

        def read() -> tuple[dict[str, dict[str, Any]], dict[str, tuple[int, int, int]]]:
            return self._load_store(), self._load_stats()

        return cache(self.state).get(("mailchimp_store", self.list_id), (self.clock,), read)

    def _one_member(self, hash_: str) -> tuple[dict[str, Any] | None, tuple[int, int, int]]:
        """One member's store row and stats, read once a request (a write reads the member
        before and after it changes; writes never change the store)."""
        if hash_ not in self._members_read:
            rows, stats = self._store()
            self._members_read[hash_] = (rows.get(hash_), stats.get(hash_, _NO_STATS))
        return self._members_read[hash_]

    def _build(self, hash_: str, overlay: Overlay) -> Member | None:
        """One member, reading only that member from the store (single-member endpoints and
        writes)."""
        row, stats = self._one_member(hash_)
        if row is not None:
            return self._from_store(row, overlay, stats)
        return self._from_api(overlay, stats) if overlay.base else None

    def members(self) -> list[Member]:
        """Every member in creation order, archived ones included (callers filter by status),
        permanently deleted ones left out."""
        return list(self._composed().members)

    def listing(self, query: Hashable, select: Callable[[list[Member]], list[Member]]) -> list[Member]:
        """`select(members())` for one query, kept while the members stay the same: a client
        pages through one query with growing offsets, and filtering and sorting some 400,000
        members (at a million customers) cost more than serving the page. `query` must
        identify everything `select` does. Callers must not change the list."""
        composed = self._composed()
        with _LISTINGS_LOCK:
            found = composed.listings.get(query)
        if found is None:
            found = select(composed.members)
            with _LISTINGS_LOCK:
                while len(composed.listings) >= _LISTINGS_KEPT:  # the oldest goes first
                    del composed.listings[next(iter(composed.listings))]
                composed.listings[query] = found
        return found

    def _composed(self) -> _Composed:
        """The members with the overlays as they are now; composed again only when an overlay
        changed since the last read (writes are rare next to reads)."""
        snap = self._snapshot()
        overlays = self._overlay_payloads()
        composed = snap.composed
        if composed is None or composed.overlays != overlays:
            composed = snap.composed = _Composed(overlays, self._compose(snap, overlays))
        return composed

    def _compose(self, snap: _Snapshot, overlays: dict[str, dict[str, Any]]) -> list[Member]:
        """The snapshot's members with those the API changed replaced, and those it made
        inserted."""
        members = list(snap.members)
        made, hidden = [], set()
        for hash_, member in self._overlaid(snap, overlays).items():
            position = snap.positions.get(hash_)
            if position is None:
                if member is not None:
                    made.append(member)
            elif member is None:
                hidden.add(position)
            else:  # a store member keeps its place: its created_at and web_id come from the store
                members[position] = member
        if hidden:
            members = [m for i, m in enumerate(members) if i not in hidden]
        for member in made:  # after the store's members of the same key, in the order written
            bisect.insort_right(members, member, key=_creation_order)
        return members

    def _snapshot(self) -> _Snapshot:
        """The list's snapshot at this request's clock, built by the first read after the
        server starts or the clock moves. The shared cache builds one at a time (concurrent
        first reads wait for it: seconds and hundreds of MB at a million customers) and lets
        the stale one go first (two at once would double the peak)."""
        return cache(self.state).get(("mailchimp_snapshot", self.list_id), (self.clock,), self._build_snapshot)

    def _build_snapshot(self) -> _Snapshot:
        # The whole list's rows and one build per member: what every page cost before.
        rows, stats = self._store()
        built = [(self._from_store(row, Overlay(), stats.get(hash_, _NO_STATS)), hash_) for hash_, row in rows.items()]
        built.sort(key=lambda pair: _creation_order(pair[0]))
        positions = {hash_: i for i, (_, hash_) in enumerate(built)}
        others = {hash_: s for hash_, s in stats.items() if hash_ not in positions}
        return _Snapshot([m for m, _ in built], positions, others)

    def _overlaid(self, snap: _Snapshot, payloads: dict[str, dict[str, Any]]) -> dict[str, Member | None]:
        """The member behind every overlay, by hash in the order written; None for one the
        overlay hides (permanently deleted, or changed by the API while not a member)."""
        known = {hash_: snap.overlaid.get(hash_) for hash_ in payloads}
        changed = {h: p for h, p in payloads.items() if (entry := known[h]) is None or entry[0] != p}
        for hash_, entry in self._rebuild(snap, changed).items():
            snap.overlaid[hash_] = known[hash_] = entry
        return {hash_: entry[1] for hash_, entry in known.items() if entry is not None}

    def _rebuild(
        self, snap: _Snapshot, payloads: dict[str, dict[str, Any]]
    ) -> dict[str, tuple[dict[str, Any], Member | None]]:
        """Members built with the overlays that changed since the last read (a push may have
        changed thousands of members)."""
        overlays = {hash_: Overlay.load(payload) for hash_, payload in payloads.items()}
        rows, _ = self._store()
        return {
            hash_: (payloads[hash_], self._overlay_member(snap, hash_, overlay, rows.get(hash_)))
            for hash_, overlay in overlays.items()
        }

    def _overlay_member(
        self, snap: _Snapshot, hash_: str, overlay: Overlay, row: dict[str, Any] | None
    ) -> Member | None:
        if overlay.deleted_at:
            return None
        position = snap.positions.get(hash_)
        if position is not None and row is not None:
            return self._from_store(row, overlay, snap.members[position].stats)
        return self._from_api(overlay, snap.other_stats.get(hash_, _NO_STATS)) if overlay.base else None

    def member(self, hash_: str) -> Member | None:
        overlay = self.overlay(hash_)
        return None if overlay.deleted_at else self._build(hash_, overlay)

    def overlay(self, hash_: str) -> Overlay:
        obj = self.state.destinations.get(VENDOR, "member", f"{self.list_id}:{hash_}")
        return Overlay.load(obj.payload if obj else None)

    def _from_store(self, row: dict[str, Any], overlay: Overlay, stats: tuple[int, int, int]) -> Member:
        clock = self.clock
        created = to_second(row["created_at"])
        events = [
            (to_second(t), status)
            for t, status in (
                (row["subscribed_at"], "subscribed"),
                (row["unsubscribed_at"], "unsubscribed"),
                (row["cleaned_at"], "cleaned"),
            )
            if t is not None and t <= clock
        ]
        address = json.loads(row["address"] or "{}")
        merge = {
            "FNAME": row["first_name"] or "",
            "LNAME": row["last_name"] or "",
            "ADDRESS": {
                "addr1": address.get("addr1", ""),
                "addr2": address.get("addr2", ""),
                "city": address.get("city", ""),
                "state": address.get("state", ""),
                "zip": address.get("zip", ""),
                "country": address.get("country", ""),
            }
            if address
            else "",
            "PHONE": row["phone"] or "",
        }
        subscribed = row["subscribed_at"]
        base = {
            "email_address": row["email_address"],
            "unique_email_id": row["unique_email_id"],
            "web_id": int(row["web_id"]),
            "ip_signup": row["ip_signup"] or "",
            "ip_opt": row["ip_signup"] or "",
            "timestamp_signup": None,
            "timestamp_opt": to_second(subscribed) if subscribed and subscribed <= clock else None,
        }
        tags = {name: created for name in json.loads(row["tags"] or "[]")}
        return self._resolve(base, created, events, merge, tags, overlay, stats)

    def _from_api(self, overlay: Overlay, stats: tuple[int, int, int]) -> Member:
        base = dict(overlay.base or {})
        created = parse_ts(base.pop("created_at"))
        merge = {"FNAME": "", "LNAME": "", "ADDRESS": "", "PHONE": ""}
        return self._resolve(base, created, [], merge, {}, overlay, stats)

    def _resolve(
        self,
        base: dict[str, Any],
        created: datetime,
        events: list[tuple[datetime, str]],
        merge: dict[str, Any],
        tags: dict[str, datetime],
        overlay: Overlay,
        stats: tuple[int, int, int],
    ) -> Member:
        # The latest event wins; an API write outranks a store event of the same second
        # because it was made after everything visible at that clock (the sort is stable).
        consent = sorted([*events, *([event(overlay.consent)] if overlay.consent else [])], key=lambda e: e[0])
        if overlay.status:
            events.append(event(overlay.status))
        ordered = sorted(events, key=lambda e: e[0])
        status = ordered[-1][1] if ordered else "subscribed"
        opted_out = consent[-1][1] if consent and consent[-1][1] != "subscribed" else None
        changes = [created, *(t for t, _ in events)]
        if overlay.updated_at:
            changes.append(parse_ts(overlay.updated_at))
        for name, (active, at) in overlay.tags.items():
            if active:
                tags[name] = parse_ts(at)
            else:
                tags.pop(name, None)
        fields = {**base, **overlay.fields}
        for key in ("timestamp_signup", "timestamp_opt"):
            if isinstance(fields.get(key), str):
                fields[key] = parse_ts(fields[key]) if fields[key] else None
        return Member(
            list_id=self.list_id,
            email_address=fields["email_address"],
            unique_email_id=fields["unique_email_id"],
            web_id=int(fields["web_id"]),
            status=status,
            merge_fields={**merge, **overlay.merge_fields},
            tags=tags,
            ip_signup=fields.get("ip_signup", ""),
            ip_opt=fields.get("ip_opt", ""),
            timestamp_signup=fields.get("timestamp_signup"),
            timestamp_opt=fields.get("timestamp_opt"),
            last_changed=max(changes),
            created_at=created,
            email_type=fields.get("email_type", "html"),
            language=fields.get("language", ""),
            vip=bool(fields.get("vip", False)),
            stats=stats,
            opted_out=opted_out,
        )

    def tag_names(self) -> dict[str, datetime]:
        """Every tag (static segment) of the list -> its creation time: the generated members'
        tags (as old as the list) and those the API created."""
        created_rows = (
            self.state.db()
            .execute("SELECT created_at FROM mailchimp_lists WHERE list_id = ?", [self.list_id])
            .fetchall()
        )
        list_created = to_second(created_rows[0][0]) if created_rows else self.clock
        names = dict.fromkeys(self._generated_tags(), list_created)
        for obj in self.state.destinations.list_objects(VENDOR, "segment", key_prefix=f"{self.list_id}:"):
            names.setdefault(obj.payload["name"], parse_ts(obj.payload["created_at"]))
        return names

    def _generated_tags(self) -> list[str]:
        """The tags the generated members carry by the clock: a scan of every member, so read
        once per clock (a segment batch asks for every member it tags)."""

        def read() -> list[str]:
            rows = (
                self.state.db()
                .execute(
                    "SELECT DISTINCT tags FROM mailchimp_members WHERE list_id = ? AND created_at <= ?",
                    [self.list_id, self.clock],
                )
                .fetchall()
            )
            return list(dict.fromkeys(name for (tags,) in rows for name in json.loads(tags or "[]")))

        return cache(self.state).get(("mailchimp_generated_tags", self.list_id), (self.clock,), read)

    # -- writes (callers hold WRITE_LOCK) -----------------------------------------------------

    def _now(self) -> str:
        return format_ts(to_second(self.clock))

    def _save(self, hash_: str, overlay: Overlay) -> None:
        self.state.destinations.upsert(VENDOR, "member", f"{self.list_id}:{hash_}", overlay.dump())

    def ensure_tag(self, name: str) -> None:
        """Register a tag the API introduces (Mailchimp creates it on first use). Called for
        every member a write tags, so it looks the one tag up (a tag the API made is stored
        under its id) instead of listing them all with `tag_names`."""
        if name in self._generated_tags():
            return
        key = f"{self.list_id}:{tag_id(self.list_id, name)}"
        made = self.state.destinations.get(VENDOR, "segment", key)
        if made is None or made.payload["name"] != name:
            self.state.destinations.upsert(VENDOR, "segment", key, {"name": name, "created_at": self._now()})

    def write_member(
        self, email: Any, body: dict[str, Any], *, create: bool, update: bool, status_key: str = "status"
    ) -> tuple[Member, bool]:
        """Add or update one member following Mailchimp's rules; returns (member, created).

        `create`/`update` say what the endpoint may do (PUT both, POST and batch without
        update_existing only create, PATCH only update). Raises ApiError with Mailchimp's
        title and detail when the write is refused."""
        if not isinstance(email, str) or not email.strip():
            raise ApiError(
                400,
                "Invalid Resource",
                NOT_VALID,
                errors=[{"field": "email_address", "message": "This value should not be blank."}],
            )
        email = email.strip()
        if not valid_email(email):
            raise ApiError(
                400, "Invalid Resource", f"{email} looks fake or invalid, please enter a real email address."
            )
        if isinstance(body.get("merge_fields"), dict):
            check_merge_values(self.state, self.list_id, body["merge_fields"])
        stamps = {}
        for key in ("timestamp_signup", "timestamp_opt"):
            if body.get(key):
                try:
                    stamps[key] = format_ts(parse_ts(str(body[key])))
                except ValueError:
                    raise ApiError(
                        400, "Invalid Resource", NOT_VALID, errors=[{"field": key, "message": "Invalid date-time."}]
                    ) from None
        hash_ = subscriber_hash(email)
        overlay = self.overlay(hash_)
        if overlay.deleted_at:
            raise ApiError(
                400,
                "Forgotten Email Not Subscribed",
                f"{email} was permanently deleted and cannot be re-imported. "
                "The contact must re-subscribe to get back on the list.",
            )
        current = self._build(hash_, overlay)
        if current is not None and current.status != "archived" and not update:
            raise ApiError(
                400,
                "Member Exists",
                f"{email} is already a list member. Use PUT to insert or update list members.",
            )
        if current is None and not create:
            raise ApiError(404)
        now = self._now()
        if current is None or current.status == "archived":
            # New (or archived, which Mailchimp lets an add bring back): status_if_new applies.
            status = body.get(status_key) or body.get("status")
            if not status:
                raise ApiError(
                    400,
                    "Invalid Resource",
                    NOT_VALID,
                    errors=[{"field": status_key, "message": "Schema describes enum, NULL found instead"}],
                )
            self._check_status(email, current.opted_out if current else None, status)
            if current is None:
                overlay.base = {
                    "email_address": email,
                    "unique_email_id": hashlib.md5(f"ueid:{self.list_id}:{hash_}".encode()).hexdigest()[:10],
                    "web_id": 700_000_000 + int(hash_[:6], 16),
                    "created_at": now,
                    "ip_signup": "",
                    "ip_opt": "",
                    "timestamp_signup": "",
                    "timestamp_opt": now if status == "subscribed" else "",
                }
                for name in body.get("tags") or []:
                    if isinstance(name, str) and name:
                        self.ensure_tag(name)
                        overlay.tags[name] = (True, now)
            self._set_status(overlay, status, now)
        elif body.get("status"):
            self._check_status(email, current.opted_out, body["status"])
            if body["status"] != current.status:
                self._set_status(overlay, body["status"], now)
                if body["status"] == "subscribed":
                    overlay.fields["timestamp_opt"] = now
        merge = body.get("merge_fields")
        if isinstance(merge, dict):
            overlay.merge_fields.update(merge)
        for key in ("email_type", "language", "vip", "ip_signup", "ip_opt"):
            if body.get(key) is not None:
                overlay.fields[key] = body[key]
        overlay.fields.update(stamps)
        overlay.updated_at = now
        self._save(hash_, overlay)
        member = self._build(hash_, overlay)
        assert member is not None  # just written
        return member, current is None

    @staticmethod
    def _set_status(overlay: Overlay, status: str, now: str) -> None:
        overlay.status = (status, now)
        if status in ("subscribed", "unsubscribed", "cleaned"):
            overlay.consent = (status, now)

    @staticmethod
    def _check_status(email: str, opted_out: str | None, new: Any) -> None:
        if new not in STATUSES:
            raise ApiError(
                400,
                "Invalid Resource",
                NOT_VALID,
                errors=[
                    {
                        "field": "status",
                        "message": "Data did not match any of the schemas described in anyOf.",
                    }
                ],
            )
        # Consent rules: a contact who unsubscribed (or whose address bounced) can only come
        # back through double opt-in ("pending"), and a cleaned address not even that way.
        if (opted_out and new == "subscribed") or (opted_out == "cleaned" and new == "pending"):
            raise ApiError(
                400,
                "Member In Compliance State",
                f"{email} is in a compliance state due to unsubscribe, bounce, or compliance review "
                "and cannot be subscribed.",
            )

    def archive(self, hash_: str) -> None:
        overlay = self.overlay(hash_)
        now = self._now()
        overlay.status, overlay.updated_at = ("archived", now), now
        self._save(hash_, overlay)

    def delete_permanently(self, hash_: str) -> None:
        overlay = self.overlay(hash_)
        overlay.deleted_at = self._now()
        self._save(hash_, overlay)

    def set_tags(self, member: Member, changes: list[tuple[str, bool]]) -> None:
        """Activate or deactivate tags on one member; a no-op change is not recorded, so a tag
        keeps the date it was first added."""
        overlay = self.overlay(member.id)
        now = self._now()
        active_now = set(member.tags)
        for name, active in changes:
            if active == (name in active_now):
                continue
            if active:
                self.ensure_tag(name)
                active_now.add(name)
            else:
                active_now.discard(name)
            overlay.tags[name] = (active, now)
        self._save(member.id, overlay)
