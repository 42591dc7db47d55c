"""The shared loader plumbing: retries, clear failures, redaction, pacing and quarantine."""

from __future__ import annotations

import json
import socket
import threading
import traceback

import pytest
import requests

from ingestion.common.errors import CredentialRejected, RequestFailed, RequestNotSent, VendorUnreachable, redact_url
from ingestion.common.http import RetryPolicy, VendorSession, retry_after_seconds
from ingestion.common.pacing import ShopifyBucketPacer, UsagePercentPacer
from ingestion.common.quarantine import RecordRules, check
from ingestion.common.redaction import redact


def _hubspot(sandbox, sleeps: list[float], attempts: int = 8) -> tuple[VendorSession, str]:
    token = json.loads((sandbox.world / "world.json").read_text())["credentials"]["hubspot"]["access_token"]
    session = VendorSession(
        "hubspot", "access_token", RetryPolicy(max_attempts=attempts, backoff_base=0.01), sleep=sleeps.append
    )
    session.headers["Authorization"] = f"Bearer {token}"
    return session, f"{sandbox.url}/hubspot/crm/v3/objects/contacts"


def test_retries_429_and_500_honouring_retry_after(sandbox):
    sandbox.set_faults(rate_429=0.3, rate_500=0.2, retry_after_seconds=2, seed=5)
    sleeps: list[float] = []
    session, url = _hubspot(sandbox, sleeps)
    for _ in range(20):
        assert session.get(url, params={"limit": 5}).status_code == 200
    assert session.retries > 0
    assert 2.0 in sleeps, "a 429's Retry-After was not honoured"


def test_gives_up_after_the_allowed_attempts(sandbox):
    sandbox.set_faults(rate_500=1.0)
    session, url = _hubspot(sandbox, [], attempts=3)
    with pytest.raises(RequestFailed, match="HTTP 500 after 3 attempt"):
        session.get(url)


def test_wrong_credential_fails_at_once_naming_the_setting(sandbox):
    sleeps: list[float] = []
    session, url = _hubspot(sandbox, sleeps)
    session.headers["Authorization"] = "Bearer pat-wrong"
    with pytest.raises(CredentialRejected, match="SOURCES__HUBSPOT__ACCESS_TOKEN"):
        session.get(url)
    assert sleeps == []


def test_wrong_base_url_fails_at_once_naming_the_setting():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    sleeps: list[float] = []
    session = VendorSession("shopify", "access_token", sleep=sleeps.append)
    with pytest.raises(VendorUnreachable, match="SOURCES__SHOPIFY__BASE_URL"):
        session.get(f"http://127.0.0.1:{port}/shopify/admin/api/2025-01/orders.json")
    assert sleeps == []


