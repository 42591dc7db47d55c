"""HubSpot CRM v3 source: contacts and companies, merged on HubSpot's object id.

Declarative `rest_api` config: HubSpot's list endpoints are plain cursor-paged REST
(`paging.next.after`), so no hand-written paging code is needed.
"""

from __future__ import annotations

import dlt
from dlt.sources import DltSource
from dlt.sources.rest_api import rest_api_source

from ingestion.hubspot.settings import COMPANY_PROPERTIES, CONTACT_PROPERTIES, PAGE_SIZE


@dlt.source(name="hubspot", max_table_nesting=1)
def hubspot_source(base_url: str = dlt.config.value, access_token: str = dlt.secrets.value) -> DltSource:
    """Objects from HubSpot's CRM v3 API at `base_url` (https://api.hubapi.com for the real service).

    Configure with `SOURCES__HUBSPOT__BASE_URL` and `SOURCES__HUBSPOT__ACCESS_TOKEN` (a private
    app token), or the same keys in `.dlt/config.toml` / `.dlt/secrets.toml`.
    """

    def objects(name: str, properties: tuple[str, ...]) -> dict:
        return {
            "name": name,
            "primary_key": "id",
            "write_disposition": "merge",
            "endpoint": {
                "path": f"crm/v3/objects/{name}",
                "params": {"limit": PAGE_SIZE, "properties": ",".join(properties), "archived": "false"},
                "data_selector": "results",
                "paginator": {"type": "cursor", "cursor_path": "paging.next.after", "cursor_param": "after"},
            },
        }

    return rest_api_source(
        {
            "client": {"base_url": base_url.rstrip("/") + "/", "auth": {"type": "bearer", "token": access_token}},
            "resources": [objects("contacts", CONTACT_PROPERTIES), objects("companies", COMPANY_PROPERTIES)],
        },
        name="hubspot",
    )
