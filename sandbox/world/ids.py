"""Vendor-shaped identifiers drawn from a seeded random generator (so worlds are reproducible)."""

from __future__ import annotations

import base64
import random

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# base64's base32 alphabet mapped onto Crockford's, so 15 random bytes encode in C.
_TO_CROCKFORD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _CROCKFORD.encode())
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
        raw = self.rng.getrandbits(120).to_bytes(15, "big")
        return "01" + base64.b32encode(raw).translate(_TO_CROCKFORD).decode()

    def klaviyo_list_id(self) -> str:
        return "".join(self.rng.choice(_ALNUM) for _ in range(6))

    def instagram_id(self) -> str:
        return str(self.rng.randint(17_840_000_000_000_000, 17_999_999_999_999_999))


def ids_for(rng: random.Random) -> Ids:
    return Ids(rng)
