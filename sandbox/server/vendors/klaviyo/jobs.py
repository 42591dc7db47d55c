"""Bulk jobs: Bulk Import Profiles (with per-profile import errors) and Bulk Subscribe
Profiles, which the sandbox accepts and records but does not apply.

Klaviyo runs import jobs asynchronously; the sandbox applies a job while answering the POST
(which still reports `queued`, as Klaviyo's does) and every later GET reports it `complete`,
so a client that polls sees the job finish on its first poll.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any
from weakref import WeakKeyDictionary

import orjson
import pyarrow as pa
from starlette.responses import Response

from sandbox.server.state import SandboxState, collection_paused, format_ts
from sandbox.server.vendors.klaviyo.api import VENDOR, Ctx, KlaviyoError, invalid, iso, jsonapi, not_found
from sandbox.server.vendors.klaviyo.event_jobs import EVENTS_FIRST
from sandbox.server.vendors.klaviyo.lists import require_list, set_membership
from sandbox.server.vendors.klaviyo.profiles import (
    Upsert,
    check_reject_fault,
    new_ulid,
    resource_body,
    upsert_profiles,
    validate_attributes,
)
from sandbox.server.vendors.klaviyo.query import Collection, Row, list_response

#: Bulk Import Profiles limits: 10,000 profiles and 5 MB per job, 100 KB per profile.
MAX_PROFILES = 10_000
MAX_JOB_BYTES = 5 * 1024 * 1024
MAX_PROFILE_BYTES = 100 * 1024
#: Bulk Subscribe Profiles takes at most 1,000 profiles per job.
MAX_SUBSCRIPTIONS = 1000
_JOB_TYPE = "profile-bulk-import-job"
#: Jobs are run one at a time, in about the order they came: two jobs sharing the server by
#: turns both finish as late as their sum, and a client waits for each job before its events.
_ONE_JOB_AT_A_TIME = threading.Lock()
#: Profiles a job works between its pauses for bulk events requests (`EVENTS_FIRST`).
_STEP = 1000
_ERRORS_OVERLAY = "klaviyo_import_error_overlay"
_ERRORS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("code", pa.string()),
        ("detail", pa.string()),
        ("pointer", pa.string()),
        ("original_payload", pa.string()),
    ]
)


def _job_resource(ctx: Ctx, job_id: str, job: dict[str, Any], *, queued: bool = False) -> dict[str, Any]:
    attributes = {
        "status": "queued" if queued else job["status"],
        "created_at": job["created_at"],
        "total_count": job["total_count"],
        "completed_count": 0 if queued else job["completed_count"],
        "failed_count": 0 if queued else job["failed_count"],
        "completed_at": None if queued else job["completed_at"],
        "expires_at": job["expires_at"],
        "started_at": None if queued else job["started_at"],
    }
    base = f"/api/profile-bulk-import-jobs/{job_id}"
    return {
        "type": _JOB_TYPE,
        "id": job_id,
        "attributes": attributes,
        "relationships": {
            "lists": {
                "data": [{"type": "list", "id": lid} for lid in job["list_ids"]],
                "links": {
                    "self": ctx.link(f"{base}/relationships/lists"),
                    "related": ctx.link(f"{base}/lists"),
                },
            },
            "profiles": {
                "links": {
                    "self": ctx.link(f"{base}/relationships/profiles"),
                    "related": ctx.link(f"{base}/profiles"),
                }
            },
            "import-errors": {"links": {"related": ctx.link(f"{base}/import-errors")}},
        },
        "links": {"self": ctx.link(base)},
    }


def _validate(ctx: Ctx, item: Any) -> Upsert:
    """A profile of a job checked on its own; raises KlaviyoError pointing into the profile,
    which the import error's `original_payload` carries, not into the job: the reference's
    pointer defaults to `/data` and promises no place in the job (so `/data/attributes/email`)."""
    pointer = "/data"
    if not isinstance(item, dict) or item.get("type") != "profile":
        raise invalid("Each profile must be a resource object of type 'profile'.", pointer=f"{pointer}/type")
    if len(orjson.dumps(item)) > MAX_PROFILE_BYTES:
        raise invalid("A profile may not exceed 100 KB.", pointer=pointer)
    attributes = validate_attributes(item.get("attributes") or {}, f"{pointer}/attributes")
    check_reject_fault(ctx, attributes, f"{pointer}/attributes")
    return Upsert(attributes, item.get("id"), f"{pointer}/attributes")


def create_bulk_import_job(ctx: Ctx) -> Response:
    """POST /api/profile-bulk-import-jobs: 202 with the job. Invalid profiles do not fail the
    job; they become import errors and count in `failed_count`."""
    if len(ctx.raw_body()) > MAX_JOB_BYTES:
        raise KlaviyoError(413, "The request payload may not exceed 5 MB.", code="request_too_large")
    with _ONE_JOB_AT_A_TIME, collection_paused():
        return _bulk_import_job(ctx)


def _bulk_import_job(ctx: Ctx) -> Response:
    """The job run: profiles checked one by one, the valid ones written and listed."""
    body = ctx.body()
    data = resource_body(body, _JOB_TYPE)
    profiles = ((data.get("attributes") or {}).get("profiles") or {}).get("data")
    if not isinstance(profiles, list) or not profiles:
        raise invalid("`profiles.data` must be a non-empty array.", pointer="/data/attributes/profiles/data")
    if len(profiles) > MAX_PROFILES:
        raise invalid(
            f"A job may contain at most {MAX_PROFILES} profiles; got {len(profiles)}.",
            pointer="/data/attributes/profiles/data",
        )
    list_refs = ((data.get("relationships") or {}).get("lists") or {}).get("data") or []
    list_ids = [ref.get("id") for ref in list_refs if isinstance(ref, dict)]
    for lid in list_ids:
        require_list(ctx, lid)
    if ctx.state.faults.cancel_job(VENDOR, "profile_bulk_import_job"):
        return _cancelled_job(ctx, profiles, list_ids)

    # Bulk events requests are worked first; the job gives way between its steps, where it
    # holds no lock they take.
    outcomes: list[Upsert | KlaviyoError] = []
    for i, item in enumerate(profiles):
        if not i % _STEP:
            EVENTS_FIRST.give_way()
        try:
            outcomes.append(_validate(ctx, item))
        except KlaviyoError as exc:
            outcomes.append(exc)
    valid = [o for o in outcomes if isinstance(o, Upsert)]
    results: list[tuple[str, bool] | KlaviyoError] = []
    for start in range(0, len(valid), _STEP):
        EVENTS_FIRST.give_way()
        results += upsert_profiles(ctx, valid[start : start + _STEP])
    written = iter(results)
    imported: list[str] = []
    created: set[str] = set()
    errors: list[dict[str, Any]] = []
    for item, outcome in zip(profiles, outcomes, strict=True):
        result = next(written) if isinstance(outcome, Upsert) else outcome
        if isinstance(result, KlaviyoError):
            attributes = item.get("attributes") if isinstance(item, dict) else None
            errors.append(
                {
                    "code": result.code,
                    "detail": result.detail,
                    "pointer": result.source.get("pointer"),
                    "original_payload": attributes if isinstance(attributes, dict) else {},
                }
            )
        else:
            imported.append(result[0])
            if result[1]:
                created.add(result[0])
    for lid in list_ids:
        for start in range(0, len(imported), _STEP):
            EVENTS_FIRST.give_way()
            set_membership(ctx, lid, imported[start : start + _STEP], member=True, new_profiles=created)

    job_id = new_ulid()
    now = ctx.state.clock
    job = {
        "status": "complete",
        "created_at": iso(now),
        "started_at": iso(now),
        "completed_at": iso(now),
        "expires_at": iso(now + timedelta(days=7)),
        "total_count": len(profiles),
        "completed_count": len(imported),
        "failed_count": len(errors),
        "list_ids": list_ids,
        "profile_ids": list(dict.fromkeys(imported)),
        "errors": errors,
    }
    _store_job(ctx, job_id, job)
    ctx.state.destinations.record(VENDOR, "profile_bulk_import_job", job_id, ctx.raw_body())
    resource = _job_resource(ctx, job_id, job, queued=True)
    return jsonapi({"data": resource, "links": {"self": resource["links"]["self"]}}, 202)


def _cancelled_job(ctx: Ctx, profiles: list[Any], list_ids: list[str]) -> Response:
    """The `rate_cancel_job` fault: Klaviyo accepted the job and cancelled it before running
    any of it. Nothing is written; polls answer status `cancelled`."""
    job_id = new_ulid()
    now = ctx.state.clock
    job = {
        "status": "cancelled",
        "created_at": iso(now),
        "started_at": None,
        "completed_at": None,
        "expires_at": iso(now + timedelta(days=7)),
        "total_count": len(profiles),
        "completed_count": 0,
        "failed_count": 0,
        "list_ids": list_ids,
        "profile_ids": [],
        "errors": [],
    }
    _store_job(ctx, job_id, job)
    resource = _job_resource(ctx, job_id, job, queued=True)
    return jsonapi({"data": resource, "links": {"self": resource["links"]["self"]}}, 202)


#: Jobs by id per served world, as stored: a poll answers without waiting for the store's
#: file to take the writes still pending (the profiles of a job just run).
_JOBS: WeakKeyDictionary[SandboxState, dict[str, dict[str, Any]]] = WeakKeyDictionary()
_JOBS_LOCK = threading.Lock()


def _jobs(state: SandboxState) -> dict[str, dict[str, Any]]:
    with _JOBS_LOCK:
        return _JOBS.setdefault(state, {})


def _store_job(ctx: Ctx, job_id: str, job: dict[str, Any]) -> None:
    now = format_ts(ctx.state.clock)
    ctx.state.destinations.write_behind(VENDOR, "bulk_import_job", [(job_id, json.dumps(job), now, now)])
    # What a poll reads stays in memory; the profile ids (10,000 a job) only in the store.
    _jobs(ctx.state)[job_id] = {k: v for k, v in job.items() if k != "profile_ids"}


def _job(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    job_id = ctx.request.path_params["id"]
    job = _jobs(ctx.state).get(job_id)
    if job is None:  # a job from before the server restarted
        stored = ctx.state.destinations.get(VENDOR, "bulk_import_job", job_id)
        if stored is None:
            raise not_found(f"A bulk import job with id {job_id} does not exist.")
        job = stored.payload
    return job_id, job


def get_bulk_import_job(ctx: Ctx) -> Response:
    job_id, job = _job(ctx)
    resource = _job_resource(ctx, job_id, job)
    return jsonapi({"data": resource, "links": {"self": resource["links"]["self"]}})


def _errors_source(ctx: Ctx) -> tuple[str, dict[str, Any]]:
    job_id, job = _job(ctx)
    rows: dict[str, list[Any]] = {name: [] for name in _ERRORS_SCHEMA.names}
    for i, error in enumerate(job["errors"]):
        rows["id"].append(f"{job_id}-{i:05d}")  # sorts in submission order
        rows["code"].append(error["code"])
        rows["detail"].append(error["detail"])
        rows["pointer"].append(error["pointer"])
        rows["original_payload"].append(json.dumps(error["original_payload"]))
    ctx.overlay(_ERRORS_OVERLAY, pa.table(rows, schema=_ERRORS_SCHEMA))
    return f"SELECT * FROM {_ERRORS_OVERLAY}", {}


def _render_errors(ctx: Ctx, rows: list[Row]) -> list[dict[str, Any]]:
    return [
        {
            "type": "import-error",
            "id": row["id"],
            "attributes": {
                "code": row["code"],
                "detail": row["detail"],
                "source": {"pointer": row["pointer"]},
                "original_payload": json.loads(row["original_payload"]),
            },
        }
        for row in rows
    ]


IMPORT_ERRORS = Collection(name="import_errors", source=_errors_source, render=_render_errors)


def get_import_errors(ctx: Ctx) -> Response:
    _job(ctx)
    return list_response(ctx, IMPORT_ERRORS)


def create_subscription_job(ctx: Ctx) -> Response:
    """POST /api/profile-subscription-bulk-create-jobs: 202. Recorded (so tests can prove an
    audience push never subscribes anyone) but consent is not changed."""
    body = ctx.body()
    data = resource_body(body, "profile-subscription-bulk-create-job")
    profiles = ((data.get("attributes") or {}).get("profiles") or {}).get("data")
    if not isinstance(profiles, list) or not 1 <= len(profiles) <= MAX_SUBSCRIPTIONS:
        raise invalid(
            f"`profiles.data` must be an array of 1 to {MAX_SUBSCRIPTIONS} profiles.",
            pointer="/data/attributes/profiles/data",
        )
    ctx.state.destinations.record(VENDOR, "subscription_bulk_create_job", None, body)
    return jsonapi(None, 202)