def _server_cutting_off_first_answers(cut: int) -> tuple[str, list[int]]:
    """A vendor on a real socket whose first `cut` answers stop 10 bytes into a 100-byte body."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    served: list[int] = []

    def serve() -> None:
        while True:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                served.append(1)
                body = b'{"results": []}'
                if len(served) <= cut:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + body[:10])
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}/crm/v3/objects/contacts", served


def test_a_body_cut_off_midway_is_retried_and_then_fails_clearly():
    policy = RetryPolicy(max_attempts=3, backoff_base=0.01)
    url, served = _server_cutting_off_first_answers(cut=1)
    session = VendorSession("hubspot", "access_token", policy, sleep=lambda s: None)
    assert session.get(url).json() == {"results": []}
    assert (len(served), session.retries) == (2, 1)
    url, served = _server_cutting_off_first_answers(cut=3)
    session = VendorSession("hubspot", "access_token", policy, sleep=lambda s: None)
    with pytest.raises(RequestFailed, match="after 3 attempt"):
        session.get(url)


def test_a_key_requests_refuses_in_a_header_fails_naming_the_setting_not_the_key():
    # requests refuses a header ending in "\r" (a key from a CRLF env file) before sending, and
    # its own error quotes the header's value whole.
    sleeps: list[float] = []
    session = VendorSession("klaviyo", "api_key", sleep=sleeps.append)
    session.headers["Authorization"] = "Klaviyo-API-Key pk_0123456789abcdefSECRET\r"
    with pytest.raises(RequestNotSent, match="SOURCES__KLAVIYO__API_KEY") as raised:
        session.get("http://127.0.0.1:9/api/profiles")
    told = "".join(traceback.format_exception(raised.value))
    assert "SECRET" not in told and "pk_0123" not in told
    assert raised.value.__context__ is None and sleeps == []


def test_any_other_error_of_requests_in_send_becomes_the_projects_own_without_its_text():
    # requests' InvalidSchema quotes the URL whole, token included.
    session = VendorSession("instagram", "access_token", sleep=lambda s: None)
    request = requests.Request("GET", "ftp://graph.test/v21.0/me?access_token=IGQVsecret").prepare()
    with pytest.raises(RequestNotSent, match="InvalidSchema") as raised:
        session.send(request)
    assert "IGQVsecret" not in "".join(traceback.format_exception(raised.value))


def test_secrets_never_appear_in_messages():
    url = "https://graph.facebook.com/v21.0/123/media?fields=id&access_token=IGQVsecret&limit=5"
    assert "IGQVsecret" not in redact_url(url)
    err = CredentialRejected("instagram", url, 400, "access_token")
    assert "IGQVsecret" not in str(err)


def test_redaction_covers_the_vendor_credential_shapes():
    text = (
        "GET https://user:hunter22@host/x?token=abc123&page=2 Authorization: Klaviyo-API-Key pk_abcdefghij0123 "
        'mailchimp 0123456789abcdef0123456789abcdef-us21 {"access_token": "shpat_0123456789abcdef0123"}'
    )
    # Meta and Instagram tokens, as a secrets file holds them (not in the environment).
    meta = (
        "EAAGm0PX4ZCpsBAKz1b2C3d4E5f6G7h8",
        "IGQVJXa1b2_C3d4-E5f6G7h8I9j0KlMnOpQrStUv",
        "IGAAR1b2C3d4E5f6G7h8I9j0KlMn",
    )
    text += " instagram: " + ", ".join(meta)
    cleaned = redact(text, env={})
    secrets = ("hunter22", "abc123", "pk_abcdefghij0123", "0123456789abcdef0123456789abcdef-us21", "shpat_")
    for secret in secrets + meta + ("C3d4", "KlMn"):
        assert secret not in cleaned, secret
    assert "page=2" in cleaned and "instagram: " in cleaned


def test_retry_after_forms():
    def resp(value):
        r = requests.Response()
        r.headers["Retry-After"] = value
        return r

    assert retry_after_seconds(resp("2.0")) == 2.0
    assert retry_after_seconds(resp("3")) == 3.0
    assert retry_after_seconds(resp("Wed, 21 Oct 2015 07:28:00 GMT")) == 0.0


def test_pacers_slow_down_before_the_vendor_says_429():
    r = requests.Response()
    r.headers["X-Shopify-Shop-Api-Call-Limit"] = "39/40"
    assert ShopifyBucketPacer().wait_after(r) == pytest.approx(1.5)
    r.headers["X-Shopify-Shop-Api-Call-Limit"] = "10/40"
    assert ShopifyBucketPacer().wait_after(r) == 0
    r.headers["X-Shopify-Shop-Api-Call-Limit"] = "0/0"  # no bucket, not a full one
    assert ShopifyBucketPacer().wait_after(r) == 0
    r = requests.Response()
    r.headers["X-App-Usage"] = json.dumps({"call_count": 95, "total_cputime": 1, "total_time": 1})
    assert UsagePercentPacer(pause=30).wait_after(r) == 30


def test_quarantine_rules():
    rules = RecordRules(primary_key=("id",), timestamps=("updated_at",), numbers=("qty",))
    good = {"id": 1, "updated_at": "2026-01-01T00:00:00Z", "qty": "3"}
    assert check(good, rules) is None and good["qty"] == 3  # a retyped number is coerced back
    assert check({"id": None}, rules) == "missing primary key id"
    assert "unparseable timestamp" in check({"id": 1, "updated_at": "not-a-timestamp"}, rules)
    assert "non-numeric" in check({"id": 1, "qty": "three"}, rules)
    assert "not a JSON object" in check("{truncated", rules)


def test_dlt_rest_client_gets_the_retries_too(sandbox):
    """dlt's RESTClient calls send() on the session directly; retries must happen there."""
    from dlt.sources.helpers.rest_client import RESTClient

    sandbox.set_faults(rate_500=0.5, seed=3)
    sleeps: list[float] = []
    session, url = _hubspot(sandbox, sleeps)
    client = RESTClient(base_url=url.rsplit("/crm", 1)[0], session=session)
    for _ in range(10):
        assert client.get("/crm/v3/objects/contacts", params={"limit": 2}).status_code == 200
    assert session.retries > 0


def test_split_keeps_pages_whole():
    from ingestion.common.quarantine import split

    good, bad = split([{"id": 1}, {"id": None}, {"id": 2}], "things", RecordRules(primary_key=("id",)))
    assert [r["id"] for r in good] == [1, 2]
    assert len(bad) == 1
