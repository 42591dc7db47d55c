"""Simulate one chunk of people: their devices, sessions, checkouts and every trace they leave.

Each chunk draws from its own generator seeded by (world seed, chunk index), so chunks can be
made in parallel and the world is the same whichever process made which chunk. Ids are
offset by the chunk index so they never collide across chunks.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

import orjson
import pyarrow as pa

from sandbox.world import vocab
from sandbox.world.catalog import DAY, Product, Shared
from sandbox.world.ids import Ids
from sandbox.world.schema import SCHEMAS, empty_columns, to_arrow

CHUNK_ID_SPAN = 10_000_000
FREE_SHIPPING_THRESHOLD = 75.0
SHIPPING_FEE = 6.95
TAX_RATE = 0.08

# Exit probabilities at each checkout step, tuned so that about 70% of started checkouts are
# abandoned and about half of the leavers go when shipping, tax and fees first appear.
P_LOW_INTENT = 0.15
P_FORCED_ACCOUNT = 0.65
P_EXTRA_COSTS_WITH_SHIPPING = 0.62
P_EXTRA_COSTS_FREE_SHIPPING = 0.42
P_PAYMENT = 0.17

DEVICE_KINDS = (
    ("mobile", "iOS", "Mobile Safari", 0.35),
    ("mobile", "Android", "Chrome", 0.25),
    ("desktop", "Windows", "Chrome", 0.15),
    ("desktop", "Mac OS X", "Safari", 0.15),
    ("tablet", "iOS", "Mobile Safari", 0.10),
)


@dataclass(slots=True)
class Device:
    device_id: str
    kind: str
    os: str
    browser: str


@dataclass(slots=True)
class Person:
    idx: int
    person_id: str
    first: str
    last: str
    email: str
    phone: str  # E.164
    street: str
    city: tuple
    postal: str
    tier: str
    household_id: str
    social_only: bool
    guest_only: bool
    will_register: bool
    active_from: float
    devices: list[Device]
    favourite: str
    open_rate: float
    instagram: str | None = None
    instagram_user_id: str | None = None
    account_at: float | None = None
    account_customer_id: int | None = None
    customers: dict[str, list] = field(default_factory=dict)  # lower(email) -> [id, email, created, updated, state]
    email_known_at: float | None = None
    last_activity: float = 0.0
    order_count: int = 0
    consent_source: str | None = None
    consent_at: float | None = None
    withdrawn_at: float | None = None
    withdrawn_platform: str | None = None
    bounced_at: float | None = None
    spam_at: float | None = None
    erasure_at: float | None = None


class ChunkSimulator:
    def __init__(self, shared: Shared, chunk: int, first_person: int, count: int) -> None:
        self.s = shared
        self.chunk = chunk
        self.first_person = first_person
        self.count = count
        self.rng = random.Random(f"{shared.seed}:{chunk}")
        self.ids = Ids(self.rng)
        self.cols = {name: empty_columns(name) for name in SCHEMAS if name in CHUNK_TABLES}
        self._serial = {
            k: 0 for k in ("customer", "order", "checkout", "line", "contact", "deal", "order_number", "web")
        }
        self._prev: Person | None = None
        self._cum_weights = list(_accumulate(shared.product_weights))
        self._by_category: dict[str, list[Product]] = {}
        for p in shared.products:
            self._by_category.setdefault(p.category, []).append(p)

    # ---- helpers -------------------------------------------------------------------
    def _next(self, kind: str, base: int) -> int:
        self._serial[kind] += 1
        return base + self.chunk * CHUNK_ID_SPAN + self._serial[kind]

    def _emit(self, table: str, **row) -> None:
        cols = self.cols[table]
        for name, values in cols.items():
            values.append(row.get(name))

    def _pick_product(self, person: Person) -> Product:
        if self.rng.random() < 0.55:
            return self.rng.choice(self._by_category[person.favourite])
        return self.rng.choices(self.s.products, cum_weights=self._cum_weights)[0]

    def _phone_variant(self, e164: str) -> str:
        d = e164[2:]
        return self.rng.choice(
            (
                e164,
                f"({d[:3]}) {d[3:6]}-{d[6:]}",
                f"{d[:3]}-{d[3:6]}-{d[6:]}",
                f"{d[:3]}.{d[3:6]}.{d[6:]}",
                f"+1 {d[:3]} {d[3:6]} {d[6:]}",
                d,
                f"1-{d[:3]}-{d[3:6]}-{d[6:]}",
            )
        )

    def _email_variant(self, email: str, kinds=("case", "space", "typo")) -> str:
        kind = self.rng.choice(kinds)
        local, _, domain = email.partition("@")
        if kind == "case":
            return f"{local[:1].upper()}{local[1:]}@{domain.capitalize()}" if self.rng.random() < 0.5 else email.upper()
        if kind == "space":
            return self.rng.choice((f" {email}", f"{email} ", f"  {email}  "))
        typos = vocab.DOMAIN_TYPOS.get(domain)
        if typos:
            return f"{local}@{self.rng.choice(typos)}"
        if len(local) > 3:
            i = self.rng.randrange(len(local) - 1)
            return f"{local[:i]}{local[i + 1]}{local[i]}{local[i + 2 :]}@{domain}"
        return f"{local}{local[-1]}@{domain}"

    def _typed_email(self, person: Person) -> str:
        """What a guest types into the checkout's email box."""
        r = self.rng.random()
        if r < 0.80:
            return person.email
        if r < 0.965:
            return self._email_variant(person.email)
        return self.rng.choice(vocab.JUNK_EMAILS[:2])

    # ---- people --------------------------------------------------------------------
    def make_person(self, idx: int) -> Person:
        rng, s = self.rng, self.s
        first, last = rng.choice(vocab.FIRST_NAMES), rng.choice(vocab.LAST_NAMES)
        domain = rng.choices([d for d, _ in vocab.EMAIL_DOMAINS], [w for _, w in vocab.EMAIL_DOMAINS])[0]
        style = rng.randrange(4)
        local = (
            f"{first}.{last}",
            f"{first}{last}{rng.randint(1, 99)}",
            f"{first[0]}{last}{rng.randint(10, 999)}",
            f"{first}_{last}{rng.randint(1, 9999)}",
        )[style].lower()
        # The person index keeps canonical emails unique across the whole world.
        email = f"{local}.{idx:x}@{domain}" if rng.random() < 0.5 else f"{local}{idx}@{domain}"
        city = rng.choice(vocab.CITIES)
        phone = f"+1{city[4]}{rng.randint(200, 999)}{rng.randint(0, 9999):04d}"
        social_only = rng.random() < 0.05
        r = rng.random()
        guest_only, will_register = r < 0.25, 0.25 <= r < 0.80
        active_from = s.start + (s.horizon - s.start - DAY) * rng.random() ** 1.7
        prev = self._prev
        if prev is not None and not prev.social_only and rng.random() < 0.15:
            household_id = prev.household_id
            shared_device = next((d for d in prev.devices if d.kind == "desktop"), prev.devices[0])
        else:
            household_id, shared_device = f"h{idx:07d}", None
        devices = []
        for _ in range(rng.choices((1, 2, 3), (55, 35, 10))[0]):
            kind, os_, browser, _w = rng.choices(DEVICE_KINDS, [k[3] for k in DEVICE_KINDS])[0]
            devices.append(Device(self.ids.uuid(), kind, os_, browser))
        if shared_device is not None:
            devices.append(shared_device)
        tier = rng.choices(("none", "silver", "gold", "platinum"), (60, 25, 11, 4))[0]
        person = Person(
            idx=idx,
            person_id=f"p{idx:07d}",
            first=first,
            last=last,
            email=email,
            phone=phone,
            street=f"{rng.randint(1, 9999)} {rng.choice(vocab.STREETS)}",
            city=city,
            postal=f"{city[3]}{rng.randint(0, 99):02d}",
            tier=tier,
            household_id=household_id,
            social_only=social_only,
            guest_only=guest_only,
            will_register=will_register,
            active_from=active_from,
            devices=devices,
            favourite=rng.choice(vocab.CATEGORIES)[0],
            open_rate=rng.uniform(0.05, 0.6),
        )
        if social_only or rng.random() < 0.3:
            handle = rng.choice((f"{first}{last}", f"{first}.{last}", f"{first}_{last[0]}", f"the{first}{last}"))
            person.instagram = f"{handle.lower()}{rng.randint(1, 999)}"
            person.instagram_user_id = self.ids.instagram_id()
        self._prev = person
        return person

    def simulate(self) -> dict[str, pa.Table]:
        for i in range(self.count):
            person = self.make_person(self.first_person + i)
            if not person.social_only:
                self._browse(person)
                self._consent(person)
                if self.rng.random() < 0.015:
                    self._phone_order(person)
                self._email_platforms(person)
                self._crm(person)
                self._customers(person)
                self._erasure(person)
            self._instagram(person)
            self._truth_person(person)
        return {name: to_arrow(name, cols) for name, cols in self.cols.items()}

    # ---- behaviour on the site -------------------------------------------------------
    def _browse(self, person: Person) -> None:
        rng, s = self.rng, self.s
        n_sessions = 1 + int(rng.expovariate(1 / (3.0 * rng.paretovariate(3.0))))
        span = s.horizon - person.active_from
        starts = sorted(person.active_from + span * rng.random() for _ in range(n_sessions))
        if person.will_register and rng.random() < 0.5:
            person.account_at = starts[0] + 30
        for t0 in starts:
            device = rng.choice(person.devices)
            self._session(person, device, t0)

    def _session(self, person: Person, device: Device, t0: float) -> None:
        rng = self.rng
        ev = _EventWriter(self, person, device, rng.choices(vocab.UTM_SOURCES, [u[2] for u in vocab.UTM_SOURCES])[0])
        t = t0
        if person.account_at is not None and person.account_at <= t and rng.random() < 0.65:
            self._ensure_account(person, t)
            ev.user_id = str(person.account_customer_id)
            ev.emit("Signed In", t, {"method": "password"})
            t += rng.uniform(5, 40)
        if rng.random() < 0.5:
            ev.emit("Product List Viewed", t, {"category": person.favourite, "list_id": person.favourite.lower()})
            t += rng.uniform(5, 60)
        cart: list[tuple[Product, int]] = []
        for _ in range(1 + int(rng.expovariate(1 / 1.5))):
            p = self._pick_product(person)
            ev.emit("Product Viewed", t, _product_props(p))
            t += rng.uniform(10, 120)
            if rng.random() < 0.28 and p.inventory_quantity > 0 and all(c[0] is not p for c in cart):
                qty = rng.choices((1, 2, 3), (80, 15, 5))[0]
                cart.append((p, qty))
                ev.emit("Product Added", t, {**_product_props(p), "quantity": qty, "cart_id": ev.cart_id})
                t += rng.uniform(5, 40)
        if cart:
            ev.emit("Cart Viewed", t, {"cart_id": ev.cart_id, "products": _cart_products(cart)})
            t += rng.uniform(5, 60)
            if rng.random() < 0.6:
                t = self._checkout(person, ev, cart, t)
        person.last_activity = max(person.last_activity, t)

    def _ensure_account(self, person: Person, t: float) -> None:
        if person.account_customer_id is not None:
            return
        key = person.email
        if key in person.customers:  # Shopify turns the guest customer into an account
            record = person.customers[key]
            record[4] = "enabled"
        else:
            created = person.account_at if person.account_at is not None and person.account_at <= t else t
            record = [self._next("customer", 7_100_000_000_000), person.email, created, t, "enabled"]
            person.customers[key] = record
        person.account_customer_id = record[0]
        if person.account_at is None or person.account_at > t:
            person.account_at = t
        self._known(person, t)

    def _known(self, person: Person, t: float) -> None:
        if person.email_known_at is None or t < person.email_known_at:
            person.email_known_at = t

    def _checkout(self, person: Person, ev: _EventWriter, cart, t: float) -> float:
        rng, s = self.rng, self.s
        token = self.ids.hex(32)
        started = t
        guest_on = t >= s.guest_checkout_from
        subtotal = round(sum(p.price * q for p, q in cart), 2)
        products = _cart_products(cart)
        base = {"checkout_id": token, "cart_id": ev.cart_id, "currency": "USD"}
        ev.emit(
            "Checkout Started",
            t,
            {**base, "value": subtotal, "revenue": subtotal, "products": products, "guest_checkout_enabled": guest_on},
        )
        t += rng.uniform(5, 30)
        ev.emit("Checkout Step Viewed", t, {**base, "step": 1, "step_name": "contact"})
        furthest, exit_reason, typed = "contact", None, None
        shipping = 0.0 if subtotal >= FREE_SHIPPING_THRESHOLD else SHIPPING_FEE
        tax = round(subtotal * TAX_RATE, 2)
        total = round(subtotal + shipping + tax, 2)
        if rng.random() < P_LOW_INTENT:
            exit_reason = "low_intent"
        elif ev.user_id is None and not guest_on:
            # Guest checkout is off: the shopper must create an account or sign in.
            if person.account_at is not None and person.account_at <= t and rng.random() < 0.6:
                self._ensure_account(person, t)
                ev.user_id = str(person.account_customer_id)
                ev.emit("Signed In", t + 2, {"method": "password", "checkout_id": token})
            elif person.guest_only or rng.random() < P_FORCED_ACCOUNT:
                exit_reason = "forced_account"
            else:
                self._ensure_account(person, t)
                ev.user_id = str(person.account_customer_id)
                ev.emit("Signed Up", t + 20, {"method": "checkout", "checkout_id": token})
                t += 25
        if exit_reason is None:
            typed = person.email if ev.user_id is not None else self._typed_email(person)
            t += rng.uniform(10, 60)
            ev.emit("Checkout Step Completed", t, {**base, "step": 1, "step_name": "contact"})
            self._known(person, t)
            t += rng.uniform(20, 90)
            furthest = "shipping"
            ev.emit(
                "Checkout Step Viewed",
                t,
                {
                    **base,
                    "step": 2,
                    "step_name": "shipping",
                    "shipping": shipping,
                    "tax": tax,
                    "fees": 0.0,
                    "total": total,
                },
            )
            p_exit = P_EXTRA_COSTS_WITH_SHIPPING if shipping else P_EXTRA_COSTS_FREE_SHIPPING
            if rng.random() < p_exit:
                exit_reason = "extra_costs"
        if exit_reason is None:
            t += rng.uniform(10, 60)
            ev.emit(
                "Checkout Step Completed",
                t,
                {**base, "step": 2, "step_name": "shipping", "shipping_method": "Standard"},
            )
            t += rng.uniform(5, 30)
            furthest = "payment"
            ev.emit("Checkout Step Viewed", t, {**base, "step": 3, "step_name": "payment"})
            t += rng.uniform(20, 120)
            ev.emit(
                "Payment Info Entered",
                t,
                {**base, "step": 3, "payment_method": rng.choice(("card", "paypal", "shop_pay"))},
            )
            if rng.random() < P_PAYMENT:
                exit_reason = "payment"
        order_id = None
        completed_at = None
        if exit_reason is None:
            t += rng.uniform(5, 30)
            ev.emit("Checkout Step Completed", t, {**base, "step": 3, "step_name": "payment"})
            t += rng.uniform(2, 10)
            order_id = self._order(person, typed, ev.user_id, cart, token, t, subtotal, shipping, tax, total, "web")
            completed_at = t
            furthest = "completed"
            ev.emit(
                "Order Completed",
                t,
                {
                    **base,
                    "order_id": str(order_id),
                    "total": total,
                    "revenue": subtotal,
                    "shipping": shipping,
                    "tax": tax,
                    "discount": 0.0,
                    "products": products,
                },
            )
        elif typed is not None:
            self._emit(
                "shopify_checkouts",
                checkout_id=self._next("checkout", 3_100_000_000_000),
                token=token,
                cart_token=ev.cart_id,
                email=typed,
                phone=self._phone_variant(person.phone) if rng.random() < 0.3 else None,
                customer_id=person.account_customer_id if ev.user_id else None,
                currency="USD",
                subtotal_price=subtotal,
                total_shipping=shipping if furthest != "contact" else 0.0,
                total_tax=tax,
                total_price=total,
                line_items=self._line_items(cart),
                created_at=started,
                updated_at=t,
                _person_id=person.person_id,
            )
        self._emit(
            "_checkouts",
            checkout_id=token,
            person_id=person.person_id,
            started_at=started,
            furthest_step=furthest,
            completed_at=completed_at,
            cart_value=subtotal,
            exit_reason=exit_reason,
            last_activity_at=t,
            guest_checkout_enabled=guest_on,
            device_type=ev.device.kind,
            utm_source=ev.utm[0],
            order_id=order_id,
        )
        return t

    def _line_items(self, cart) -> str:
        return json.dumps(
            [
                {
                    "id": self._next("line", 14_100_000_000_000),
                    "product_id": p.product_id,
                    "variant_id": p.variant_id,
                    "sku": p.sku,
                    "title": p.title,
                    "quantity": q,
                    "price": f"{p.price:.2f}",
                }
                for p, q in cart
            ]
        )

    def _customer_for(self, person: Person, email: str, t: float) -> int:
        """Shopify attaches an order to the customer with the same email, creating a guest one."""
        if email in vocab.JUNK_EMAILS:
            return self.s.junk_customer_ids[email]
        key = email.strip().lower()
        record = person.customers.get(key)
        if record is None:
            record = [self._next("customer", 7_100_000_000_000), email.strip(), t, t, "disabled"]
            person.customers[key] = record
        record[3] = max(record[3], t)
        return record[0]

    def _order(self, person, email, user_id, cart, token, t, subtotal, shipping, tax, total, source) -> int:
        rng = self.rng
        order_id = self._next("order", 5_100_000_000_000)
        if user_id is not None:
            customer_id = person.account_customer_id
            person.customers[person.email][3] = t
        else:
            customer_id = self._customer_for(person, email, t)
        phone = None
        r = rng.random()
        if r < 0.5:
            phone = self._phone_variant(person.phone)
        elif r < 0.53:
            phone = rng.choice(vocab.JUNK_PHONES)
        person.order_count += 1
        self._emit(
            "shopify_orders",
            order_id=order_id,
            order_number=self._next("order_number", 1000),
            email=email,
            phone=phone,
            customer_id=customer_id,
            checkout_token=token,
            source_name=source,
            financial_status="paid",
            currency="USD",
            subtotal_price=subtotal,
            total_shipping=shipping,
            total_tax=tax,
            total_price=total,
            line_items=self._line_items(cart),
            shipping_address=_shopify_address(person, named=True),
            created_at=t,
            updated_at=t + (rng.uniform(3600, 5 * DAY) if rng.random() < 0.6 else 0.0),
            _person_id=person.person_id,
        )
        return order_id

    def _phone_order(self, person: Person) -> None:
        """A customer-service agent types the shop's own support email into a phone order."""
        rng = self.rng
        t = person.active_from + rng.uniform(0, max(self.s.horizon - person.active_from - 3600, 1))
        p = self._pick_product(person)
        subtotal = p.price
        shipping = 0.0 if subtotal >= FREE_SHIPPING_THRESHOLD else SHIPPING_FEE
        tax = round(subtotal * TAX_RATE, 2)
        customer_id = self.s.junk_customer_ids[vocab.SUPPORT_EMAIL]
        order_id = self._next("order", 5_100_000_000_000)
        self._emit(
            "shopify_orders",
            order_id=order_id,
            order_number=self._next("order_number", 1000),
            email=vocab.SUPPORT_EMAIL,
            phone=self._phone_variant(person.phone),
            customer_id=customer_id,
            checkout_token=None,
            source_name="phone",
            financial_status="paid",
            currency="USD",
            subtotal_price=subtotal,
            total_shipping=shipping,
            total_tax=tax,
            total_price=round(subtotal + shipping + tax, 2),
            line_items=self._line_items([(p, 1)]),
            shipping_address=_shopify_address(person, named=True),
            created_at=t,
            updated_at=t,
            _person_id=person.person_id,
        )
        person.order_count += 1

    # ---- consent and the email platforms ---------------------------------------------
    def _consent(self, person: Person) -> None:
        rng, s = self.rng, self.s
        if rng.random() >= 0.5:
            return
        person.consent_at = min(person.active_from + rng.uniform(0, 10 * DAY), s.horizon - 60)
        person.consent_source = rng.choices(("popup", "checkout", "footer_form"), (50, 35, 15))[0]
        self._known(person, person.consent_at)
        r = rng.random()
        later = person.consent_at + rng.uniform(5 * DAY, 60 * DAY)
        if later < s.horizon:
            if r < 0.10:
                person.withdrawn_at = later
                person.withdrawn_platform = rng.choice(("klaviyo", "mailchimp"))
            elif r < 0.12:
                person.bounced_at = later
            elif r < 0.127:
                person.spam_at = later

    def _email_platforms(self, person: Person) -> None:
        rng, s = self.rng, self.s
        if person.email_known_at is None:
            return
        if rng.random() < 0.92 or person.consent_at is not None:
            created = person.email_known_at + rng.uniform(60, 3600)
            if person.consent_at is not None:
                created = min(created, person.consent_at)
            profile_id = self.ids.klaviyo_id()
            unsub = person.withdrawn_at if person.withdrawn_platform == "klaviyo" else None
            changes = [x for x in (created, person.consent_at, unsub, person.bounced_at, person.spam_at) if x]
            self._emit(
                "klaviyo_profiles",
                profile_id=profile_id,
                email=person.email if rng.random() < 0.95 else self._email_variant(person.email, ("case",)),
                phone_number=person.phone if rng.random() < 0.4 else None,
                first_name=person.first,
                last_name=person.last,
                city=person.city[0],
                region=person.city[1],
                country=person.city[2],
                zip=person.postal,
                membership_tier=person.tier,
                consent_method={
                    "popup": "Klaviyo Form",
                    "checkout": "Shopify Checkout",
                    "footer_form": "Klaviyo Form",
                }.get(person.consent_source or ""),
                subscribed_at=person.consent_at,
                unsubscribed_at=unsub,
                bounced_at=person.bounced_at,
                spam_complaint_at=person.spam_at,
                created_at=created,
                updated_at=max(changes),
                _person_id=person.person_id,
            )
            if person.consent_at is not None:
                self._emit(
                    "klaviyo_list_members",
                    list_id=s.klaviyo_list_id,
                    profile_id=profile_id,
                    joined_at=person.consent_at,
                    _person_id=person.person_id,
                )
                end = min(x for x in (unsub, person.bounced_at, person.spam_at, s.horizon + 1) if x)
                self._klaviyo_campaign_events(person, profile_id, person.consent_at, end, unsub)
        if person.consent_at is not None and (rng.random() < 0.85 or person.withdrawn_platform == "mailchimp"):
            unsub = person.withdrawn_at if person.withdrawn_platform == "mailchimp" else person.spam_at
            email = person.email if rng.random() < 0.9 else self._email_variant(person.email, ("case",))
            self._emit(
                "mailchimp_members",
                list_id=s.mailchimp_list_id,
                email_address=email,
                unique_email_id=self.ids.hex(10),
                web_id=self._next("web", 400_000_000),
                first_name=person.first,
                last_name=person.last,
                phone=self._phone_variant(person.phone) if rng.random() < 0.5 else "",
                address=json.dumps(
                    {
                        "addr1": person.street,
                        "city": person.city[0],
                        "state": person.city[1],
                        "zip": person.postal,
                        "country": person.city[2],
                    }
                ),
                ip_signup=f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                tags=json.dumps(["newsletter"] + ([person.tier] if person.tier != "none" else [])),
                subscribed_at=person.consent_at,
                unsubscribed_at=unsub,
                cleaned_at=person.bounced_at,
                created_at=person.consent_at,
                _person_id=person.person_id,
            )
            end = min(x for x in (unsub, person.bounced_at, s.horizon + 1) if x)
            self._mailchimp_activity(person, email, person.consent_at, end, unsub)

    def _klaviyo_campaign_events(self, person, profile_id, start, end, unsub) -> None:
        rng, m = self.rng, self.s.metric_ids
        for c in self.s.campaigns:
            if c.platform != "klaviyo" or not (start <= c.send_time < end):
                continue
            msg = {"$message": c.campaign_id, "Campaign Name": c.name, "Subject": c.subject}
            self._kevent(m["Received Email"], profile_id, c.campaign_id, c.send_time + rng.uniform(0, 600), msg, person)
            if rng.random() < person.open_rate:
                t = c.send_time + rng.expovariate(1 / 20000)
                self._kevent(m["Opened Email"], profile_id, c.campaign_id, t, msg, person)
                if rng.random() < 0.25:
                    self._kevent(
                        m["Clicked Email"],
                        profile_id,
                        c.campaign_id,
                        t + rng.uniform(5, 300),
                        {
                            **msg,
                            "URL": f"https://{vocab.SHOP_DOMAIN}/collections/{_slug(person.favourite)}",
                        },
                        person,
                    )
        for metric, when in (
            ("Unsubscribed from Email Marketing", unsub),
            ("Bounced Email", person.bounced_at),
            ("Marked Email as Spam", person.spam_at),
        ):
            if when is not None:
                self._kevent(m[metric], profile_id, None, when, {}, person)

    def _kevent(self, metric_id, profile_id, campaign_id, t, props, person) -> None:
        self._emit(
            "klaviyo_events",
            event_id=self.ids.klaviyo_id(),
            metric_id=metric_id,
            profile_id=profile_id,
            campaign_id=campaign_id,
            datetime=t,
            properties=json.dumps(props),
            _person_id=person.person_id,
        )

    def _mailchimp_activity(self, person, email, start, end, unsub) -> None:
        rng = self.rng
        list_id = self.s.mailchimp_list_id
        for c in self.s.campaigns:
            if c.platform != "mailchimp" or not (start <= c.send_time < end):
                continue
            self._emit(
                "mailchimp_activity",
                list_id=list_id,
                campaign_id=c.campaign_id,
                email_address=email,
                action="sent",
                timestamp=c.send_time,
                url=None,
                _person_id=person.person_id,
            )
            if rng.random() < person.open_rate:
                t = c.send_time + rng.expovariate(1 / 20000)
                self._emit(
                    "mailchimp_activity",
                    list_id=list_id,
                    campaign_id=c.campaign_id,
                    email_address=email,
                    action="open",
                    timestamp=t,
                    url=None,
                    _person_id=person.person_id,
                )
                if rng.random() < 0.25:
                    self._emit(
                        "mailchimp_activity",
                        list_id=list_id,
                        campaign_id=c.campaign_id,
                        email_address=email,
                        action="click",
                        timestamp=t + rng.uniform(5, 300),
                        url=f"https://{vocab.SHOP_DOMAIN}/",
                        _person_id=person.person_id,
                    )
        for action, when in (
            ("unsub", unsub if person.withdrawn_platform == "mailchimp" else None),
            ("bounce", person.bounced_at),
            ("abuse", person.spam_at),
        ):
            if when is not None:
                self._emit(
                    "mailchimp_activity",
                    list_id=list_id,
                    campaign_id=None,
                    email_address=email,
                    action=action,
                    timestamp=when,
                    url=None,
                    _person_id=person.person_id,
                )

    # ---- CRM --------------------------------------------------------------------------
    def _crm(self, person: Person) -> None:
        rng, s = self.rng, self.s
        if person.email_known_at is None or rng.random() >= 0.7:
            return
        created = min(person.email_known_at + rng.uniform(1800, 2 * DAY), s.horizon - 1)
        stage = "customer" if person.order_count else ("lead" if person.account_at else "subscriber")
        company = rng.choice(s.company_ids) if rng.random() < 0.03 else None
        n = 2 if rng.random() < 0.12 else 1
        for k in range(n):
            email = person.email if rng.random() < 0.9 else self._email_variant(person.email, ("case", "space"))
            if k == 1:
                email = self._email_variant(person.email)
                created = min(created + rng.uniform(DAY, 20 * DAY), s.horizon - 1)
            phone = self._phone_variant(person.phone) if rng.random() < 0.6 else None
            r = rng.random()
            if r < 0.02:
                phone = vocab.JUNK_PHONES[0]
            elif r < 0.03:
                email = "n/a"
            optout = person.withdrawn_at if rng.random() < 0.5 else None
            updated = max(
                x for x in (created, optout, person.last_activity if person.last_activity < s.horizon else None) if x
            )
            contact_id = self._next("contact", 100_000)
            self._emit(
                "hubspot_contacts",
                contact_id=contact_id,
                email=email,
                firstname=person.first,
                lastname=person.last,
                phone=phone,
                city=person.city[0],
                state=person.city[1],
                country=person.city[2],
                zip=person.postal,
                lifecyclestage=stage,
                membership_tier=person.tier,
                company_id=company,
                optout_at=optout,
                created_at=created,
                updated_at=max(updated, created),
                _person_id=person.person_id,
            )
            if company is not None and k == 0:
                self._emit(
                    "hubspot_deals",
                    deal_id=self._next("deal", 900_000),
                    dealname=f"Team order - {person.last}",
                    amount=round(rng.uniform(500, 5000), 2),
                    dealstage=rng.choice(("appointmentscheduled", "qualifiedtobuy", "closedwon")),
                    pipeline="default",
                    closedate=created + 14 * DAY,
                    contact_id=contact_id,
                    company_id=company,
                    created_at=created,
                    updated_at=created + DAY,
                    _person_id=person.person_id,
                )

    def _customers(self, person: Person) -> None:
        for key, (cid, email, created, updated, state) in person.customers.items():
            opt_in = person.consent_at if key == person.email and person.consent_source == "checkout" else None
            self._emit(
                "shopify_customers",
                customer_id=cid,
                email=email,
                first_name=person.first,
                last_name=person.last,
                phone=person.phone if state == "enabled" and self.rng.random() < 0.5 else None,
                state=state,
                verified_email=state == "enabled",
                tags=person.tier if person.tier != "none" else "",
                address=_shopify_address(person),
                marketing_opt_in_at=opt_in,
                marketing_opt_out_at=person.withdrawn_at if opt_in else None,
                created_at=created,
                updated_at=updated,
                _person_id=person.person_id,
            )

    def _erasure(self, person: Person) -> None:
        rng, s = self.rng, self.s
        if person.email_known_at is None or rng.random() >= 0.004:
            return
        t = max(person.last_activity, person.email_known_at) + rng.uniform(DAY, 10 * DAY)
        if t < s.horizon:
            person.erasure_at = t
            self._emit(
                "erasure_requests",
                request_id=f"er_{self.ids.hex(12)}",
                email=person.email,
                requested_at=t,
                _person_id=person.person_id,
            )

    # ---- social ------------------------------------------------------------------------
    def _instagram(self, person: Person) -> None:
        rng, s = self.rng, self.s
        if person.instagram is None:
            return
        mood = rng.choices((vocab.POSITIVE_COMMENTS, vocab.NEUTRAL_COMMENTS, vocab.NEGATIVE_COMMENTS), (55, 30, 15))[0]
        for _ in range(rng.choice((1, 1, 2, 3))):
            t = person.active_from + rng.uniform(0, s.horizon - person.active_from)
            posted = [m for m in s.media if m[1] < t][-8:] or s.media[:1]
            media_id = rng.choice(posted)[0]
            text = rng.choice(mood).format(p=self._pick_product(person).title)
            self._emit(
                "instagram_comments",
                comment_id=self.ids.instagram_id(),
                media_id=media_id,
                text=text,
                username=person.instagram,
                user_id=person.instagram_user_id,
                like_count=rng.randint(0, 30),
                timestamp=t,
                _person_id=person.person_id,
            )
        if rng.random() < 0.08:
            t = person.active_from + rng.uniform(0, s.horizon - person.active_from)
            text = rng.choice(mood).format(p=self._pick_product(person).title)
            self._emit(
                "instagram_mentions",
                media_id=self.ids.instagram_id(),
                caption=f"{text} @{vocab.BRAND_IG_USERNAME}",
                media_type="IMAGE",
                permalink=f"https://www.instagram.com/p/{self.ids.hex(11)}/",
                username=person.instagram,
                like_count=rng.randint(0, 500),
                comments_count=rng.randint(0, 20),
                timestamp=t,
                _person_id=person.person_id,
            )

    def _truth_person(self, person: Person) -> None:
        c = person.city
        self._emit(
            "_persons",
            person_id=person.person_id,
            first_name=person.first,
            last_name=person.last,
            email=person.email,
            phone=person.phone,
            street=person.street,
            city=c[0],
            region=c[1],
            country=c[2],
            postal_code=person.postal,
            membership_tier=person.tier,
            household_id=person.household_id,
            is_social_only=person.social_only,
            is_guest_only=person.guest_only,
            account_created_at=person.account_at if person.account_customer_id else None,
            instagram_username=person.instagram,
            active_from=person.active_from,
            consent_source=person.consent_source,
            consent_given_at=person.consent_at,
            consent_withdrawn_at=person.withdrawn_at,
            withdrawn_platform=person.withdrawn_platform,
            bounced_at=person.bounced_at,
            spam_complaint_at=person.spam_at,
            erasure_requested_at=person.erasure_at,
        )


