"""Errors a loader raises, each saying what failed and which setting to fix.

Messages never carry a credential: URLs are redacted (some vendors take the token as a query
parameter) and headers are never included.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that carry a secret in some vendor's API (Instagram's access_token, ...).
SECRET_PARAMS = frozenset({"access_token", "api_key", "apikey", "token", "key", "secret", "client_secret"})


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [(k, "***" if k.lower() in SECRET_PARAMS else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query, safe="*,[]():")))


def setting(vendor: str, key: str) -> str:
    """The environment variable dlt reads for a source setting."""
    return f"SOURCES__{vendor.upper()}__{key.upper()}"


class VendorError(RuntimeError):
    """A vendor API call failed in a way a retry did not or cannot fix."""

    def __init__(self, vendor: str, message: str) -> None:
        self.vendor = vendor
        super().__init__(f"{vendor}: {message}")


class VendorUnreachable(VendorError):
    """Nothing answered at the base URL: a wrong URL or a server that is down."""

    def __init__(self, vendor: str, url: str, reason: str) -> None:
        super().__init__(
            vendor,
            f"could not reach {redact_url(url)} ({reason}). Check {setting(vendor, 'base_url')} "
            "(for the sandbox: is `python -m sandbox serve` running?)",
        )


class CredentialRejected(VendorError):
    """The vendor refused the credential (401/403)."""

    def __init__(self, vendor: str, url: str, status: int, credential_key: str) -> None:
        self.status = status
        super().__init__(
            vendor,
            f"{status} from {redact_url(url)}: the vendor rejected the credential. "
            f"Set a valid {setting(vendor, credential_key)}",
        )


class RequestFailed(VendorError):
    """The vendor kept failing (or refused the request) after the allowed attempts."""

    def __init__(self, vendor: str, method: str, url: str, status: int | None, attempts: int, detail: str) -> None:
        self.status = status
        self.attempts = attempts
        what = f"HTTP {status}" if status is not None else "no response"
        super().__init__(
            vendor, f"{method} {redact_url(url)} failed with {what} after {attempts} attempt(s): {detail[:300]}"
        )


class RequestNotSent(VendorError):
    """requests gave up on the request before an answer could be read: a header or URL it
    refuses to send, too many redirects. Its own message is left out: it quotes the refused
    header or URL whole, the Authorization header and its key included."""

    def __init__(self, vendor: str, method: str, url: str, reason: str) -> None:
        super().__init__(vendor, f"{method} {redact_url(url)} was not completed: {reason}")
