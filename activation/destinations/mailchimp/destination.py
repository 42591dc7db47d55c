"""The Mailchimp destination: an audience is a tag on the one Mailchimp audience (list).

Consent is the point. Tessera never adds a contact to the audience and never sends a `status`
or `status_if_new` that could subscribe anyone: only members whose status is `subscribed` now
are tagged and get merge fields; everyone else comes back `skipped`, with why.

Calls, all documented in Mailchimp's Marketing API v3 reference:
- status, merge fields and tags of the addresses: the member listing or single-member reads
  (`members.MemberDirectory`, whichever costs fewer calls);
- merge fields: created on the list when missing (`POST /lists/{id}/merge-fields`), then one
  `PATCH /lists/{id}/members/{hash}` with only `merge_fields` per member whose values differ.
  Not the batch subscribe (`POST /lists/{id}`): its reference says nothing of what a member
  without `status` becomes, and with `update_existing` it would add an address that left the
  list since the lookup; a PATCH answers 404 for a non-member and changes only what it is given;
- the tag: a tag is a static segment, so members are added and removed in batches of 500
  (`POST /lists/{id}/segments/{segment_id}` with `members_to_add` / `members_to_remove`); the
  batch's per-record `errors` come back as `rejected` outcomes in Mailchimp's words;
- suppress: the batch subscribe or unsubscribe (`POST /lists/{id}`, 500 a call) with status
  `unsubscribed` and `update_existing`, only for members just seen `subscribed` or `pending`.
  Here the batch is worth its one risk: a first night carries tens of thousands of unsubscribes
  (a PATCH each took half an hour at 1M), and an address that left the list in the seconds since
  the lookup comes back as an unsubscribed contact, which can receive no marketing email;
- erase: `POST /lists/{id}/members/{hash}/actions/delete-permanent` in every audience that
  holds the address (`GET /lists?email=`), so erasure needs no audience id.
A member already holding the tag and the values is left alone, so a repeated upsert sends no
write at all. A write that still fails after the retries (429, 5xx, dropped connections) comes
back `rejected` for its members, so the rest of the call goes on; a failed read, a refused merge
field or tag, and a rejected key (`CredentialRejected`) raise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import requests

from activation.destinations.base import Audience, Member, Outcome, email_key
from activation.destinations.mailchimp.http import (
    DEFAULT_MAX_CONNECTIONS,
    MailchimpApi,
    MailchimpRefused,
    problem_text,
    raise_for_problem,
)
from activation.destinations.mailchimp.members import MemberDirectory, MemberState, subscriber_hash
from activation.destinations.mailchimp.merge_fields import MergeField, MergeFields, field_value, same_value
from ingestion.common.errors import RequestFailed
from ingestion.common.http import RetryPolicy
from ingestion.common.pacing import Sleep

#: Documented maximum of addresses per batch call: a segment batch's `members_to_add` /
#: `members_to_remove`, and the batch subscribe or unsubscribe's `members`.
BATCH_MAX = 500
_PAGE = 1000

NOT_A_MEMBER = "not a member of the Mailchimp audience (Tessera never adds contacts)"


def _why_skipped(status: str) -> str:
    reasons = {
        "unsubscribed": "unsubscribed in Mailchimp",
        "cleaned": "cleaned in Mailchimp (the address bounced)",
        "pending": "pending in Mailchimp (double opt-in not confirmed)",
        "transactional": "transactional in Mailchimp (never opted in to marketing)",
        "archived": "archived in Mailchimp (no longer a member)",
    }
    return f"{reasons.get(status, f'{status} in Mailchimp')}: only subscribed members are tagged"


class MailchimpDestination:
    """Pushes audiences as tags (and merge fields) on one Mailchimp audience.

    `requests` and `retries` count every HTTP attempt and every retry made so far."""

    name = "mailchimp"

    def __init__(
        self,
        base_url: str | None,
        api_key: str,
        list_id: str | None,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        policy: RetryPolicy | None = None,
        sleep: Sleep = time.sleep,
    ) -> None:
        """`base_url`: `https://<dc>.api.mailchimp.com/3.0` (derived from the key's `-<dc>`
        suffix when None) or the sandbox's `http://127.0.0.1:<port>/mailchimp/3.0`.
        `max_connections`: simultaneous requests, at most Mailchimp's 10 per key.
        `list_id`: the audience to keep tags on; None for a client that only erases."""
        self.list_id = list_id
        self._api = MailchimpApi(base_url, api_key, max_connections=max_connections, policy=policy, sleep=sleep)
        self._directory = MemberDirectory(self._api, list_id)
        self._merge_fields = MergeFields(self._api, list_id)
        self._segments: dict[str, int] | None = None

    def __repr__(self) -> str:  # never the key
        return f"MailchimpDestination({self._api.root!r}, list_id={self.list_id!r})"

    @property
    def requests(self) -> int:
        return self._api.requests

    @property
    def retries(self) -> int:
        return self._api.retries

    def close(self) -> None:
        """Stop the worker threads and close the connections."""
        self._api.close()

    def __enter__(self) -> MailchimpDestination:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- protocol --------------------------------------------------------------------------------

    def upsert(self, audience: Audience, members: Sequence[Member]) -> list[Outcome]:
        """Tag every subscribed member and set their merge fields; skip everyone else."""
        tag = _tag_of(audience)
        wanted = {email_key(m.email): m for m in members}  # the last entry of an address wins
        states = self._directory.lookup(wanted)
        results: dict[str, Outcome] = {}
        eligible: list[tuple[Member, MemberState]] = []
        for key, member in wanted.items():
            state = states.get(subscriber_hash(key))
            if state is None:
                results[key] = Outcome(member.email, "skipped", NOT_A_MEMBER)
            elif state.status != "subscribed":
                results[key] = Outcome(member.email, "skipped", _why_skipped(state.status))
            else:
                eligible.append((member, state))
        if audience.properties and eligible:
            fields = self._merge_fields.ensure(audience.properties, (m.properties for m, _ in eligible))
            changes = [(m, values) for m, s in eligible if (values := _changed_values(m, s, fields))]
            for (member, _), outcome in zip(
                changes, self._api.parallel(self._patch_merge_fields, changes), strict=True
            ):
                if outcome is not None:
                    results[email_key(member.email)] = outcome
        to_tag = [m for m, s in eligible if email_key(m.email) not in results and tag not in s.tags]
        if to_tag:
            results.update(self._segment_batch(tag, "members_to_add", to_tag))
        for member, _ in eligible:
            results.setdefault(email_key(member.email), Outcome(member.email, "ok"))
        return [_as_given(results[email_key(m.email)], m.email) for m in members]

    def remove(self, audience: Audience, members: Sequence[Member]) -> list[Outcome]:
        """Take the tag off; members without it (or not on the audience) are already done."""
        tag = _tag_of(audience)
        wanted = {email_key(m.email): m for m in members}
        states = self._directory.lookup(wanted)
        tagged = [m for key, m in wanted.items() if tag in getattr(states.get(subscriber_hash(key)), "tags", ())]
        results = self._segment_batch(tag, "members_to_remove", tagged) if tagged else {}
        return [_as_given(results.get(email_key(m.email), Outcome(m.email, "ok")), m.email) for m in members]

    def suppress(self, emails: Sequence[str]) -> list[Outcome]:
        """Set members who are subscribed (or pending confirmation) to unsubscribed; nobody else
        is touched, and unknown addresses are ok."""
        keys = list(dict.fromkeys(email_key(e) for e in emails))
        states = self._directory.lookup(keys)
        targets = [
            k for k in keys if getattr(states.get(subscriber_hash(k)), "status", None) in ("subscribed", "pending")
        ]
        done = self._unsubscribe_batch(targets) if targets else {}
        return [_as_given(done.get(email_key(e), Outcome(e, "ok")), e) for e in emails]

    def erase(self, emails: Sequence[str]) -> list[Outcome]:
        """Permanently delete each address from every audience of the account that holds it,
        not only the one Tessera tags on: the person asked the shop to forget them, and the
        loaders read every audience. An address no audience holds is ok."""
        keys = list(dict.fromkeys(email_key(e) for e in emails))
        done = dict(zip(keys, self._api.parallel(self._erase_everywhere, keys), strict=True))
        return [_as_given(done[email_key(e)], e) for e in emails]

    def _audiences_holding(self, email: str) -> list[str]:
        """Ids of the audiences that have this address as a member, in any status
        (`GET /lists?email=`), and the configured audience."""
        ids = [self.list_id] if self.list_id else []
        offset = 0
        while True:
            params = {"email": email, "fields": "lists.id,total_items", "count": _PAGE, "offset": offset}
            response = self._api.call("GET", "/lists", params=params)
            raise_for_problem(response, "listing the audiences holding an address")
            body = response.json()
            ids += [a["id"] for a in body.get("lists") or [] if a["id"] not in ids]
            offset += _PAGE
            if offset >= int(body.get("total_items") or 0):
                return ids

    def _erase_everywhere(self, email: str) -> Outcome:
        try:
            audiences = self._audiences_holding(email)
        except (RequestFailed, MailchimpRefused) as exc:  # a refused key raises, as on every call
            return Outcome(email, "rejected", str(exc))
        refused = [
            f"audience {list_id}: {outcome.error}"
            for list_id in audiences
            if (outcome := self._delete_permanently(email, list_id)).status != "ok"
        ]
        return Outcome(email, "rejected", "; ".join(refused)) if refused else Outcome(email, "ok")

    # -- calls -----------------------------------------------------------------------------------

    def _member_path(self, email: str, list_id: str | None = None) -> str:
        """The member's path in `list_id`, by default the audience Tessera tags on."""
        return f"/lists/{list_id or self.list_id}/members/{subscriber_hash(email)}"

    def _patch_merge_fields(self, change: tuple[Member, dict[str, Any]]) -> Outcome | None:
        member, values = change
        try:
            # Only merge_fields: without `status` a PATCH leaves the subscription as it is.
            response = self._api.call("PATCH", self._member_path(member.email), json={"merge_fields": values})
        except RequestFailed as exc:
            return Outcome(member.email, "rejected", str(exc))
        return _single_outcome(member.email, response, on_404=Outcome(member.email, "skipped", NOT_A_MEMBER))

    def _unsubscribe_batch(self, keys: Sequence[str]) -> dict[str, Outcome]:
        """Set these members unsubscribed with batch calls (`POST /lists/{id}`, 500 a call):
        a first night can carry tens of thousands of unsubscribes from Klaviyo, which one PATCH
        each took half an hour to send. Each address was just seen subscribed or pending, and
        `update_existing` with status `unsubscribed` only ever moves them away from subscribed."""
        return self._in_batches(
            f"/lists/{self.list_id}",
            keys,
            lambda chunk: {
                "members": [{"email_address": k, "status": "unsubscribed"} for k in chunk],
                "update_existing": True,
            },
            lambda error: [error.get("email_address") or ""],
        )

    def _delete_permanently(self, email: str, list_id: str) -> Outcome:
        try:
            response = self._api.call("POST", f"{self._member_path(email, list_id)}/actions/delete-permanent")
        except RequestFailed as exc:
            return Outcome(email, "rejected", str(exc))
        return _single_outcome(email, response, on_404=None) or Outcome(email, "ok")

    def _segment_batch(self, tag: str, action: str, members: Sequence[Member]) -> dict[str, Outcome]:
        """Add or remove members of the tag's static segment, 500 a call; returns the members
        Mailchimp reported in `errors` (rejected) and the rest (ok)."""
        segment_id = self._segment_id(tag, create=action == "members_to_add")
        if segment_id is None:  # no such tag on the audience: nobody holds it
            return {email_key(m.email): Outcome(m.email, "ok") for m in members}
        return self._in_batches(
            f"/lists/{self.list_id}/segments/{segment_id}",
            [m.email for m in members],
            lambda chunk: {action: [e.strip() for e in chunk]},
            lambda error: error.get("email_addresses") or [],
        )

    def _in_batches(
        self,
        path: str,
        emails: Sequence[str],
        body: Callable[[Sequence[str]], dict[str, Any]],
        refused: Callable[[dict[str, Any]], Sequence[str]],
    ) -> dict[str, Outcome]:
        """POST `body(chunk)` to `path` for each `BATCH_MAX` addresses, the calls in
        parallel; by address key, `rejected` for the addresses `refused` finds in an entry of
        the answer's `errors` (or all of a failed call's), `ok` for the rest."""
        chunks = [emails[i : i + BATCH_MAX] for i in range(0, len(emails), BATCH_MAX)]

        def send(chunk: Sequence[str]) -> dict[str, Outcome]:
            try:
                response = self._api.call("POST", path, json=body(chunk))
            except RequestFailed as exc:
                return {email_key(e): Outcome(e, "rejected", str(exc)) for e in chunk}
            if response.status_code >= 400:
                why = problem_text(response)
                return {email_key(e): Outcome(e, "rejected", why) for e in chunk}
            results = {email_key(e): Outcome(e, "ok") for e in chunk}
            for error in response.json().get("errors") or []:
                for email in refused(error):
                    results[email_key(email)] = Outcome(email, "rejected", error.get("error") or "rejected")
            return results

        merged: dict[str, Outcome] = {}
        for part in self._api.parallel(send, chunks):
            merged.update(part)
        return merged

    def _segment_id(self, tag: str, *, create: bool) -> int | None:
        """The id of the static segment behind a tag; created (empty) when asked and missing."""
        if self._segments is None or (tag not in self._segments and create):
            self._segments = self._read_segments()
        if tag in self._segments or not create:
            return self._segments.get(tag)
        response = self._api.call("POST", f"/lists/{self.list_id}/segments", json={"name": tag, "static_segment": []})
        if response.status_code == 400:
            # Created meanwhile (a concurrent run, or a retried POST whose answer was lost).
            self._segments = self._read_segments()
            if tag in self._segments:
                return self._segments[tag]
        raise_for_problem(response, f"create the tag {tag!r}")
        self._segments[tag] = int(response.json()["id"])
        return self._segments[tag]

    def _read_segments(self) -> dict[str, int]:
        segments: dict[str, int] = {}
        offset = 0
        while True:
            response = self._api.call(
                "GET",
                f"/lists/{self.list_id}/segments",
                params={
                    "type": "static",
                    "count": _PAGE,
                    "offset": offset,
                    "fields": "segments.id,segments.name,total_items",
                },
            )
            raise_for_problem(response, "list the audience's tags")
            body = response.json()
            for segment in body.get("segments") or []:
                segments.setdefault(segment["name"], int(segment["id"]))
            offset += _PAGE
            if offset >= int(body.get("total_items", 0)):
                return segments


def _tag_of(audience: Audience) -> str:
    if not audience.mailchimp_tag:
        raise ValueError(f"audience {audience.name!r} has no mailchimp_tag: nothing to push to Mailchimp")
    return audience.mailchimp_tag


def _changed_values(member: Member, state: MemberState, fields: dict[str, MergeField]) -> dict[str, Any]:
    """The merge field values that differ from what Mailchimp holds for the member."""
    changed = {}
    for name, field in fields.items():
        value = field_value(member.properties.get(name), field.type)
        if not same_value(state.merge_fields.get(field.tag), value):
            changed[field.tag] = value
    return changed


def _single_outcome(email: str, response: requests.Response, *, on_404: Outcome | None) -> Outcome | None:
    """None when the call succeeded; `on_404` for a member that is not there; otherwise the
    member's refusal in Mailchimp's words."""
    if response.status_code < 400:
        return None
    if response.status_code == 404:
        return on_404
    return Outcome(email, "rejected", problem_text(response))


def _as_given(outcome: Outcome, email: str) -> Outcome:
    """The outcome under the address exactly as the caller gave it."""
    return outcome if outcome.email == email else Outcome(email, outcome.status, outcome.error)
