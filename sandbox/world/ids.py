"""Vendor-shaped identifiers drawn from a seeded random generator (so worlds are reproducible)."""

from __future__ import annotations

import random

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_ALNUM = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"


class Ids:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def uuid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def hex(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def klaviyo_id(self) -> str:
        """Klaviyo ids are 26-character ULIDs (Crockford base32)."""
        bits = self.rng.getrandbits(120)
        return "01" + "".join(_CROCKFORD[(bits >> (5 * i)) & 31] for i in range(24))

    def klaviyo_list_id(self) -> str:
        return "".join(self.rng.choice(_ALNUM) for _ in range(6))

    def instagram_id(self) -> str:
        return str(self.rng.randint(17_840_000_000_000_000, 17_999_999_999_999_999))


def ids_for(rng: random.Random) -> Ids:
    return Ids(rng)
