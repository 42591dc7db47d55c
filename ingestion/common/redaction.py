"""Text Tessera stores or publishes (the warehouse, Dagster's event log and metadata, alerts)
with no credential in it.

An error raised deep in a vendor call can quote a request's headers or URL (`requests` quotes a
header it refuses whole, Authorization included), so every error text is redacted here before it
leaves the process that raised it. Lives beside the loaders' errors so the activation code, the
loaders and the orchestration share one list of credential shapes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

REDACTED = "***"

# Environment variables whose values are credentials: their values are cut out of any text sent.
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|WEBHOOK|AUTH|USERNAME", re.IGNORECASE)
# Credential shapes that may reach an error message without being in this process's environment:
# HTTP auth headers, key=value pairs in URLs or messages, URL user info, and the vendors' key formats.
_SECRET_PATTERNS = [
    (re.compile(r"(?i)\b(bearer|basic|klaviyo-api-key)\s+[\w.~+/=-]+"), rf"\1 {REDACTED}"),
    (
        re.compile(
            r"(?i)\b(api[_-]?key|apikey|access[_-]?token|token|secret|password|client[_-]?secret)"
            r"(\"?'?\s*[=:]\s*\"?'?)[^\s&\"',;}]+"
        ),
        rf"\1\2{REDACTED}",
    ),
    (re.compile(r"(?i)(://)[^/\s:@]+:[^/\s@]+@"), rf"\1{REDACTED}@"),
    (re.compile(r"\b[0-9a-f]{32}-us\d{1,2}\b"), REDACTED),  # Mailchimp API key
    (re.compile(r"\bpk_[A-Za-z0-9]{10,}\b"), REDACTED),  # Klaviyo private key
    (re.compile(r"\bpat-[a-z0-9]{2,4}-[0-9a-f-]{20,}\b"), REDACTED),  # HubSpot private app token
    # Meta access tokens (EAA...) and Instagram's (IGQV..., IGAA...), which may hold _ and -.
    (re.compile(r"\b(EAA|IG[A-Z]{2})[A-Za-z0-9_-]{20,}"), REDACTED),
    (re.compile(r"\bshpat_[0-9a-fA-F]{20,}\b"), REDACTED),  # Shopify Admin API token
]


def redact(text: str, env: Mapping[str, str] | None = None) -> str:
    """`text` with every credential it may carry replaced by `***`: the values of secret-named
    environment variables, auth headers, `key=value` credentials and the vendors' key formats."""
    env = os.environ if env is None else env
    # Longest first, so a secret containing another is cut out whole.
    values = sorted({v for k, v in env.items() if _SECRET_NAME.search(k) and len(v) >= 4}, key=len, reverse=True)
    for value in values:
        text = text.replace(value, REDACTED)
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text
