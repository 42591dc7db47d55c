"""Generate a sandbox world: `store/` tables for the whole horizon, `truth/` as of the clock.

People are simulated in fixed-size chunks, in worker processes when there are several, and
each chunk is appended to the Parquet files as soon as it is made, so memory stays bounded
by the chunk size whatever the world's size.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import random
import shutil
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from sandbox.world import vocab
from sandbox.world.catalog import DAY, Shared, build_campaigns, build_media, build_products
from sandbox.world.ids import Ids
from sandbox.world.schema import SCHEMAS, empty_columns, to_arrow
from sandbox.world.simulate import ChunkSimulator

DEFAULT_END = datetime(2026, 11, 1, tzinfo=UTC)
WORLD_FORMAT = 1
COMPANY_KINDS = ("Running Club", "Outdoor Co", "Guides", "Fitness", "Scouts")


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 42
    customers: int = 3000
    days: int = 90
    future_days: int = 14
    end: datetime = DEFAULT_END
    chunk_size: int = 5_000

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)


# Fixed, documented credentials: the sandbox checks them the way each vendor does, so a
# loader that forgets its auth header fails here exactly as it would against the vendor.
def sandbox_credentials() -> dict[str, dict[str, str]]:
    return {
        "mixpanel": {
            "service_account_username": "tessera-sandbox.sa",
            "service_account_secret": "sandbox-mixpanel-secret",
            "project_id": "3141592",
        },
        "hubspot": {"access_token": "pat-na1-sandbox-hubspot-token"},
        "shopify": {
            "access_token": "shpat_sandbox_shopify_token",
            "shop": "northwind-outfitters",
            "api_version": "2025-01",
        },
        "klaviyo": {"api_key": "pk_sandbox_klaviyo_private_key", "revision": "2025-10-15"},
        "mailchimp": {"api_key": "0123456789abcdef0123456789abcdef-us21", "dc": "us21"},
        "instagram": {"access_token": "IGQVsandbox-instagram-token", "ig_user_id": "17841400000000001"},
    }


def _shared(config: WorldConfig) -> tuple[Shared, dict[str, pa.Table], dict]:
    rng = random.Random(f"{config.seed}:world")
    ids = Ids(rng)
    start, end = config.start.timestamp(), config.end.timestamp()
    horizon = end + config.future_days * DAY
    products = build_products(rng)
    campaigns = build_campaigns(rng, start, horizon)
    media = build_media(rng, start, horizon, products)
    klaviyo_list_id, mailchimp_list_id = ids.klaviyo_list_id(), ids.hex(10)
    metric_names = (
        "Received Email",
        "Opened Email",
        "Clicked Email",
        "Unsubscribed from Email Marketing",
        "Bounced Email",
        "Marked Email as Spam",
    )
    metric_ids = {name: ids.klaviyo_list_id() for name in metric_names}
    companies = [
        (
            200_000 + i,
            f"{rng.choice(vocab.LAST_NAMES)} {rng.choice(COMPANY_KINDS)}",
        )
        for i in range(1, 41)
    ]
    junk = {email: 7_000_000_000_000 + i for i, email in enumerate((*vocab.JUNK_EMAILS, vocab.SUPPORT_EMAIL), 1)}
    shared = Shared(
        seed=config.seed,
        start=start,
        end=end,
        horizon=horizon,
        # Guest checkout is off for the first half of the history and on after.
        guest_checkout_from=start + 0.5 * (end - start),
        products=products,
        product_weights=[p.popularity for p in products],
        campaigns=campaigns,
        media=media,
        klaviyo_list_id=klaviyo_list_id,
        mailchimp_list_id=mailchimp_list_id,
        company_ids=[c[0] for c in companies],
        junk_customer_ids=junk,
        metric_ids=metric_ids,
    )
    t = {
        name: empty_columns(name)
        for name in (
            "shopify_products",
            "klaviyo_lists",
            "klaviyo_metrics",
            "klaviyo_campaigns",
            "mailchimp_lists",
            "mailchimp_campaigns",
            "instagram_media",
            "hubspot_companies",
            "shopify_customers",
        )
    }

    def add(table: str, **row) -> None:
        for name, values in t[table].items():
            values.append(row.get(name))

    before = start - 400 * DAY
    for p in products:
        add(
            "shopify_products",
            product_id=p.product_id,
            title=p.title,
            handle=p.title.lower().replace(" ", "-"),
            product_type=p.category,
            vendor=vocab.SHOP_NAME,
            status="active",
            tags=p.category.lower(),
            variant_id=p.variant_id,
            sku=p.sku,
            price=p.price,
            inventory_quantity=p.inventory_quantity,
            created_at=before + rng.uniform(0, 300 * DAY),
            updated_at=start + rng.uniform(0, end - start),
        )
    add(
        "klaviyo_lists",
        list_id=klaviyo_list_id,
        name="Newsletter",
        opt_in_process="single_opt_in",
        created_at=before,
        updated_at=before,
    )
    for name, mid in metric_ids.items():
        add("klaviyo_metrics", metric_id=mid, name=name, integration="Klaviyo", created_at=before, updated_at=before)
    add(
        "mailchimp_lists",
        list_id=mailchimp_list_id,
        web_id=100_001,
        name=f"{vocab.SHOP_NAME} Newsletter",
        created_at=before,
    )
    for c in campaigns:
        if c.platform == "klaviyo":
            add(
                "klaviyo_campaigns",
                campaign_id=c.campaign_id,
                name=c.name,
                subject=c.subject,
                list_id=klaviyo_list_id,
                status="Sent",
                send_time=c.send_time,
                created_at=c.send_time - 2 * DAY,
                updated_at=c.send_time,
            )
        else:
            add(
                "mailchimp_campaigns",
                campaign_id=c.campaign_id,
                web_id=c.web_id,
                list_id=mailchimp_list_id,
                title=c.name,
                subject_line=c.subject,
                status="sent",
                send_time=c.send_time,
                created_at=c.send_time - 2 * DAY,
            )
    for media_id, ts, caption in media:
        add(
            "instagram_media",
            media_id=media_id,
            caption=caption,
            media_type="IMAGE",
            permalink=f"https://www.instagram.com/p/{ids.hex(11)}/",
            like_count=rng.randint(50, 3000),
            timestamp=ts,
        )
    for cid, name in companies:
        add(
            "hubspot_companies",
            company_id=cid,
            name=name,
            domain=f"{name.lower().replace(' ', '')}.org",
            industry="SPORTING_GOODS",
            city=rng.choice(vocab.CITIES)[0],
            created_at=before,
            updated_at=before,
        )
    tables = {name: to_arrow(name, cols) for name, cols in t.items()}
    meta = {
        "klaviyo_list_id": klaviyo_list_id,
        "mailchimp_list_id": mailchimp_list_id,
        "guest_checkout_from": _iso(shared.guest_checkout_from),
        "free_shipping_threshold": 75.0,
        "support_email": vocab.SUPPORT_EMAIL,
        "junk_customer_ids": junk,
        "metric_ids": metric_ids,
    }
    return shared, tables, meta


class _JunkOrders:
    """The shared customers Shopify files junk-email orders under (test@test.com, the support
    address). Each exists from its first order on, so it appears exactly when an order
    exposes it, and lists the people who used it in the truth."""

    def __init__(self, junk: dict[str, int]) -> None:
        self.email_by_id = {cid: email for email, cid in junk.items()}
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}

    def add(self, orders: pa.Table) -> None:
        ids = pa.array(list(self.email_by_id), pa.int64())
        mine = orders.filter(pc.is_in(orders["customer_id"], value_set=ids))
        if not mine.num_rows:
            return
        spans = mine.group_by("customer_id").aggregate([("created_at", "min"), ("created_at", "max")])
        for row in spans.to_pylist():
            cid, first, last = row["customer_id"], row["created_at_min"].timestamp(), row["created_at_max"].timestamp()
            self.first[cid] = min(first, self.first.get(cid, first))
            self.last[cid] = max(last, self.last.get(cid, last))

    def customers(self) -> pa.Table:
        cols = empty_columns("shopify_customers")
        for cid in sorted(self.first):
            email = self.email_by_id[cid]
            support = email == vocab.SUPPORT_EMAIL
            row = {
                "customer_id": cid,
                "email": email,
                "first_name": "Customer" if support else "Guest",
                "last_name": "Service" if support else "",
                "state": "disabled",
                "verified_email": False,
                "tags": "",
                "address": "{}",
                "created_at": self.first[cid],
                "updated_at": self.last[cid],
            }
            for name, values in cols.items():
                values.append(row.get(name))
        return to_arrow("shopify_customers", cols)


def _chunk(args: tuple[Shared, int, int, int]) -> dict[str, pa.Table]:
    shared, chunk, first, count = args
    return ChunkSimulator(shared, chunk, first, count).simulate()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")


def generate_world(
    config: WorldConfig, out: Path, workers: int = 1, progress: Callable[[int, int], None] | None = None
) -> Path:
    """Write a complete world to `out` (replacing what was there) and return it."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    store = out / "store"
    store.mkdir(parents=True)
    shared, global_tables, meta = _shared(config)
    writers: dict[str, pq.ParquetWriter] = {}

    def write(name: str, table: pa.Table) -> None:
        if name not in writers:
            writers[name] = pq.ParquetWriter(
                store / f"{name}.parquet", SCHEMAS[name], compression="zstd", compression_level=1
            )
        if table.num_rows:
            writers[name].write_table(table, row_group_size=1_000_000)

    n_chunks = max(1, -(-config.customers // config.chunk_size))
    jobs = [
        (shared, c, c * config.chunk_size, min(config.chunk_size, config.customers - c * config.chunk_size))
        for c in range(n_chunks)
    ]
    try:
        for name, table in global_tables.items():
            write(name, table)
        junk_orders = _JunkOrders(shared.junk_customer_ids)
        for done, tables in enumerate(_run(jobs, workers), 1):
            for name, table in tables.items():
                write(name, table)
            junk_orders.add(tables["shopify_orders"])
            if progress:
                progress(min(done * config.chunk_size, config.customers), config.customers)
        write("shopify_customers", junk_orders.customers())
        for name in SCHEMAS:  # every table exists, even when this world has no rows for it
            if name not in writers:
                write(name, SCHEMAS[name].empty_table())
    finally:
        for w in writers.values():
            w.close()
    world = {
        "format": WORLD_FORMAT,
        "seed": config.seed,
        "customers": config.customers,
        "days": config.days,
        "start": _iso(shared.start),
        "clock": _iso(shared.end),
        "horizon": _iso(shared.horizon),
        "credentials": sandbox_credentials(),
        "ids": meta,
    }
    (out / "world.json").write_text(json.dumps(world, indent=2, sort_keys=True))
    from sandbox.world.truth import write_truth

    write_truth(out, config.end)
    return out


def _run(jobs, workers: int) -> Iterator[dict[str, pa.Table]]:
    if workers <= 1 or len(jobs) == 1:
        for job in jobs:
            yield _chunk(job)
        return
    # Results are taken in chunk order (so files are identical whatever the scheduling), and
    # at most two chunks per worker are in flight: Pool.imap alone would let finished chunks
    # pile up in memory whenever writing falls behind simulating.
    #
    # Workers come from a fork server, not a plain fork of this process: the caller may have
    # threads (a sandbox server, a test session) holding locks at the moment of a fork, and a
    # child forked then can hang forever on one of them. The server is a fresh interpreter with
    # this module preloaded, so workers still start in milliseconds.
    context = mp.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    in_flight: deque = deque()
    pool = context.Pool(workers, maxtasksperchild=8)
    try:
        for job in jobs:
            if len(in_flight) >= 2 * workers:
                yield in_flight.popleft().get()
            in_flight.append(pool.apply_async(_chunk, (job,)))
        while in_flight:
            yield in_flight.popleft().get()
    except BaseException:
        pool.terminate()
        raise
    else:
        pool.close()  # every chunk is in: the workers exit on their own, none is killed
    finally:
        pool.join()
