"""Bulk Suppress Profiles and Request Profile Deletion.

- `POST /api/profile-suppression-bulk-create-jobs` (up to 100 emails): each email is
  suppressed (kept as kind "suppression", by lowercased email): its profile's
  `subscriptions.email.marketing.suppression` lists `USER_SUPPRESSED` and
  `can_receive_email_marketing` is false. Consent itself is not changed, as in Klaviyo.
- `POST /api/data-privacy-deletion-jobs` (one profile, by exactly one of email, phone number
  or id): every matching profile is deleted (kind "deleted_profile"): it disappears from the
  profile, list and event reads; a later import of the same email creates a new profile.

Both jobs are applied while the POST is answered (Klaviyo runs them shortly after).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.responses import Response

from sandbox.server.state import format_ts
from sandbox.server.vendors.klaviyo import overlays
from sandbox.server.vendors.klaviyo.api import VENDOR, Ctx, invalid, iso, jsonapi, not_found
from sandbox.server.vendors.klaviyo.profiles import (
    WRITE_LOCK,
    new_ulid,
    profile_source,
    resource_body,
    validate_attributes,
)

#: Bulk Suppress Profiles takes at most 100 email addresses per request.
MAX_SUPPRESSIONS = 100
_SUPPRESSION_JOB = "profile-suppression-bulk-create-job"


def _suppression_resource(ctx: Ctx, job_id: str, job: dict[str, Any], *, queued: bool = False) -> dict[str, Any]:
    return {
        "type": _SUPPRESSION_JOB,
        "id": job_id,
        "attributes": {
            "status": "queued" if queued else "complete",
            "created_at": job["created_at"],
            "total_count": job["total_count"],
            "completed_count": 0 if queued else job["total_count"],
            "completed_at": None if queued else job["completed_at"],
            "skipped_count": 0,
        },
        "relationships": {"lists": {"data": []}, "segments": {"data": []}},
        "links": {"self": ctx.link(f"/api/profile-suppression-bulk-create-jobs/{job_id}")},
    }


def create_suppression_job(ctx: Ctx) -> Response:
    """POST /api/profile-suppression-bulk-create-jobs: 202 with the job."""
    body = ctx.body()
    data = resource_body(body, _SUPPRESSION_JOB)
    if data.get("relationships"):
        raise invalid(
            "Suppressing every member of a list or segment is not served by the sandbox.",
            pointer="/data/relationships",
        )
    pointer = "/data/attributes/profiles/data"
    profiles = ((data.get("attributes") or {}).get("profiles") or {}).get("data")
    if not isinstance(profiles, list) or not 1 <= len(profiles) <= MAX_SUPPRESSIONS:
        raise invalid(f"`profiles.data` must be an array of 1 to {MAX_SUPPRESSIONS} profiles.", pointer=pointer)
    emails = []
    for i, item in enumerate(profiles):
        if not isinstance(item, dict) or item.get("type") != "profile":
            raise invalid("Each profile must be a resource object of type 'profile'.", pointer=f"{pointer}/{i}/type")
        attributes = validate_attributes(item.get("attributes") or {}, f"{pointer}/{i}/attributes")
        if not attributes.get("email"):
            raise invalid("An email is required to suppress a profile.", pointer=f"{pointer}/{i}/attributes/email")
        emails.append(attributes["email"].lower())
    now = ctx.state.clock
    # The first suppression's time stands: suppressing again changes nothing.
    overlays.put_many(ctx, overlays.SUPPRESSIONS, [(e, {"at": format_ts(now)}) for e in emails], keep_existing=True)
    job_id = new_ulid()
    job = {
        "created_at": iso(now),
        "completed_at": iso(now),
        "expires_at": iso(now + timedelta(days=7)),
        "total_count": len(emails),
    }
    ctx.state.destinations.upsert(VENDOR, "suppression_job", job_id, job)
    ctx.state.destinations.record(VENDOR, "suppression_bulk_create_job", job_id, body)
    resource = _suppression_resource(ctx, job_id, job, queued=True)
    return jsonapi({"data": resource, "links": {"self": resource["links"]["self"]}}, 202)


def get_suppression_job(ctx: Ctx) -> Response:
    job_id = ctx.request.path_params["id"]
    stored = ctx.state.destinations.get(VENDOR, "suppression_job", job_id)
    if stored is None:
        raise not_found(f"A bulk suppress profiles job with id {job_id} does not exist.")
    resource = _suppression_resource(ctx, job_id, stored.payload)
    return jsonapi({"data": resource, "links": {"self": resource["links"]["self"]}})


def create_deletion_job(ctx: Ctx) -> Response:
    """POST /api/data-privacy-deletion-jobs: 202, no body; unknown profiles are no error."""
    body = ctx.body()
    data = resource_body(body, "data-privacy-deletion-job")
    pointer = "/data/attributes/profile/data"
    profile = ((data.get("attributes") or {}).get("profile") or {}).get("data")
    if not isinstance(profile, dict) or profile.get("type") != "profile":
        raise invalid('`profile` must be {"data": {"type": "profile", ...}}.', pointer=pointer)
    attributes = validate_attributes(profile.get("attributes") or {}, f"{pointer}/attributes")
    given = {name: attributes[name] for name in ("email", "phone_number") if attributes.get(name)}
    if profile.get("id"):
        given["id"] = profile["id"]
    if len(given) != 1:
        raise invalid("Provide exactly one of `email`, `phone_number` or `id`.", pointer=pointer)
    ((name, value),) = given.items()
    column, wanted = ("lower(email)", value.lower()) if name == "email" else (name, value)
    with WRITE_LOCK:
        relation, params = profile_source(ctx)
        found = (
            ctx.db()
            .execute(f"SELECT id FROM ({relation}) AS p WHERE {column} = $wanted", {**params, "wanted": wanted})
            .fetchall()
        )
        at = format_ts(ctx.state.clock)
        overlays.put_many(ctx, overlays.DELETED, [(pid, {"at": at}) for (pid,) in found])
    ctx.state.destinations.record(VENDOR, "data_privacy_deletion_job", None, body)
    return jsonapi(None, 202)
