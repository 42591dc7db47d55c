"""Settings that point Tessera's loaders and pushes at a running sandbox.

The same variables point them at the real vendors (see the README's table): only the values
differ. Base URLs are the sandbox's `/<vendor>` prefix in place of the vendor's host. The
logical time is the world's clock when these are computed: compute them again after advancing it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo


def sandbox_env(base_url: str, world: Path) -> dict[str, str]:
    meta = json.loads((Path(world) / "world.json").read_text())
    c = meta["credentials"]
    base = base_url.rstrip("/")
    clock = meta["clock"]
    env = {
        # The run's logical time is the world's clock, weeks behind the wall clock: time rules
        # in the marts and the last day the Mixpanel export is asked for.
        "TESSERA_NOW": clock,
        "SOURCES__MIXPANEL__END_DATE": clock[:10],
        "SOURCES__MIXPANEL__BASE_URL": f"{base}/mixpanel",
        "SOURCES__MIXPANEL__PROJECT_ID": c["mixpanel"]["project_id"],
        "SOURCES__MIXPANEL__USERNAME": c["mixpanel"]["service_account_username"],
        "SOURCES__MIXPANEL__SECRET": c["mixpanel"]["service_account_secret"],
        "SOURCES__HUBSPOT__BASE_URL": f"{base}/hubspot",
        "SOURCES__HUBSPOT__ACCESS_TOKEN": c["hubspot"]["access_token"],
        "SOURCES__SHOPIFY__BASE_URL": f"{base}/shopify",
        "SOURCES__SHOPIFY__ACCESS_TOKEN": c["shopify"]["access_token"],
        "SOURCES__KLAVIYO__BASE_URL": f"{base}/klaviyo",
        "SOURCES__KLAVIYO__API_KEY": c["klaviyo"]["api_key"],
        "SOURCES__MAILCHIMP__BASE_URL": f"{base}/mailchimp",
        "SOURCES__MAILCHIMP__API_KEY": c["mailchimp"]["api_key"],
        # The audience whose tags the pushes keep (the loaders read every audience).
        "ACTIVATION__MAILCHIMP__LIST_ID": meta["ids"]["mailchimp_list_id"],
        "SOURCES__INSTAGRAM__BASE_URL": f"{base}/instagram",
        "SOURCES__INSTAGRAM__ACCESS_TOKEN": c["instagram"]["access_token"],
        "SOURCES__INSTAGRAM__IG_USER_ID": c["instagram"]["ig_user_id"],
        # The shop's erasure requests: no vendor API carries them, the sandbox serves its own.
        "SOURCES__PRIVACY__BASE_URL": f"{base}/_sandbox",
    }
    zone = c["mixpanel"].get("project_timezone")
    if zone:
        # A project created before 2023: its days are its own time zone's, so is its today.
        local = datetime.fromisoformat(clock.replace("Z", "+00:00")).astimezone(ZoneInfo(zone))
        env["SOURCES__MIXPANEL__PROJECT_TIMEZONE"] = zone
        env["SOURCES__MIXPANEL__END_DATE"] = local.date().isoformat()
    return env
