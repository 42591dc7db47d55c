"""What Tessera reads from HubSpot: the properties its models use, and the page size."""

PAGE_SIZE = 100  # the CRM v3 list endpoints' maximum

CONTACT_PROPERTIES = (
    "email",
    "firstname",
    "lastname",
    "phone",
    "city",
    "state",
    "country",
    "zip",
    "lifecyclestage",
    "membership_tier",
    "hs_email_optout",
    "createdate",
    "lastmodifieddate",
)
COMPANY_PROPERTIES = ("name", "domain", "industry", "city", "createdate", "hs_lastmodifieddate")
