"""The merge fields a list has (Mailchimp's defaults and those added through the API), and the
check Mailchimp applies to the values a member write sends for them."""

from __future__ import annotations

from typing import Any

from sandbox.server.state import SandboxState
from sandbox.server.vendors.mailchimp.common import VENDOR, ApiError

#: Mailchimp's merge field types.
TYPES = ("text", "number", "address", "phone", "date", "url", "imageurl", "radio", "dropdown", "birthday", "zip")

#: Every audience starts with these (merge ids 1-4, the fields the generated members carry).
DEFAULTS: tuple[dict[str, Any], ...] = (
    {"merge_id": 1, "tag": "FNAME", "name": "First Name", "type": "text", "options": {"size": 25}},
    {"merge_id": 2, "tag": "LNAME", "name": "Last Name", "type": "text", "options": {"size": 25}},
    {"merge_id": 3, "tag": "ADDRESS", "name": "Address", "type": "address", "options": {"default_country": 164}},
    {"merge_id": 4, "tag": "PHONE", "name": "Phone Number", "type": "phone", "options": {"phone_format": "none"}},
)


def list_merge_fields(state: SandboxState, list_id: str) -> list[dict[str, Any]]:
    """The list's merge fields in merge-id order: the defaults, then those the API created
    (destination objects of kind "merge_field", keyed "<list_id>:<merge_id>")."""
    created = [o.payload for o in state.destinations.list_objects(VENDOR, "merge_field", key_prefix=f"{list_id}:")]
    return [*DEFAULTS, *sorted(created, key=lambda f: f["merge_id"])]


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return True
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def check_merge_values(state: SandboxState, list_id: str, values: dict[str, Any]) -> None:
    """Raise Mailchimp's 400 when a value does not fit its field: a number field takes a number
    (or "" to clear it). Other types are stored as given (see the docs' departures)."""
    numbers = {f["tag"] for f in list_merge_fields(state, list_id) if f["type"] == "number"}
    errors = [
        {"field": tag, "message": "Please enter a number"}
        for tag, value in values.items()
        if tag in numbers and value not in ("", None) and not _is_number(value)
    ]
    if errors:
        raise ApiError(400, "Invalid Resource", "Your merge fields were invalid.", errors=errors)
