"""Identity resolution: every identifier of the graph, and the customer it belongs to.

1. Connected components of the person links (int_identity__edges without device links), in one
   pass of scipy's union-find whatever the length of the link chains (SQL label propagation
   needs one pass per link of the longest chain).
2. Merge protection: a component holding more identifiers of a kind than one person has
   (`identity_limits`, for example two Klaviyo profiles, or two storefront logins) is resolved
   again by adding its links strongest rule first and refusing each link that would break a
   limit, so the weakest evidence is what gives way.
3. Devices are attached last: a device seen with exactly one person joins them; a device seen
   with several (a family laptop) joins none and stays a customer of its own. Devices never join
   two persons.
4. Stable ids: each person keeps the `customer_id` that most of its identifiers had in the
   previous run. When a person splits, the part with most of the old identifiers keeps the id;
   new persons get an id derived from their smallest identifier, so a rebuild from scratch
   gives the same ids too.

The pure functions below take integer arrays and are what the stitching benchmark times.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Component label per node for undirected edges a-b over nodes 0..n-1."""
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def over_limit(labels: np.ndarray, kinds: np.ndarray, limits: dict[int, int]) -> np.ndarray:
    """Labels of the components holding more identifiers of a limited kind than allowed."""
    size = int(labels.max()) + 1 if len(labels) else 0
    bad = np.zeros(size, dtype=bool)
    for kind, limit in limits.items():
        counts = np.bincount(labels[kinds == kind], minlength=size)
        bad |= counts > limit
    return np.flatnonzero(bad)


def repair(
    labels: np.ndarray,
    kinds: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    priority: np.ndarray,
    limits: dict[int, int],
    bad: np.ndarray,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Re-resolve the `bad` components, strongest links first, refusing links that break a limit.

    Returns the new labels and the refused links (as node pairs)."""
    labels = labels.copy()
    in_bad = np.zeros(int(labels.max()) + 1, dtype=bool)
    in_bad[bad] = True
    mask = in_bad[labels[a]]
    order = np.lexsort((np.minimum(a[mask], b[mask]), priority[mask]))
    ea, eb = a[mask][order], b[mask][order]

    parent: dict[int, int] = {}
    counts: dict[int, dict[int, int]] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    def tally(x: int) -> dict[int, int]:
        if x not in counts:
            kind = int(kinds[x])
            counts[x] = {kind: 1} if kind in limits else {}
        return counts[x]

    refused: list[tuple[int, int]] = []
    for x, y in zip(ea.tolist(), eb.tolist(), strict=True):
        rx, ry = find(x), find(y)
        if rx == ry:
            continue
        cx, cy = tally(rx), tally(ry)
        if any(cx.get(k, 0) + cy.get(k, 0) > limits[k] for k in cx.keys() | cy.keys()):
            refused.append((x, y))
            continue
        if len(cx) < len(cy):
            rx, ry, cx, cy = ry, rx, cy, cx
        parent[ry] = rx
        for k, v in cy.items():
            cx[k] = cx.get(k, 0) + v
        counts.pop(ry, None)

    members = np.flatnonzero(in_bad[labels])
    next_label = int(labels.max()) + 1
    roots = np.array([find(int(x)) for x in members], dtype=np.int64)
    _, relabel = np.unique(roots, return_inverse=True)
    labels[members] = next_label + relabel
    return labels, refused


def attach_devices(
    labels: np.ndarray, device: np.ndarray, other: np.ndarray, bridge: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Join each device to the one person it was seen with; devices seen with several stay apart.

    `bridge` marks nodes that are record keys rather than a person's identifiers (a checkout
    token): a component of bridges alone (a checkout typed with a placeholder email) is not a
    person, so it does not make a device shared; it follows the device to its person.

    Returns the new labels, and the shared devices with how many persons each was seen with."""
    labels = labels.copy()
    if not len(device):
        return labels, np.empty(0, np.int64), np.empty(0, np.int64)
    is_person = np.bincount(labels[~bridge], minlength=int(labels.max()) + 1) > 0
    pairs = np.unique(np.stack([device, labels[other]], axis=1), axis=0)
    real = pairs[is_person[pairs[:, 1]]]
    devices, first, persons = np.unique(real[:, 0], return_index=True, return_counts=True)
    person_of = np.full(len(labels), -1, dtype=np.int64)
    person_of[devices[persons == 1]] = real[first[persons == 1], 1]
    # A device seen with bridges only: one bridge component is taken as the device's own.
    loose = pairs[~is_person[pairs[:, 1]] & (person_of[pairs[:, 0]] == -1) & ~np.isin(pairs[:, 0], devices)]
    lone, lone_first, lone_count = np.unique(loose[:, 0], return_index=True, return_counts=True)
    person_of[lone[lone_count == 1]] = loose[lone_first[lone_count == 1], 1]
    # Bridges go where their device went (only bridges: persons are never relabelled here).
    follow = pairs[~is_person[pairs[:, 1]] & (person_of[pairs[:, 0]] >= 0)]
    relabel = np.arange(int(labels.max()) + 1)
    relabel[follow[:, 1]] = person_of[follow[:, 0]]
    attached = person_of >= 0
    labels[attached] = person_of[attached]
    labels = relabel[labels]
    shared = persons > 1
    return labels, devices[shared], persons[shared]


def resolve(
    n: int,
    kinds: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    priority: np.ndarray,
    device: np.ndarray,
    device_other: np.ndarray,
    limits: dict[int, int],
    bridge: np.ndarray,
) -> tuple[np.ndarray, list[tuple[int, int]], np.ndarray, np.ndarray]:
    """Steps 1-3 of the module docstring on integer node ids; returns labels, refused links,
    shared devices and the persons each shared device was seen with."""
    labels = components(n, a, b)
    bad = over_limit(labels, kinds, limits)
    refused: list[tuple[int, int]] = []
    if len(bad):
        labels, refused = repair(labels, kinds, a, b, priority, limits, bad)
    labels, shared, persons = attach_devices(labels, device, device_other, bridge)
    return labels, refused, shared, persons


# --------------------------------------------------------------------------------------------
# the dbt model
# --------------------------------------------------------------------------------------------


def _previous_ids(session, this) -> str:
    """SQL for the previous run's node -> customer_id (empty on the first run)."""
    exists = session.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [this.schema, this.identifier],
    ).fetchall()[0][0]
    if exists:
        return f"SELECT node, customer_id FROM {this}"
    return "SELECT NULL::VARCHAR AS node, NULL::VARCHAR AS customer_id WHERE false"


