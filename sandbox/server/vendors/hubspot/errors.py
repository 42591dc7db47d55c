"""HubSpot's response and error shapes.

Every HubSpot response carries an `X-HubSpot-Correlation-Id` header; error bodies repeat it
as `correlationId` next to `status: "error"`, a `message` and (except for rate limits) a
`category`. Rate-limit refusals use their own shape with `errorType: "RATE_LIMIT"` and the
`policyName` of the exhausted limit.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from starlette.responses import JSONResponse, Response

AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
    "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
#: HubSpot's generic 400 message, also what paging a search past 10,000 results answers.
BAD_REQUEST_MESSAGE = "There was a problem with the request."

Policy = Literal["SECONDLY", "TEN_SECONDLY_ROLLING"]
_POLICY_MESSAGES: dict[Policy, str] = {
    "SECONDLY": "You have reached your secondly limit.",  # the search endpoints' own limit
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
}


def hubspot_json(body: dict[str, Any], status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response with HubSpot's correlation-id header (the body's, for errors)."""
    correlation = str(body.get("correlationId") or uuid.uuid4())
    return JSONResponse(body, status_code=status, headers={**(headers or {}), "X-HubSpot-Correlation-Id": correlation})


def error(
    status: int,
    message: str,
    category: str | None,
    *,
    context: dict[str, list[str]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {"status": "error", "message": message, "correlationId": str(uuid.uuid4())}
    if context is not None:
        body["context"] = context
    if category is not None:
        body["category"] = category
    return hubspot_json(body, status, headers)


def unauthorized() -> Response:
    """HubSpot answers a missing, malformed or unknown token alike."""
    return error(401, AUTH_MESSAGE, "INVALID_AUTHENTICATION")


def validation_error(message: str = BAD_REQUEST_MESSAGE, headers: Mapping[str, str] | None = None) -> Response:
    return error(400, message, "VALIDATION_ERROR", headers=headers)


def not_found(object_id: str, headers: Mapping[str, str] | None = None) -> Response:
    # HubSpot's wording, double space included.
    return error(
        404,
        "Object not found.  objectId are usually numeric.",
        "OBJECT_NOT_FOUND",
        context={"id": [object_id]},
        headers=headers,
    )


def rate_limited(policy: Policy, retry_after: float | None, headers: Mapping[str, str] | None = None) -> Response:
    body = {
        "status": "error",
        "message": _POLICY_MESSAGES[policy],
        "errorType": "RATE_LIMIT",
        "correlationId": str(uuid.uuid4()),
        "policyName": policy,
    }
    extra = dict(headers or {})
    if retry_after is not None:
        extra["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return hubspot_json(body, 429, extra)


def error_response(status: int, retry_after: float | None) -> Response:
    """The sandbox's injected faults and unhandled errors in HubSpot's shape: a 429 is the
    general ten-secondly limit, a 5xx is HubSpot's bare `internal error` body."""
    if status == 429:
        return rate_limited("TEN_SECONDLY_ROLLING", retry_after)
    if status >= 500:
        body = {"status": "error", "message": "internal error", "correlationId": str(uuid.uuid4())}
        return hubspot_json(body, status)
    return error(status, BAD_REQUEST_MESSAGE, None)


def no_associations(source: str, target: str, object_id: str) -> dict[str, Any]:
    """A batch read's error entry for a record with no association of the asked type (also
    what a record that does not exist gets)."""
    return {
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
        "message": f"No {target} is associated with {source} {object_id}.",
        "context": {"fromObjectId": [object_id], "fromObjectType": [source], "toObjectType": [target]},
    }


def batch_json(
    results: list[Any], failures: list[dict[str, Any]], headers: Mapping[str, str] | None = None
) -> Response:
    """A batch answer: 200 when every input resolved, 207 (Multi-Status) with `errors` otherwise."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": now, "completedAt": now}
    if failures:
        body |= {"numErrors": len(failures), "errors": failures}
    return hubspot_json(body, 207 if failures else 200, headers)
