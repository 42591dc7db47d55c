"""Step retries for the assets whose failures are often passing: the vendor APIs.

A load or a push fails on a vendor outage, a dropped connection or a rate limit that outlasts the
HTTP client's own retries; a few minutes later the same step usually succeeds, and both are safe
to run again (loads merge on primary keys and keep their cursors until a load commits; pushes
diff against the ledger, so what was delivered is not sent twice). dbt gets no retry: a failing
model or test fails the same way on the same data.
"""

import dagster as dg

# Waits of about 30 s, then 90 s (exponential: 1x, 3x the delay), each moved by up to +-30 s so
# that steps failing together do not hit the vendor again at the same instant.
VENDOR_CALL_RETRY = dg.RetryPolicy(
    max_retries=2,
    delay=30,
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)
