"""World-wide entities every person shares: products, brand media, campaigns, lists, companies."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sandbox.world import vocab
from sandbox.world.ids import ids_for

DAY = 86_400.0


@dataclass(frozen=True)
class Product:
    product_id: int
    variant_id: int
    sku: str
    title: str
    category: str
    price: float
    inventory_quantity: int
    popularity: float


@dataclass(frozen=True)
class Campaign:
    platform: str  # "klaviyo" | "mailchimp"
    campaign_id: str
    web_id: int
    name: str
    subject: str
    send_time: float


@dataclass
class Shared:
    """Everything a chunk of people needs to know about the world around them."""

    seed: int
    start: float
    end: float  # the world's initial clock
    horizon: float  # last instant with generated activity
    guest_checkout_from: float  # guest checkout is off before this instant, on after
    products: list[Product]
    product_weights: list[float]
    campaigns: list[Campaign]
    media: list[tuple[str, float, str]]  # (media_id, timestamp, caption)
    klaviyo_list_id: str
    mailchimp_list_id: str
    company_ids: list[int]
    junk_customer_ids: dict[str, int] = field(default_factory=dict)
    metric_ids: dict[str, str] = field(default_factory=dict)


def build_products(rng: random.Random) -> list[Product]:
    products = []
    n = 0
    for category, (low, high), count in vocab.CATEGORIES:
        for _ in range(count):
            n += 1
            title = f"{rng.choice(vocab.ADJECTIVES)} {category.rstrip('s')} {rng.randint(1, 9)}{rng.choice('XLS')}"
            price = round(rng.uniform(low, high) / 1.0) - 0.01
            stock = 0 if rng.random() < 0.08 else rng.randint(3, 400)
            products.append(
                Product(
                    product_id=8_100_000_000_000 + n,
                    variant_id=44_100_000_000_000 + n,
                    sku=f"NW-{category[:3].upper()}-{n:04d}",
                    title=title,
                    category=category,
                    price=price,
                    inventory_quantity=stock,
                    popularity=rng.paretovariate(1.6),
                )
            )
    return products


def build_campaigns(rng: random.Random, start: float, horizon: float) -> list[Campaign]:
    """Klaviyo sends a weekly newsletter, Mailchimp a fortnightly one (Tuesdays, 15:00 UTC)."""
    subjects = (
        "New arrivals for the trail",
        "Weekend deals inside",
        "Gear up for the season",
        "Our bestsellers are back",
        "Members get more",
        "Last chance: summer sale",
        "Staff picks this week",
        "Layer up: base layers guide",
    )
    campaigns = []
    first_tuesday = start + ((1 - int(start // DAY + 3) % 7) % 7) * DAY + 15 * 3600
    for platform, every in (("klaviyo", 7), ("mailchimp", 14)):
        t, n = first_tuesday + (0 if platform == "klaviyo" else DAY), 0
        while t < horizon:
            n += 1
            cid = ids_for(rng).klaviyo_id() if platform == "klaviyo" else f"{rng.getrandbits(40):010x}"
            subject = subjects[(n + len(platform)) % len(subjects)]
            campaigns.append(
                Campaign(platform, cid, 500_000 + len(campaigns), f"{platform.title()} newsletter #{n}", subject, t)
            )
            t += every * DAY
    return campaigns


def build_media(rng: random.Random, start: float, horizon: float, products: list[Product]):
    media = []
    t = start - 10 * DAY
    while t < horizon:
        p = rng.choice(products)
        media.append((f"17{rng.randint(10**15, 10**16 - 1)}", t, f"Meet the {p.title}. Ready for anything. #northwind"))
        t += rng.uniform(1.0, 3.0) * DAY
    return media
