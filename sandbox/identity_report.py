"""How good the identity map is: pairwise precision, recall and F1 against the world's truth,
with cluster sizes, the largest clusters and what was blocked.

Definitions (pairs are unordered pairs of identifiers, an identifier being (source, id_type,
id_value) as in truth/identities.parquet and marts.customer_identifiers):

- Evaluated identifiers: those in the identity map that truth gives to exactly one person. An
  identifier several people used (a family device, test@test.com) cannot be right for all of
  them; it is counted and reported apart, never scored.
- Precision: of the pairs the map puts in one customer, the share truth puts in one person.
- Recall (linkable): of the pairs of one person that the data makes linkable, the share the map
  puts in one customer. Two identifiers of a person are *linkable* when a chain of records
  connects them in which every identifier belongs to that person alone: records are the
  warehouse's identity records (a CRM contact, an order, a checkout, a profile, a device with the
  login or the checkout on it), and identifiers with the same normalized value (an email typed in
  two sources) are one. A person who never logged in or typed an email on a device makes that
  device unlinkable, whatever a resolver does.
- Recall (all): the same over every pair of one person, linkable or not, for scale.
- People who asked for erasure (truth's `erased`) are left out of the truth: Tessera deletes
  them from the warehouse, so their identifiers are rightly absent from the map.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

KEY = ("source", "id_type", "id_value")


def _pairs(counts: np.ndarray) -> int:
    counts = counts.astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def scores(con: duckdb.DuckDBPyConnection, world: Path) -> dict:
    """Pairwise precision and recall of marts.customer_identifiers against the world's truth."""
    truth = world / "truth"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE truth AS
            SELECT * FROM read_parquet('{truth / "identities.parquet"}')
            WHERE person_id NOT IN (
                SELECT person_id FROM read_parquet('{truth / "persons.parquet"}') WHERE coalesce(erased, false)
            )"""
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE scored AS
        WITH single AS (
            SELECT source, id_type, id_value, any_value(person_id) AS person_id
            FROM truth GROUP BY ALL HAVING count(DISTINCT person_id) = 1
        )
        SELECT row_number() OVER (ORDER BY source, id_type, id_value) - 1 AS i, s.*, m.customer_id
        FROM single s JOIN marts.customer_identifiers m USING (source, id_type, id_value)
        """
    )
    [(evaluated, shared, missing)] = con.execute(
        """
        SELECT (SELECT count(*) FROM scored),
               (SELECT count(*) FROM (SELECT 1 FROM truth GROUP BY source, id_type, id_value
                                      HAVING count(DISTINCT person_id) > 1)),
               (SELECT count(*) FROM (SELECT DISTINCT source, id_type, id_value FROM truth)
                                      ANTI JOIN marts.customer_identifiers USING (source, id_type, id_value))
        """
    ).fetchall()
    together = _pairs(con.execute("SELECT count(*) FROM scored GROUP BY customer_id").fetchnumpy()["count_star()"])
    true_pairs = _pairs(con.execute("SELECT count(*) FROM scored GROUP BY person_id").fetchnumpy()["count_star()"])
    right = _pairs(
        con.execute("SELECT count(*) FROM scored GROUP BY person_id, customer_id").fetchnumpy()["count_star()"]
    )
    linkable_pairs, right_linkable = _linkable(con, evaluated)
    precision = right / together if together else 1.0
    recall = right_linkable / linkable_pairs if linkable_pairs else 1.0
    return {
        "evaluated_identifiers": evaluated,
        "shared_identifiers_not_scored": shared,
        "truth_identifiers_missing_from_map": missing,
        "pairs_in_one_customer": together,
        "pairs_right": right,
        "pairs_of_one_person": true_pairs,
        "pairs_linkable": linkable_pairs,
        "precision": precision,
        "recall_linkable": recall,
        "recall_all": right / true_pairs if true_pairs else 1.0,
        "f1_linkable": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
    }