def model(dbt, session):
    dbt.config(materialized="table")
    # A plain statement: dbt finds the config keys a Python model reads by parsing its calls,
    # and does not look inside a comprehension.
    configured_limits = dbt.config.get("identity_limits")
    limits_by_kind: dict[str, int] = {k: v for k, v in (configured_limits or {}).items() if v}
    if not limits_by_kind:
        raise ValueError("int_identity__resolved: no identity_limits configured (var tessera__identity_limits)")

    dbt.ref("int_identity__nodes").create_view("_identity_nodes")
    dbt.ref("int_identity__edges").create_view("_identity_edges")
    previous = session.sql(_previous_ids(session, dbt.this)).to_arrow_table()

    session.execute(
        "CREATE OR REPLACE TEMP TABLE _identity_index AS "
        "SELECT row_number() OVER (ORDER BY node) - 1 AS i, node, kind, is_blocked, block_reason "
        "FROM _identity_nodes"
    )
    index = session.sql("SELECT i, kind FROM _identity_index ORDER BY i").fetchnumpy()
    kind_names, kinds = np.unique(index["kind"], return_inverse=True)
    limits = {int(np.searchsorted(kind_names, k)): v for k, v in limits_by_kind.items() if k in kind_names}
    links = session.sql(
        "SELECT na.i AS a, nb.i AS b, e.priority, e.is_device_link FROM _identity_edges e "
        "JOIN _identity_index na ON na.node = e.node_a JOIN _identity_index nb ON nb.node = e.node_b"
    ).fetchnumpy()
    device_link = links["is_device_link"].astype(bool)
    person = ~device_link
    labels, refused, shared, persons = resolve(
        len(kinds),
        kinds,
        links["a"][person].astype(np.int64),
        links["b"][person].astype(np.int64),
        links["priority"][person].astype(np.int64),
        links["a"][device_link].astype(np.int64),
        links["b"][device_link].astype(np.int64),
        limits,
        index["kind"] == "shopify_checkout",
    )

    notes = np.full(len(kinds), None, dtype=object)
    for device, count in zip(shared.tolist(), persons.tolist(), strict=True):
        notes[device] = f"shared device: seen with {count} persons, linked to none"
    for x, y in refused:
        for node in (x, y):
            notes[node] = notes[node] or "kept apart: a link here would exceed an identifier limit"

    session.register(
        "_identity_labels",
        pa.table({"i": np.arange(len(kinds)), "label": labels, "note": pa.array(notes, type=pa.string())}),
    )
    session.register("_identity_previous", previous)
    return session.sql(_ASSIGN_IDS)


# Customer ids: each person takes the previous id most of its identifiers had (ties: the
# smaller id); an id claimed by several persons (a split) stays with the one holding most of
# its identifiers. Anyone else gets an id derived from their smallest identifier, or, when
# that id is still held by the other part of a split, from the identifier with "split:".
_ASSIGN_IDS = """
WITH labelled AS (
    SELECT x.node, x.kind, x.is_blocked, x.block_reason, l.label, l.note, p.customer_id AS previous_customer_id
    FROM _identity_index x
    JOIN _identity_labels l USING (i)
    LEFT JOIN _identity_previous p USING (node)
),
votes AS (
    SELECT label, previous_customer_id, count(*) AS identifiers
    FROM labelled WHERE previous_customer_id IS NOT NULL
    GROUP BY ALL
),
candidate AS (
    SELECT label, previous_customer_id, identifiers
    FROM votes
    QUALIFY row_number() OVER (PARTITION BY label ORDER BY identifiers DESC, previous_customer_id) = 1
),
kept AS (
    SELECT label, previous_customer_id AS customer_id
    FROM candidate
    QUALIFY row_number() OVER (PARTITION BY previous_customer_id ORDER BY identifiers DESC, label) = 1
),
persons AS (
    SELECT label, min(node) AS first_node, count(*) AS identifiers FROM labelled GROUP BY label
),
fresh AS (
    SELECT p.label,
           'cus_' || left(md5(p.first_node), 16) AS derived,
           'cus_' || left(md5('split:' || p.first_node), 16) AS resplit
    FROM persons p ANTI JOIN kept k USING (label)
),
ids AS (
    SELECT label, customer_id FROM kept
    UNION ALL
    SELECT f.label, CASE WHEN k.customer_id IS NULL THEN f.derived ELSE f.resplit END
    FROM fresh f LEFT JOIN kept k ON k.customer_id = f.derived
)
SELECT
    l.node,
    l.kind,
    ids.customer_id,
    l.previous_customer_id,
    persons.identifiers AS customer_identifiers,
    l.is_blocked,
    coalesce(l.block_reason, l.note) AS resolution_note
FROM labelled l
JOIN ids USING (label)
JOIN persons USING (label)
"""
