"""The audiences the warehouse asks to push: every dbt model whose `meta.activation` says so.

An analyst adds an audience by adding one SQL model with an activation block (see
`dbt_project/models/marts/segments/README.md`); this module reads those blocks from dbt's
manifest, so the sync engine and the Dagster assets never keep a list of their own.

    activation:
      destinations: [klaviyo, mailchimp]   # where to push
      klaviyo_list: "VIP customers"        # the Klaviyo list kept in sync
      mailchimp_tag: vip                   # the tag on the Mailchimp audience
      properties: [first_name, orders]     # columns pushed as profile properties / merge fields
      event: Abandoned Checkout            # optional: a Klaviyo event per member, once per event_id
      event_id: checkout_token             # the column whose value identifies that event
      holdout_share: 0.1                   # optional: the share held back (default 0.1)
      guard_max_change_share: 0.5          # optional: see activation.sync.engine.guard_limit
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from activation.destinations.base import Audience

DESTINATIONS = ("klaviyo", "mailchimp")
DEFAULT_HOLDOUT_SHARE = 0.10
DEFAULT_GUARD_MAX_CHANGE_SHARE = 0.5
DEFAULT_GUARD_MIN_CHANGES = 100


class AudienceConfigError(ValueError):
    """A model's activation block that cannot be pushed as written."""


@dataclass(frozen=True)
class AudienceConfig:
    """One audience: what to push (the model's rows) and how (its activation block)."""

    audience: Audience
    schema: str  # where dbt built the model in the warehouse
    table: str
    destinations: tuple[str, ...]
    event_id_column: str | None = None
    holdout_share: float = DEFAULT_HOLDOUT_SHARE
    guard_max_change_share: float = DEFAULT_GUARD_MAX_CHANGE_SHARE
    guard_min_changes: int = DEFAULT_GUARD_MIN_CHANGES
    description: str = ""

    @property
    def name(self) -> str:
        return self.audience.name

    @property
    def relation(self) -> str:
        return f'"{self.schema}"."{self.table}"'


def _share(block: dict[str, Any], key: str, default: float, model: str) -> float:
    value = float(block.get(key, default))
    if not 0.0 <= value <= 1.0:
        raise AudienceConfigError(f"{model}: meta.activation.{key} must be between 0 and 1, got {value}")
    return value


def audience_from_node(node: dict[str, Any]) -> AudienceConfig | None:
    """The audience a manifest model node defines, or None when it has no activation block."""
    block = (node.get("config", {}).get("meta") or {}).get("activation")
    if not block:
        return None
    model = node["name"]
    destinations = tuple(block.get("destinations") or ())
    unknown = set(destinations) - set(DESTINATIONS)
    if not destinations or unknown:
        raise AudienceConfigError(
            f"{model}: meta.activation.destinations must list some of {list(DESTINATIONS)}, got {list(destinations)}"
        )
    if "klaviyo" in destinations and not block.get("klaviyo_list"):
        raise AudienceConfigError(f"{model}: pushes to klaviyo but has no meta.activation.klaviyo_list")
    if "mailchimp" in destinations and not block.get("mailchimp_tag"):
        raise AudienceConfigError(f"{model}: pushes to mailchimp but has no meta.activation.mailchimp_tag")
    columns = set(node.get("columns") or {})
    properties = tuple(block.get("properties") or ())
    event_id = block.get("event_id")
    missing = [c for c in (*properties, *([event_id] if event_id else [])) if columns and c not in columns]
    if missing:
        raise AudienceConfigError(f"{model}: meta.activation names columns the model does not document: {missing}")
    if bool(block.get("event")) != bool(event_id):
        raise AudienceConfigError(f"{model}: meta.activation needs both `event` and `event_id`, or neither")
    return AudienceConfig(
        audience=Audience(
            name=model,
            klaviyo_list=block.get("klaviyo_list") if "klaviyo" in destinations else None,
            mailchimp_tag=block.get("mailchimp_tag") if "mailchimp" in destinations else None,
            properties=properties,
            event=block.get("event"),
        ),
        schema=node["schema"],
        table=node.get("alias") or model,
        destinations=destinations,
        event_id_column=event_id,
        holdout_share=_share(block, "holdout_share", DEFAULT_HOLDOUT_SHARE, model),
        guard_max_change_share=_share(block, "guard_max_change_share", DEFAULT_GUARD_MAX_CHANGE_SHARE, model),
        guard_min_changes=int(block.get("guard_min_changes", DEFAULT_GUARD_MIN_CHANGES)),
        description=(node.get("description") or "").strip(),
    )


def load_audiences(manifest_path: Path) -> list[AudienceConfig]:
    """Every audience in the dbt manifest, sorted by name."""
    manifest = json.loads(Path(manifest_path).read_text())
    audiences = []
    for node in manifest["nodes"].values():
        if node.get("resource_type") == "model":
            config = audience_from_node(node)
            if config is not None:
                audiences.append(config)
    return sorted(audiences, key=lambda a: a.name)
