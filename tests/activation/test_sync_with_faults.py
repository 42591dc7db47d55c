"""The sync engine with the real destinations against a sandbox that misbehaves: 429s, 500s and
per-record rejections. Everyone eligible is delivered in the end, no rate limit is exceeded,
and what the vendors refused is in the ledger until a later run delivers it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import duckdb
import requests

from activation.audiences import AudienceConfig
from activation.destinations.base import Audience
from activation.destinations.klaviyo import KlaviyoDestination
from activation.destinations.mailchimp import MailchimpDestination
from activation.sync.run import push
from ingestion.common.http import RetryPolicy
from tests.activation.vendor_reads import klaviyo_list_members, mailchimp_tagged

NOW = datetime(2026, 11, 1, tzinfo=UTC)
FAST = RetryPolicy(max_attempts=12, backoff_base=0.05, backoff_max=1.0, timeout=30)
CONFIG = AudienceConfig(
    audience=Audience(
        name="seg_faulty",
        klaviyo_list="Faulty night",
        mailchimp_tag="faulty_night",
        properties=("first_name", "cart_value"),
    ),
    schema="marts",
    table="seg_faulty",
    destinations=("klaviyo", "mailchimp"),
    holdout_share=0.0,
)


def _subscribed_mailchimp_members(sandbox, list_id: str, api_key: str, n: int) -> list[str]:
    page = requests.get(
        f"{sandbox.vendor_url('mailchimp')}/3.0/lists/{list_id}/members",
        params={"status": "subscribed", "count": n},
        auth=("tessera", api_key),
        timeout=30,
    ).json()
    return [m["email_address"].lower() for m in page["members"]]


def test_every_eligible_member_arrives_through_faults_and_rejections(private_sandbox):
    sandbox = private_sandbox
    world = json.loads((sandbox.world / "world.json").read_text())
    creds, list_id = world["credentials"], world["ids"]["mailchimp_list_id"]
    emails = _subscribed_mailchimp_members(sandbox, list_id, creds["mailchimp"]["api_key"], 60)
    assert len(emails) >= 30
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA marts")
    conn.execute(
        """CREATE TABLE marts.dim_customers AS
           SELECT 'c' || i AS customer_id, 'known' AS identity_status, e AS email, 'subscribed' AS email_consent_status,
                  false AS is_email_bounced, false AS has_marked_email_as_spam, NULL::varchar AS unsubscribed_in
           FROM (SELECT unnest(?::varchar[]) AS e, generate_subscripts(?::varchar[], 1) AS i)""",
        [emails, emails],
    )
    conn.execute(
        "CREATE TABLE marts.seg_faulty AS SELECT customer_id, email, 'Ann' AS first_name, 42.5 AS cart_value "
        "FROM marts.dim_customers"
    )
    conn.execute(
        "CREATE TABLE marts.customer_identifiers "
        "(customer_id varchar, source varchar, id_type varchar, id_value varchar)"
    )
    klaviyo = KlaviyoDestination(sandbox.vendor_url("klaviyo"), creds["klaviyo"]["api_key"], policy=FAST)
    mailchimp = MailchimpDestination(
        f"{sandbox.vendor_url('mailchimp')}/3.0", creds["mailchimp"]["api_key"], list_id, policy=FAST
    )
    sandbox.set_faults(rate_429=0.15, rate_500=0.1, rate_reject=0.2, seed=3, retry_after_seconds=1)
    nights = []
    for night in range(10):
        result = push(conn, [CONFIG], {"klaviyo": klaviyo, "mailchimp": mailchimp}, run_id=f"n{night}", now=NOW)
        assert result.ok, result.failures
        nights.append({r.destination: r for r in result.reports})
        pending = conn.execute("SELECT count(*) FROM activation.sync_ledger WHERE state <> 'member'").fetchall()[0][0]
        if not pending:
            break
    first = nights[0]
    assert first["klaviyo"].rejected > 0 and first["mailchimp"].rejected > 0, "the fault should refuse some records"
    # Refused records were logged with the vendor's words, then delivered by a later run.
    refused = conn.execute(
        "SELECT count(*), count(error) FROM activation.sync_log WHERE run_id = 'n0' AND result = 'rejected'"
    ).fetchall()[0]
    assert refused[0] == first["klaviyo"].rejected + first["mailchimp"].rejected and refused[1] == refused[0]
    stuck = conn.execute(
        "SELECT destination, email, state, last_error, failed_runs FROM activation.sync_ledger WHERE state <> 'member'"
    ).fetchall()
    assert pending == 0 and len(nights) > 1, stuck
    counters = sandbox.control("GET", "counters").json()
    assert counters["rate_limited"] == {}, counters["rate_limited"]
    assert counters["faults"], "faults were injected"
    sandbox.control("DELETE", "faults")
    assert set(klaviyo_list_members(sandbox.vendor_url("klaviyo"), creds["klaviyo"]["api_key"], "Faulty night")) == set(
        emails
    )
    tagged = mailchimp_tagged(sandbox.vendor_url("mailchimp"), creds["mailchimp"]["api_key"], list_id, "faulty_night")
    assert set(tagged) == set(emails)
    # Idempotent: one more run has nothing to send.
    again = push(conn, [CONFIG], {"klaviyo": klaviyo, "mailchimp": mailchimp}, run_id="final", now=NOW)
    assert all(r.planned_changes == 0 for r in again.reports)
