"""Write endpoints an audience push uses: add/update members (single and batch), archive and
permanent delete, member tags, and static segments. Every accepted write is logged in the
destinations store (`record`) and changes what the read endpoints serve."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from sandbox.server import auth
from sandbox.server.vendors.mailchimp.audience import WRITE_LOCK, Audience
from sandbox.server.vendors.mailchimp.common import NOT_VALID, VENDOR, ApiError, Ctx, respond, subscriber_hash
from sandbox.server.vendors.mailchimp.lists import (
    audience,
    find_member,
    find_segment,
    member_json,
    segment_json,
)
from sandbox.server.vendors.mailchimp.model import Member, tag_id

#: Documented per-call maximum of the batch endpoints (members, members_to_add/remove).
BATCH_MAX = 500
#: What a member rejected by the fault injector is told (the sandbox's wording: Mailchimp does
#: not publish the texts of its per-record batch errors).
REJECTED_ERROR = "The contact could not be processed at this time. Please try again later."


def read_body(request: Request) -> dict[str, Any]:
    try:
        body = auth.read_json(request)
    except ValueError:
        raise ApiError(400, "JSON Parse Error", "We encountered an unspecified JSON parsing error.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid Resource", NOT_VALID, errors=[{"field": "", "message": "Schema describes object"}])
    return body


def record(ctx: Ctx, kind: str, key: str, payload: dict[str, Any]) -> None:
    ctx.state.destinations.record(VENDOR, kind, key, payload)


def _rejected(ctx: Ctx, email: str) -> bool:
    """The sandbox's per-record rejection fault (`rate_reject`) for one member of a batch write;
    the member is reported in the batch's `errors` and left unchanged."""
    return ctx.state.faults.reject_record(VENDOR, "member", email.strip().lower())


def _path_hash(request: Request) -> str:
    key = request.path_params["subscriber_hash"]
    return subscriber_hash(key) if "@" in key else key.lower()


# --------------------------------------------------------------------------------------------
# Members
# --------------------------------------------------------------------------------------------


def member_put(ctx: Ctx, request: Request) -> Response:
    """Add or update: `status_if_new` applies only to a new member, `status` to an existing one."""
    aud = audience(ctx, request.path_params["list_id"])
    body = read_body(request)
    email = body.get("email_address")
    if isinstance(email, str) and email.strip() and subscriber_hash(email.strip()) != _path_hash(request):
        raise ApiError(
            400,
            "Invalid Resource",
            NOT_VALID,
            errors=[{"field": "email_address", "message": "The email address does not match the subscriber hash."}],
        )
    with WRITE_LOCK:
        member, _ = aud.write_member(email, body, create=True, update=True, status_key="status_if_new")
    record(ctx, "member_put", f"{aud.list_id}:{member.id}", body)
    return respond(request, member_json(ctx, member))


def member_patch(ctx: Ctx, request: Request) -> Response:
    aud, member = find_member(ctx, request)
    body = read_body(request)
    email = body.get("email_address") or member.email_address
    if subscriber_hash(str(email)) != member.id:
        # Changing a member's address moves it to another subscriber hash; not modelled.
        raise ApiError(
            400,
            "Invalid Resource",
            NOT_VALID,
            errors=[{"field": "email_address", "message": "The sandbox cannot change a member's address."}],
        )
    with WRITE_LOCK:
        updated, _ = aud.write_member(member.email_address, body, create=False, update=True)
    record(ctx, "member_patch", f"{aud.list_id}:{member.id}", body)
    return respond(request, member_json(ctx, updated))


def members_post(ctx: Ctx, request: Request) -> Response:
    aud = audience(ctx, request.path_params["list_id"])
    body = read_body(request)
    with WRITE_LOCK:
        member, _ = aud.write_member(body.get("email_address"), body, create=True, update=False)
    record(ctx, "member_post", f"{aud.list_id}:{member.id}", body)
    return respond(request, member_json(ctx, member))


