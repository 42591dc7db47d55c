"""`KlaviyoDestination`: how Klaviyo takes the sync engine's changes.

- upsert: profiles, their properties and list membership through Bulk Import Profiles jobs
  (10,000 profiles / 5 MB each); each job's import errors become `rejected` outcomes in
  Klaviyo's words. As soon as a job is complete, the events of its imported members go out
  through Bulk Create Events (1,000 per request) with `unique_id` = the member's event id, so
  a resend never duplicates one. No subscribe endpoint is ever called: Klaviyo's Bulk
  Subscribe clears suppressions.
- remove: list member ids looked up by email, then Remove Profiles from List (1,000 per call).
- suppress: Bulk Suppress Profiles (100 emails per request).
- erase: Request Profile Deletion, one email per request.

Requests to different endpoints run concurrently; each endpoint is paced on its documented
tier (see `activation.destinations.pacing`), so a push never earns a rate-limit 429 by itself.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from activation.destinations.base import Audience, Member, Outcome, email_key
from activation.destinations.klaviyo import payloads, tiers
from activation.destinations.klaviyo.client import KlaviyoClient, error_detail, error_pointer
from activation.destinations.pacing import Window
from ingestion.common.errors import RequestFailed
from ingestion.common.http import RetryPolicy

_IMPORT_POINTER = "/data/attributes/profiles/data"
_EVENTS_POINTER = "/data/attributes/events-bulk-create/data"
#: Job polling: first look soon (small jobs finish in a fraction of a second), then back off
#: by half each time, so a poll comes at most a third of the job's age after it completed.
_POLL_FIRST, _POLL_GROWTH, _POLL_MAX = 0.05, 1.5, 5.0
_JOB_TIMEOUT_SECONDS = 3600.0


@contextmanager
def _collector_off_older_objects() -> Iterator[None]:
    """Keep the garbage collector's full collections off the objects that existed before.

    A caller's members are new objects (100k members and their properties: half a million),
    so the process owes a full collection, and the push's own allocations (its outcomes) set
    it off: 0.3-0.5 s with every thread stopped, mid-push, while the events stream waits on
    answers whose times pace the requests after them. Frozen, the objects from before are
    left out of collections until the push ends; the collection still owed then happens in
    the caller. Left alone when something else froze objects (a server before forking)."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@dataclass
class _Result:
    """Per-member errors of one batch, by index into the members of the call."""

    errors: dict[int, str]