CHUNK_TABLES = {
    "_persons",
    "_checkouts",
    "mixpanel_events",
    "hubspot_contacts",
    "hubspot_deals",
    "shopify_customers",
    "shopify_orders",
    "shopify_checkouts",
    "klaviyo_profiles",
    "klaviyo_list_members",
    "klaviyo_events",
    "mailchimp_members",
    "mailchimp_activity",
    "instagram_comments",
    "instagram_mentions",
    "erasure_requests",
}


class _EventWriter:
    """Writes one session's Mixpanel events, tracking identity the way Mixpanel's simplified ID merge does."""

    def __init__(self, sim: ChunkSimulator, person: Person, device: Device, utm) -> None:
        self.sim, self.person, self.device, self.utm = sim, person, device, utm
        self.user_id: str | None = None
        self.cart_id = sim.ids.hex(24)
        self.columns = sim.cols["mixpanel_events"]
        self.anonymous_id = f"$device:{device.device_id}"
        # Mixpanel's default properties for this device and visit, pre-serialised once per session.
        self.context = orjson.dumps(
            {
                "$os": device.os,
                "$browser": device.browser,
                "$device_type": device.kind,
                "mp_lib": "web",
                "utm_source": utm[0],
                "utm_medium": utm[1],
            }
        ).decode()[1:-1]

    def emit(self, event: str, t: float, props: dict) -> None:
        # The hot path of generation (tens of millions of calls for a large world): the fixed
        # part of the properties is formatted directly (ids and numbers need no escaping) and
        # only the event's own properties go through orjson.
        sim = self.sim
        rnd = sim.rng.random
        insert_id = f"{sim.rng.getrandbits(96):024x}"
        arrived = t + (DAY + 2 * DAY * rnd() if rnd() < 0.02 else 1 + 4 * rnd())
        user_id = self.user_id
        if user_id:
            distinct_id = user_id
            ids = f'"distinct_id":"{user_id}","$device_id":"{self.device.device_id}","$user_id":"{user_id}"'
        else:
            distinct_id = self.anonymous_id
            ids = f'"distinct_id":"{distinct_id}","$device_id":"{self.device.device_id}"'
        head = (
            f'{{"time":{int(t)},{ids},"$insert_id":"{insert_id}",'
            f'"mp_processing_time_ms":{int(arrived * 1000)},{self.context}'
        )
        properties = f"{head},{orjson.dumps(props).decode()[1:]}" if props else head + "}"
        cols = self.columns
        cols["insert_id"].append(insert_id)
        cols["event"].append(event)
        cols["time"].append(t)
        cols["arrived_at"].append(arrived)
        cols["distinct_id"].append(distinct_id)
        cols["device_id"].append(self.device.device_id)
        cols["user_id"].append(user_id)
        cols["properties"].append(properties)
        cols["_person_id"].append(self.person.person_id)


def _product_props(p: Product) -> dict:
    return {
        "product_id": str(p.product_id),
        "sku": p.sku,
        "name": p.title,
        "category": p.category,
        "price": p.price,
        "currency": "USD",
    }


def _cart_products(cart) -> list[dict]:
    return [
        {
            "product_id": str(p.product_id),
            "sku": p.sku,
            "name": p.title,
            "category": p.category,
            "price": p.price,
            "quantity": q,
        }
        for p, q in cart
    ]


def _shopify_address(person: Person, named: bool = False) -> str:
    """A Shopify address object (orders carry the recipient's name, customers do not)."""
    address = {"first_name": person.first, "last_name": person.last} if named else {}
    address.update(
        address1=person.street,
        city=person.city[0],
        province_code=person.city[1],
        country_code=person.city[2],
        zip=person.postal,
    )
    return json.dumps(address)


def _slug(text: str) -> str:
    return text.lower().replace(" ", "-")


def _accumulate(values):
    total = 0.0
    for v in values:
        total += v
        yield total