def member_delete(ctx: Ctx, request: Request) -> Response:
    """DELETE archives the contact (it can be added back later)."""
    aud, member = find_member(ctx, request)
    with WRITE_LOCK:
        aud.archive(member.id)
    record(ctx, "member_archive", f"{aud.list_id}:{member.id}", {"email_address": member.email_address})
    return Response(status_code=204)


def member_delete_permanent(ctx: Ctx, request: Request) -> Response:
    """Erases the contact; the address can then not be re-imported through the API."""
    aud, member = find_member(ctx, request)
    with WRITE_LOCK:
        aud.delete_permanently(member.id)
    record(ctx, "member_delete_permanent", f"{aud.list_id}:{member.id}", {"email_address": member.email_address})
    return Response(status_code=204)


def member_tags_post(ctx: Ctx, request: Request) -> Response:
    """`{"tags": [{"name": ..., "status": "active" | "inactive"}]}` -> 204 No Content. Like
    Mailchimp, a body without `tags` is accepted and changes nothing."""
    aud, member = find_member(ctx, request)
    body = read_body(request)
    tags = body.get("tags") or []
    changes: list[tuple[str, bool]] = []
    for i, tag in enumerate(tags if isinstance(tags, list) else [None]):
        name = tag.get("name") if isinstance(tag, dict) else None
        status = tag.get("status") if isinstance(tag, dict) else None
        if not isinstance(name, str) or not name.strip() or len(name) > 100 or status not in ("active", "inactive"):
            raise ApiError(
                400,
                "Invalid Resource",
                NOT_VALID,
                errors=[
                    {
                        "field": f"tags.item:{i}",
                        "message": "Each tag needs a name and a status of active or inactive.",
                    }
                ],
            )
        changes.append((name.strip(), status == "active"))
    if changes:
        with WRITE_LOCK:
            aud.set_tags(member, changes)
    record(ctx, "member_tags", f"{aud.list_id}:{member.id}", body)
    return Response(status_code=204)


def list_batch(ctx: Ctx, request: Request) -> Response:
    """Batch subscribe or unsubscribe: up to 500 members; refusals are reported per member in
    `errors` (error_code ERROR_CONTACT_EXISTS or ERROR_GENERIC) with HTTP 200."""
    aud = audience(ctx, request.path_params["list_id"])
    body = read_body(request)
    entries = body.get("members")
    if not isinstance(entries, list) or len(entries) > BATCH_MAX:
        raise ApiError(
            400,
            "Invalid Resource",
            NOT_VALID,
            errors=[{"field": "members", "message": f"Provide an array of at most {BATCH_MAX} members."}],
        )
    update_existing = bool(body.get("update_existing", False))
    new: list[Member] = []
    updated: list[Member] = []
    errors: list[dict[str, str]] = []
    with WRITE_LOCK:
        for entry in entries:
            entry = entry if isinstance(entry, dict) else {}
            email = entry.get("email_address")
            if isinstance(email, str) and _rejected(ctx, email):
                errors.append(
                    {
                        "email_address": email,
                        "error": REJECTED_ERROR,
                        "error_code": "ERROR_GENERIC",
                        "field": "",
                        "field_message": "",
                    }
                )
                continue
            try:
                member, created = aud.write_member(email, entry, create=True, update=update_existing)
            except ApiError as exc:
                field = exc.errors[0] if exc.errors else {}
                errors.append(
                    {
                        "email_address": email if isinstance(email, str) else "",
                        "error": exc.detail if not exc.errors else f"{exc.title}: {field.get('message', '')}",
                        "error_code": "ERROR_CONTACT_EXISTS" if exc.title == "Member Exists" else "ERROR_GENERIC",
                        "field": field.get("field", ""),
                        "field_message": field.get("message", ""),
                    }
                )
                continue
            (new if created else updated).append(member)
    record(ctx, "list_batch", aud.list_id, body)
    return respond(
        request,
        {
            "new_members": [member_json(ctx, m) for m in new],
            "updated_members": [member_json(ctx, m) for m in updated],
            "errors": errors,
            "total_created": len(new),
            "total_updated": len(updated),
            "error_count": len(errors),
            "_links": [ctx.link("self", f"/lists/{aud.list_id}"), ctx.link("parent", "/lists")],
        },
    )


