"""The world's Instagram tables as the brand's business account sees them at the world clock.

Every listing is newest first (as Instagram returns media, comments and tagged media) and is
paged with keyset cursors on (timestamp, id), so pages stay stable while the clock reveals
newer rows at the top. Rows carry every field the sandbox serves; the caller projects the
requested `fields`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sandbox.server.state import SandboxState
from sandbox.server.vendors.instagram.graph import Cursor, graph_time
from sandbox.world import vocab


@dataclass(frozen=True)
class Page:
    """Rows of one page (in response order) with their cursors, and whether more rows exist
    beyond the page in the direction it was read."""

    rows: list[tuple[Cursor, dict[str, Any]]]
    has_more: bool


def _shortcode(permalink: str) -> str:
    return permalink.rstrip("/").rsplit("/", 1)[-1]


def _media_url(media_id: str) -> str:
    # The world has no images; a stable CDN-shaped URL stands in for the expiring real one.
    return f"https://scontent.cdninstagram.com/v/t51.29350-15/{media_id}_n.jpg"


class InstagramStore:
    def __init__(self, state: SandboxState, ig_user_id: str) -> None:
        self.state = state
        self.ig_user_id = ig_user_id

    def _rows(self, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        cur = self.state.db().execute(sql, params)
        names = [d[0] for d in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    # -- shaping ------------------------------------------------------------------------------

    def _own_media(self, r: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": r["media_id"],
            "caption": r["caption"],
            "comments_count": int(r["comments_count"]),
            "is_comment_enabled": True,
            "like_count": r["like_count"],
            "media_product_type": "FEED",
            "media_type": r["media_type"],
            "media_url": _media_url(r["media_id"]),
            "owner": {"id": self.ig_user_id},
            "permalink": r["permalink"],
            "shortcode": _shortcode(r["permalink"]),
            "timestamp": graph_time(r["timestamp"]),
            "username": vocab.BRAND_IG_USERNAME,
        }

    @staticmethod
    def _tagged_media(r: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": r["media_id"],
            "caption": r["caption"],
            "comments_count": r["comments_count"],
            "like_count": r["like_count"],
            "media_product_type": "FEED",
            "media_type": r["media_type"],
            "media_url": _media_url(r["media_id"]),
            "permalink": r["permalink"],
            "shortcode": _shortcode(r["permalink"]),
            "timestamp": graph_time(r["timestamp"]),
            "username": r["username"],
        }

    @staticmethod
    def _comment(r: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": r["comment_id"],
            "from": {"id": r["user_id"], "username": r["username"]},
            "hidden": False,
            "like_count": r["like_count"],
            "media": {"id": r["media_id"]},
            "text": r["text"],
            "timestamp": graph_time(r["timestamp"]),
            "username": r["username"],
        }

    # -- SQL ----------------------------------------------------------------------------------

    @staticmethod
    def _own_media_sql(where: str) -> str:
        return (
            "SELECT m.media_id, m.caption, m.media_type, m.permalink, m.like_count, m.timestamp,"
            " epoch_us(m.timestamp) AS epoch_us,"
            " (SELECT count(*) FROM instagram_comments c"
            "  WHERE c.media_id = m.media_id AND c.timestamp <= $clock) AS comments_count"
            f" FROM instagram_media m WHERE m.timestamp <= $clock AND {where}"
        )

    @staticmethod
    def _comments_sql(where: str) -> str:
        return (
            "SELECT c.comment_id, c.media_id, c.text, c.username, c.user_id, c.like_count, c.timestamp,"
            " epoch_us(c.timestamp) AS epoch_us FROM instagram_comments c"
            " WHERE c.timestamp <= $clock"
            " AND c.media_id IN (SELECT media_id FROM instagram_media WHERE timestamp <= $clock)"
            f" AND {where}"
        )

    def _page(
        self,
        select: str,
        key: tuple[str, str],
        params: dict[str, Any],
        shape: Callable[[dict[str, Any]], dict[str, Any]],
        *,
        limit: int,
        after: Cursor | None,
        before: Cursor | None,
    ) -> Page:
        """One page of a newest-first listing. `after` reads older rows than the cursor,
        `before` newer ones (read oldest-first, then reversed back into response order)."""
        ts, row_id = key
        sql, order = select, "DESC"
        cursor = after or before
        if cursor is not None:
            op = "<" if after is not None else ">"
            sql += f" AND (epoch_us({ts}) {op} $c_us OR (epoch_us({ts}) = $c_us AND {row_id} {op} $c_id))"
            params = {**params, "c_us": cursor.epoch_us, "c_id": cursor.id}
            order = "DESC" if after is not None else "ASC"
        sql += f" ORDER BY {ts} {order}, {row_id} {order} LIMIT $limit"
        rows = self._rows(sql, {**params, "limit": limit + 1})
        has_more = len(rows) > limit
        rows = rows[:limit]
        if before is not None:
            rows.reverse()
        return Page([(Cursor(r["epoch_us"], r[row_id.split(".")[-1]]), shape(r)) for r in rows], has_more)

    # -- public -------------------------------------------------------------------------------

    def user(self) -> dict[str, Any]:
        rows = self._rows(
            "SELECT count(*) AS n FROM instagram_media WHERE timestamp <= $clock", {"clock": self.state.clock}
        )
        return {
            "id": self.ig_user_id,
            "media_count": int(rows[0]["n"]),
            "name": vocab.SHOP_NAME,
            "username": vocab.BRAND_IG_USERNAME,
        }

    def media_page(
        self,
        *,
        limit: int,
        after: Cursor | None,
        before: Cursor | None,
        since: datetime | None,
        until: datetime | None,
    ) -> Page:
        where, params = "TRUE", {"clock": self.state.clock}
        if since is not None:
            where += " AND m.timestamp >= $since"
            params["since"] = since
        if until is not None:
            where += " AND m.timestamp <= $until"
            params["until"] = until
        return self._page(
            self._own_media_sql(where), ("m.timestamp", "m.media_id"), params, self._own_media,
            limit=limit, after=after, before=before,
        )  # fmt: skip

    def comments_page(self, media_id: str, *, limit: int, after: Cursor | None, before: Cursor | None) -> Page:
        return self._page(
            self._comments_sql("c.media_id = $media_id"), ("c.timestamp", "c.comment_id"),
            {"clock": self.state.clock, "media_id": media_id}, self._comment,
            limit=limit, after=after, before=before,
        )  # fmt: skip

    def tags_page(self, *, limit: int, after: Cursor | None, before: Cursor | None) -> Page:
        select = (
            "SELECT t.media_id, t.caption, t.media_type, t.permalink, t.username, t.like_count,"
            " t.comments_count, t.timestamp, epoch_us(t.timestamp) AS epoch_us"
            " FROM instagram_mentions t WHERE t.timestamp <= $clock"
        )
        return self._page(
            select, ("t.timestamp", "t.media_id"), {"clock": self.state.clock}, self._tagged_media,
            limit=limit, after=after, before=before,
        )  # fmt: skip

    def media(self, media_id: str) -> dict[str, Any] | None:
        rows = self._rows(self._own_media_sql("m.media_id = $id"), {"clock": self.state.clock, "id": media_id})
        return self._own_media(rows[0]) if rows else None

    def comment(self, comment_id: str) -> dict[str, Any] | None:
        rows = self._rows(self._comments_sql("c.comment_id = $id"), {"clock": self.state.clock, "id": comment_id})
        return self._comment(rows[0]) if rows else None