class KlaviyoDestination:
    """Klaviyo as an activation destination (see `activation.destinations.base.Destination`).

    `requests`, `retries` and `throttled` count the attempts sent, the retries they needed and
    the 429s Klaviyo answered (faults or contention with other clients of the account)."""

    name = "klaviyo"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        revision: str = "2025-10-15",
        workers: int = 8,
        import_workers: int = 2,
        first_import_size: int = 1_000,
        policy: RetryPolicy | None = None,
        tiers: Mapping[str, tuple[Window, Window]] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # `tiers` overrides Klaviyo's documented sizes by name ("m": (burst, steady)), for an
        # account whose limits differ.
        self.client = KlaviyoClient(base_url, api_key, revision, policy, tiers)
        self.workers = workers
        # Klaviyo works through a job after accepting it: sending every job at once only
        # delays the first one, and the events wait for their profiles' job.
        self.import_workers = import_workers
        # The first import job is small so that events (the slowest stream under the
        # limits) can start while the big jobs are still being imported.
        self.first_import_size = first_import_size
        self._sleep = sleep
        self._list_ids: dict[str, str] = {}

    # -- counters -----------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        return self.client.counters.requests

    @property
    def retries(self) -> int:
        return self.client.counters.retries

    @property
    def throttled(self) -> int:
        return self.client.counters.throttled

    def close(self) -> None:
        self.client.close()

    # -- lists --------------------------------------------------------------------------------

    def find_list(self, name: str) -> str | None:
        """The id of the list with this name (the oldest, if Klaviyo holds several), or None."""
        if name in self._list_ids:
            return self._list_ids[name]
        params = {"filter": f"equals(name,{payloads.filter_string(name)})", "sort": "created"}
        response = self._ok(self.client.call("get_lists", params=params), "get lists")
        found = response.json()["data"]
        if found:
            self._list_ids[name] = found[0]["id"]
            return found[0]["id"]
        return None

    def ensure_list(self, name: str) -> str:
        """The id of the list with this name, created when missing."""
        list_id = self.find_list(name)
        if list_id is None:
            response = self._ok(self.client.call("create_list", body=payloads.list_body(name)), "create list")
            list_id = response.json()["data"]["id"]
            self._list_ids[name] = list_id
        return list_id

    # -- upsert -------------------------------------------------------------------------------

    def upsert(self, audience: Audience, members: Sequence[Member]) -> list[Outcome]:
        """Profiles with their properties in the audience's list, and each member's event once."""
        if not members:
            return []
        with _collector_off_older_objects():
            return self._upsert(audience, members)

    def _upsert(self, audience: Audience, members: Sequence[Member]) -> list[Outcome]:
        list_id = self.ensure_list(audience.klaviyo_list) if audience.klaviyo_list else None
        first = min(self.first_import_size, tiers.IMPORT_MAX_PROFILES)
        items = [payloads.profile_item(m) for m in members[:first]]
        outcomes: list[Outcome] = []
        stopped = threading.Event()
        # Pools are shut down in reverse: the jobs still running when a push fails finish (and
        # send nothing more) before the encoder and the event threads are joined.
        with (
            ThreadPoolExecutor(self._event_workers(), thread_name_prefix="klaviyo-events") as events,
            ThreadPoolExecutor(1, thread_name_prefix="klaviyo-encode") as encoder,
            ThreadPoolExecutor(self.import_workers, thread_name_prefix="klaviyo-import") as imports,
        ):

            def job(rows: range, entries: Future[dict[int, bytes]] | None) -> tuple[_Result, list[Future[_Result]]]:
                # A job's events are sent by the thread that saw it complete, already encoded
                # while the job was imported: the first events then go out while later jobs
                # are still being encoded (the events of request i + burst wait a second after
                # request i is answered, so any delay to the first ones is added to the whole
                # push). Only members the job imported get their event, and only after it:
                # the event triggers flows that read the profile's properties and list
                # membership.
                result = self._import(items, rows, list_id, [members[i].email for i in rows])
                if entries is None or stopped.is_set():
                    return result, []
                encoded = entries.result()
                imported = [i for i in rows if i not in result.errors and members[i].event_id]
                return result, self._submit_events(events, [encoded[i] for i in imported], imported)

            def submit(rows: range) -> Future[tuple[_Result, list[Future[_Result]]]]:
                entries = None
                if audience.event:
                    entries = encoder.submit(self._event_entries, members, rows, audience.event)
                return imports.submit(job, rows, entries)

            try:
                head = next(payloads.batches(items, first, tiers.MAX_PAYLOAD_BYTES))
                jobs = {submit(head): head}
                # The rest is encoded a job at a time while the jobs before it are sent (100k
                # profiles take most of a second to encode).
                for rows in self._import_batches(items, len(head), members):
                    jobs[submit(rows)] = rows
                # The outcomes are built while the events are in flight, not after the last
                # answer: a job says which of its members it rejected, and a refused event
                # (rare) turns its member's outcome into a rejection when its request returns.
                outcomes = [Outcome(m.email, "ok") for m in members]
                sent: list[Future[_Result]] = []
                for done in as_completed(jobs):
                    result, queued = done.result()
                    for i, detail in result.errors.items():
                        outcomes[i] = Outcome(members[i].email, "rejected", detail)
                    sent += queued
                for request in sent:
                    for i, detail in request.result().errors.items():
                        outcomes[i] = Outcome(members[i].email, "rejected", f"event: {detail}")
            except BaseException:
                stopped.set()  # jobs still running send no events
                raise
        return outcomes

    def _event_workers(self) -> int:
        """Threads for Bulk Create Events: at least the endpoint's burst, or the requests that
        the burst window allows wait for a thread instead of going out (8 threads for a burst
        of 10 made a push a fifth slower than its limits)."""
        burst = self.client.limiters.windows("bulk_create_events")[0].limit
        return max(self.workers, burst)

    @staticmethod
    def _import_batches(items: list[bytes], start: int, members: Sequence[Member]) -> Iterator[range]:
        """Jobs for the members from `start` on, each within Klaviyo's 10,000 profiles and
        5 MB; `items` (the encoded profiles so far) grows as the jobs are cut."""
        size = tiers.IMPORT_MAX_PROFILES
        while start < len(members):
            if len(items) < start + size:
                stop = min(len(members), start + size)
                items += [payloads.profile_item(m) for m in members[len(items) : stop]]
            rows = next(payloads.batches(items[start : start + size], size, tiers.MAX_PAYLOAD_BYTES))
            yield range(start, start + len(rows))
            start += len(rows)

    def _import(self, items: list[bytes], rows: range, list_id: str | None, emails: list[str]) -> _Result:
        """One import job: send, wait for it, and read its import errors (`emails`: the job's
        profiles' addresses, in the order of `rows`)."""
        batch = [items[i] for i in rows]
        response, refused = self._send_dropping(
            "bulk_import_profiles", batch, lambda kept: payloads.import_job_body(kept, list_id), _IMPORT_POINTER
        )
        errors = {rows[i]: detail for i, detail in refused.items()}
        if response is None:
            return _Result(errors)
        kept = [i for i in range(len(batch)) if i not in refused]
        job = response.json()["data"]
        attributes = self._wait_for_job(job["id"], job["attributes"])
        if attributes.get("status") == "cancelled":
            # Klaviyo stopped the job: none of it is known to be in. Sent again next run (an
            # import is idempotent), never recorded as delivered.
            for i in kept:
                errors[rows[i]] = "Klaviyo cancelled the import job"
            return _Result(errors)
        if attributes.get("failed_count"):
            # An import error names its profile by `original_payload` (the profile as sent);
            # a pointer with the profile's place in the job is used only when that is missing.
            row_of = {email_key(emails[i]): rows[i] for i in kept}
            unplaced = 0
            for index, email, detail in self._import_errors(job["id"]):
                if email is not None and email_key(email) in row_of:
                    errors[row_of[email_key(email)]] = detail
                elif index is not None and index < len(kept):
                    errors[rows[kept[index]]] = detail
                else:
                    unplaced += 1
            if unplaced:
                # An error Klaviyo did not point at a profile could be anyone's in the job.
                for i in kept:
                    errors.setdefault(rows[i], f"{unplaced} import error(s) Klaviyo did not place on a profile")
        return _Result(errors)

    def _wait_for_job(self, job_id: str, attributes: dict[str, Any]) -> dict[str, Any]:
        wait, waited = _POLL_FIRST, 0.0
        while attributes.get("status") not in ("complete", "cancelled"):
            if waited > _JOB_TIMEOUT_SECONDS:
                raise RequestFailed(
                    "klaviyo", "GET", f"profile-bulk-import-jobs/{job_id}", None, 1, "job never completed"
                )
            self._sleep(wait)
            waited += wait
            wait = min(_POLL_MAX, wait * _POLL_GROWTH)
            response = self._ok(self.client.call("get_bulk_import_job", path_id=job_id), "get import job")
            attributes = response.json()["data"]["attributes"]
        return attributes

    def _import_errors(self, job_id: str) -> list[tuple[int | None, str | None, str]]:
        """(profile index in the job if the pointer gives one, the profile's email from
        `original_payload`, Klaviyo's detail) for every import error of a job."""
        out: list[tuple[int | None, str | None, str]] = []
        params: dict[str, Any] = {"page[size]": 100}
        while True:
            response = self._ok(
                self.client.call("get_import_errors", path_id=job_id, params=params), "get import errors"
            )
            document = response.json()
            for error in document["data"]:
                attributes = error["attributes"]
                pointer = (attributes.get("source") or {}).get("pointer")
                index = payloads.pointer_index(pointer, _IMPORT_POINTER)
                email = _payload_email(attributes.get("original_payload"))
                out.append((index, email, attributes.get("detail") or "rejected"))
            next_link = (document.get("links") or {}).get("next")
            if not next_link:
                return out
            cursor = parse_qs(urlsplit(next_link).query).get("page[cursor]")
            if not cursor:
                return out
            params = {"page[size]": 100, "page[cursor]": cursor[0]}

    @staticmethod
    def _event_entries(members: Sequence[Member], rows: range, metric: str) -> dict[int, bytes]:
        """The Bulk Create Events entry of each member of a job that has an event, by index."""
        return {i: payloads.event_entry(members[i], metric) for i in rows if members[i].event_id}

    def _submit_events(
        self, pool: ThreadPoolExecutor, entries: list[bytes], indexes: list[int]
    ) -> list[Future[_Result]]:
        futures = []
        for rows in payloads.batches(entries, tiers.EVENTS_MAX, tiers.MAX_PAYLOAD_BYTES):
            chosen = [indexes[r] for r in rows]
            futures.append(pool.submit(self._events, [entries[r] for r in rows], chosen))
        return futures

    def _events(self, entries: list[bytes], indexes: list[int]) -> _Result:
        _, refused = self._send_dropping("bulk_create_events", entries, payloads.events_job_body, _EVENTS_POINTER)
        return _Result({indexes[i]: detail for i, detail in refused.items()})

    def _send_dropping(
        self, endpoint: str, items: list[bytes], body: Callable[[list[bytes]], bytes], prefix: str
    ) -> tuple[Any, dict[int, str]]:
        """POST a batch; when Klaviyo refuses it for one item (a 400 pointing into it), that
        item is rejected and the rest sent again. Returns (final response or None, refused)."""
        refused: dict[int, str] = {}
        while True:
            kept = [i for i in range(len(items)) if i not in refused]
            if not kept:
                return None, refused
            response = self.client.call(endpoint, data=body([items[i] for i in kept]))
            if response.status_code < 400:
                return response, refused
            index = payloads.pointer_index(error_pointer(response), prefix)
            if response.status_code == 400 and index is not None and index < len(kept):
                refused[kept[index]] = error_detail(response)
                continue
            detail = error_detail(response)  # the batch as a whole was refused
            return None, {**refused, **dict.fromkeys(kept, detail)}

    # -- remove -------------------------------------------------------------------------------

    def remove(self, audience: Audience, members: Sequence[Member]) -> list[Outcome]:
        """Take members out of the audience's list; profiles, properties and consent stay."""
        list_id = self.find_list(audience.klaviyo_list) if audience.klaviyo_list else None
        if list_id is None or not members:
            return [Outcome(m.email, "ok") for m in members]
        emails = [m.email for m in members]
        chunks = [emails[i : i + tiers.LOOKUP_MAX_EMAILS] for i in range(0, len(emails), tiers.LOOKUP_MAX_EMAILS)]
        with ThreadPoolExecutor(self.workers, thread_name_prefix="klaviyo-remove") as pool:
            found = [pid for ids in pool.map(lambda c: self._member_ids(list_id, c), chunks) for pid in ids]
            step = tiers.REMOVE_MAX_PROFILES
            answers = list(
                pool.map(
                    lambda ids: self.client.call(
                        "remove_profiles_from_list", path_id=list_id, body=payloads.remove_body(ids)
                    ),
                    [found[i : i + step] for i in range(0, len(found), step)],
                )
            )
        refused = [error_detail(a) for a in answers if a.status_code >= 400]
        if refused:  # ids do not say which email failed: the whole call is retried next run
            return [Outcome(m.email, "rejected", refused[0]) for m in members]
        return [Outcome(m.email, "ok") for m in members]

    def _member_ids(self, list_id: str, emails: list[str]) -> list[str]:
        values = ",".join(payloads.filter_string(e) for e in emails)
        params: dict[str, Any] = {"filter": f"any(email,[{values}])", "page[size]": 100}
        ids: list[str] = []
        while True:
            response = self._ok(
                self.client.call("get_list_profile_ids", path_id=list_id, params=params), "get list members"
            )
            document = response.json()
            ids += [item["id"] for item in document["data"]]
            next_link = (document.get("links") or {}).get("next")
            cursor = parse_qs(urlsplit(next_link).query).get("page[cursor]") if next_link else None
            if not cursor:
                return ids
            params = {**params, "page[cursor]": cursor[0]}

    # -- suppress and erase -------------------------------------------------------------------

    def suppress(self, emails: Sequence[str]) -> list[Outcome]:
        """Suppress these addresses (Bulk Suppress Profiles); consent is not changed."""
        step = tiers.SUPPRESS_MAX_EMAILS
        chunks = [list(emails[i : i + step]) for i in range(0, len(emails), step)]
        errors: dict[str, str] = {}
        with ThreadPoolExecutor(self.workers, thread_name_prefix="klaviyo-suppress") as pool:
            for chunk, (_, refused) in zip(chunks, pool.map(self._suppress_chunk, chunks), strict=True):
                errors.update({chunk[i]: detail for i, detail in refused.items()})
        return [Outcome(e, "rejected", errors[e]) if e in errors else Outcome(e, "ok") for e in emails]

    def _suppress_chunk(self, emails: list[str]) -> tuple[Any, dict[int, str]]:
        items = [e.encode() for e in emails]

        def body(kept: list[bytes]) -> bytes:
            return payloads.encode(payloads.suppression_body([k.decode() for k in kept]))

        return self._send_dropping("bulk_suppress_profiles", items, body, _IMPORT_POINTER)

    def erase(self, emails: Sequence[str]) -> list[Outcome]:
        """Request deletion of each address's profiles (one request per email)."""
        with ThreadPoolExecutor(self.workers, thread_name_prefix="klaviyo-erase") as pool:
            answers = list(
                pool.map(lambda e: self.client.call("request_profile_deletion", body=payloads.deletion_body(e)), emails)
            )
        return [
            Outcome(e, "rejected", error_detail(a)) if a.status_code >= 400 else Outcome(e, "ok")
            for e, a in zip(emails, answers, strict=True)
        ]

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _ok(response: Any, what: str) -> Any:
        if response.status_code >= 400:
            request = response.request
            raise RequestFailed(
                "klaviyo", request.method or "GET", request.url or what, response.status_code, 1, error_detail(response)
            )
        return response


def _payload_email(payload: Any) -> str | None:
    """The email of an import error's `original_payload`: the profile's attributes, or the
    profile resource around them."""
    if not isinstance(payload, dict):
        return None
    if isinstance(payload.get("attributes"), dict):
        payload = payload["attributes"]
    email = payload.get("email")
    return email if isinstance(email, str) and email.strip() else None