def _linkable(con: duckdb.DuckDBPyConnection, evaluated: int) -> tuple[int, int]:
    """(pairs the data makes linkable, of those the pairs the map got right)."""
    # Graph nodes: the scored identifiers (0..evaluated-1), then records, then normalized values.
    # Shared identifiers are not in `scored`, so no chain passes through them.
    edges = con.execute(
        f"""
        WITH occ AS (
            SELECT s.i, o.record_id, o.node
            FROM intermediate.int_identity__occurrences o
            JOIN scored s ON s.source = o.source AND s.id_type = o.id_type AND s.id_value = o.id_value
        ),
        keys AS (
            SELECT key, {evaluated} + row_number() OVER (ORDER BY key) - 1 AS k
            FROM (SELECT DISTINCT record_id AS key FROM occ UNION SELECT DISTINCT node FROM occ)
        )
        SELECT occ.i AS a, keys.k AS b FROM occ JOIN keys ON keys.key = occ.record_id
        UNION ALL
        SELECT occ.i, keys.k FROM occ JOIN keys ON keys.key = occ.node
        """
    ).fetchnumpy()
    n = int(max(edges["b"].max(initial=evaluated - 1), evaluated - 1)) + 1
    graph = coo_matrix((np.ones(len(edges["a"]), np.int8), (edges["a"], edges["b"])), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    people = con.execute("SELECT person_id, customer_id FROM scored ORDER BY i").fetchnumpy()
    person = np.unique(people["person_id"], return_inverse=True)[1]
    customer = np.unique(people["customer_id"], return_inverse=True)[1]
    comp = labels[:evaluated]
    _, linkable_counts = np.unique(np.stack([person, comp]), axis=1, return_counts=True)
    _, right_counts = np.unique(np.stack([person, comp, customer]), axis=1, return_counts=True)
    return _pairs(linkable_counts), _pairs(right_counts)


def clusters(con: duckdb.DuckDBPyConnection, largest: int = 10) -> dict:
    """Cluster sizes (person identifiers per customer), the largest clusters, blocked identifiers."""
    person_kinds = "kind NOT IN ('mixpanel_device', 'shopify_checkout')"
    sizes = con.execute(
        f"""
        SELECT CASE WHEN n = 1 THEN '1' WHEN n <= 3 THEN '2-3' WHEN n <= 6 THEN '4-6' WHEN n <= 10 THEN '7-10'
                    ELSE '11+' END AS size, count(*) AS customers
        FROM (SELECT customer_id, count(*) FILTER (WHERE {person_kinds}) AS n
              FROM intermediate.int_identity__resolved GROUP BY customer_id)
        GROUP BY size ORDER BY min(n)
        """
    ).fetchall()
    top = con.execute(
        f"""
        SELECT customer_id, count(*) FILTER (WHERE {person_kinds}) AS identifiers,
               count(*) FILTER (WHERE kind = 'mixpanel_device') AS devices,
               string_agg(DISTINCT kind, ', ' ORDER BY kind) AS kinds
        FROM intermediate.int_identity__resolved GROUP BY customer_id
        ORDER BY identifiers DESC, devices DESC, customer_id LIMIT {int(largest)}
        """
    ).fetchall()
    blocked = con.execute(
        """
        SELECT trim(regexp_replace(resolution_note, '[:(].*', '')) AS why, count(*) AS identifiers,
               string_agg(node, ', ' ORDER BY records DESC) FILTER (WHERE rank <= 3) AS examples
        FROM (SELECT r.*, n.records,
                     row_number() OVER (PARTITION BY trim(regexp_replace(r.resolution_note, '[:(].*', ''))
                                        ORDER BY n.records DESC, r.node) AS rank
              FROM intermediate.int_identity__resolved r JOIN intermediate.int_identity__nodes n USING (node)
              WHERE r.resolution_note IS NOT NULL)
        GROUP BY why ORDER BY identifiers DESC
        """
    ).fetchall()
    [(customers, identifiers)] = con.execute(
        "SELECT count(DISTINCT customer_id), count(*) FROM marts.customer_identifiers"
    ).fetchall()
    return {
        "customers": customers,
        "identifiers": identifiers,
        "size_distribution": sizes,
        "largest": top,
        "blocked": blocked,
    }


def build(warehouse: Path, world: Path | None = None) -> dict:
    # A copy in memory: the report never holds the warehouse file a run may want to write.
    with duckdb.connect() as con:
        con.execute(f"ATTACH '{warehouse}' AS wh (READ_ONLY)")
        con.execute("USE wh")
        report = {"clusters": clusters(con)}
        if world is not None:
            con.execute("USE memory")
            con.execute("CREATE SCHEMA IF NOT EXISTS marts")
            con.execute("CREATE SCHEMA IF NOT EXISTS intermediate")
            con.execute("CREATE VIEW marts.customer_identifiers AS SELECT * FROM wh.marts.customer_identifiers")
            con.execute(
                "CREATE VIEW intermediate.int_identity__occurrences AS "
                "SELECT * FROM wh.intermediate.int_identity__occurrences"
            )
            report["scores"] = scores(con, world)
    return report


def render(report: dict) -> str:
    lines: list[str] = []
    if "scores" in report:
        s = report["scores"]
        lines += [
            "Identity map against the world's truth (pairs of identifiers)",
            f"  precision          {s['precision']:.5f}  ({s['pairs_right']:,} of {s['pairs_in_one_customer']:,} "
            "pairs put together are one person)",
            f"  recall (linkable)  {s['recall_linkable']:.5f}  (of {s['pairs_linkable']:,} pairs the data links)",
            f"  recall (all)       {s['recall_all']:.5f}  (of {s['pairs_of_one_person']:,} pairs of one person)",
            f"  F1 (linkable)      {s['f1_linkable']:.5f}",
            f"  scored {s['evaluated_identifiers']:,} identifiers; {s['shared_identifiers_not_scored']:,} shared "
            f"by several people not scored; {s['truth_identifiers_missing_from_map']:,} in truth but not in the map",
            "",
        ]
    c = report["clusters"]
    lines += [f"{c['customers']:,} customers from {c['identifiers']:,} identifiers"]
    lines += ["  person identifiers per customer:"]
    lines += [f"    {size:>5}  {count:,}" for size, count in c["size_distribution"]]
    lines += ["  largest customers (identifiers, devices, kinds):"]
    lines += [f"    {cid}  {n:>3}  {d:>3}  {kinds}" for cid, n, d, kinds in c["largest"]]
    lines += ["  identifiers that link nobody:"]
    lines += [f"    {count:>6,}  {why}  (e.g. {examples})" for why, count, examples in c["blocked"]]
    return "\n".join(lines)
