"""Holdout groups: a deterministic share of each audience that is never sent, to measure lift.

A customer's group in an audience is a pure function of (audience, customer_id): the same
person is held out of the same audience every night, across reruns and machines, with no state
to lose. Entries are recorded in `activation.audience_assignments` (treated and held out
alike, intention to treat) for the holdout mart.
"""

from __future__ import annotations

import hashlib


def holdout_unit(audience: str, customer_id: str) -> float:
    """A number in [0, 1) fixed by the audience and the customer."""
    digest = hashlib.sha256(f"tessera-holdout|{audience}|{customer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_held_out(audience: str, customer_id: str, share: float) -> bool:
    return holdout_unit(audience, customer_id) < share