# --------------------------------------------------------------------------------------------
# Static segments (tags)
# --------------------------------------------------------------------------------------------


def _emails(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key) or []
    if not isinstance(value, list) or len(value) > BATCH_MAX or not all(isinstance(e, str) for e in value):
        raise ApiError(
            400,
            "Invalid Resource",
            NOT_VALID,
            errors=[{"field": key, "message": f"Provide an array of at most {BATCH_MAX} email addresses."}],
        )
    return value


def segments_post(ctx: Ctx, request: Request) -> Response:
    """Create a static segment (a tag); `static_segment` addresses that are not on the list are
    ignored, as documented."""
    aud = audience(ctx, request.path_params["list_id"])
    body = read_body(request)
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ApiError(
            400,
            "Invalid Resource",
            NOT_VALID,
            errors=[{"field": "name", "message": "This value should not be blank."}],
        )
    if "options" in body:
        raise ApiError(
            400,
            "Invalid Resource",
            "The sandbox serves static segments (tags) only; saved segments with conditions are not modelled.",
        )
    name = name.strip()
    emails = _emails(body, "static_segment")
    with WRITE_LOCK:
        if name in aud.tag_names():
            raise ApiError(400, "Invalid Resource", "Sorry, you've already used that name.")
        aud.ensure_tag(name)
        by_hash = {m.id: m for m in aud.members()}
        for email in emails:
            member = by_hash.get(subscriber_hash(email.strip()))
            if member is not None:
                aud.set_tags(member, [(name, True)])
    record(ctx, "segment_create", f"{aud.list_id}:{tag_id(aud.list_id, name)}", body)
    created = aud.tag_names()[name]
    return respond(request, segment_json(ctx, aud, name, created, Audience(ctx.state, aud.list_id).members()))


def segment_batch(ctx: Ctx, request: Request) -> Response:
    """Batch add/remove members of a static segment: `members_to_add` / `members_to_remove`,
    up to 500 addresses each; addresses that are not on the list come back in `errors`."""
    aud = audience(ctx, request.path_params["list_id"])
    segment_id = request.path_params["segment_id"]
    name, _ = find_segment(aud, segment_id)
    body = read_body(request)
    to_add, to_remove = _emails(body, "members_to_add"), _emails(body, "members_to_remove")
    added: list[str] = []
    removed: list[str] = []
    missing: list[str] = []
    rejected: list[str] = []
    with WRITE_LOCK:
        # Member by member, as the single-member calls read them: the whole list would be
        # composed again with every overlay after each batch's writes (a first push at 1M
        # writes hundreds of thousands).
        for emails, active, done in ((to_add, True, added), (to_remove, False, removed)):
            for email in emails:
                member = aud.member(subscriber_hash(email.strip()))
                if _rejected(ctx, email):
                    rejected.append(email)
                elif member is None:
                    missing.append(email)
                elif (name in member.tags) != active:
                    aud.set_tags(member, [(name, active)])
                    done.append(member.id)
    record(ctx, "segment_members", f"{aud.list_id}:{segment_id}", body)
    fresh = {h: aud.member(h) for h in added + removed}
    errors = [{"email_addresses": missing, "error": "Email addresses are not members of this list."}] if missing else []
    if rejected:
        errors.append({"email_addresses": rejected, "error": REJECTED_ERROR})
    return respond(
        request,
        {
            "members_added": [member_json(ctx, fresh[h]) for h in added],
            "members_removed": [member_json(ctx, fresh[h]) for h in removed],
            "errors": errors,
            "total_added": len(added),
            "total_removed": len(removed),
            "error_count": len(missing) + len(rejected),
            "_links": [ctx.link("self", f"/lists/{aud.list_id}/segments/{segment_id}")],
        },
    )
