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
    tiebreak: np.ndarray,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Re-resolve the `bad` components, strongest links first, refusing links that break a limit.

    Links of equal strength are taken in the order of `tiebreak` (a per-node key that does not
    depend on how nodes were numbered), so a rerun on the same data refuses the same links.
    Returns the new labels and the refused links (as node pairs)."""
    labels = labels.copy()
    in_bad = np.zeros(int(labels.max()) + 1, dtype=bool)
    in_bad[bad] = True
    mask = in_bad[labels[a]]
    ta, tb = tiebreak[a[mask]], tiebreak[b[mask]]
    order = np.lexsort((np.maximum(ta, tb), np.minimum(ta, tb), priority[mask]))
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
    size = int(labels.max()) + 1
    is_person = np.bincount(labels[~bridge], minlength=size) > 0
    # (device, person) pairs, de-duplicated as one int64 each: far faster than a 2-D unique.
    encoded = np.unique(device.astype(np.int64) * size + labels[other])
    pairs = np.stack([encoded // size, encoded % size], axis=1)
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
    tiebreak: np.ndarray | None = None,
) -> tuple[np.ndarray, list[tuple[int, int]], np.ndarray, np.ndarray]:
    """Steps 1-3 of the module docstring on integer node ids; returns labels, refused links,
    shared devices and the persons each shared device was seen with."""
    labels = components(n, a, b)
    bad = over_limit(labels, kinds, limits)
    refused: list[tuple[int, int]] = []
    if len(bad):
        keys = np.arange(n) if tiebreak is None else tiebreak
        labels, refused = repair(labels, kinds, a, b, priority, limits, bad, keys)
    labels, shared, persons = attach_devices(labels, device, device_other, bridge)
    return labels, refused, shared, persons


# --------------------------------------------------------------------------------------------
# the dbt model
# --------------------------------------------------------------------------------------------


def _previous_ids(session, this) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The previous run's ids: (node hashes, their id codes, the ids in sorted order).

    Codes index the sorted distinct ids, so the vote below works on integers, never on
    millions of Python strings. Empty on the first run."""
    exists = session.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [this.schema, this.identifier],
    ).fetchall()[0][0]
    if not exists:
        return np.empty(0, np.uint64), np.empty(0, np.int64), np.empty(0, object)
    session.execute(
        "CREATE OR REPLACE TEMP TABLE _identity_previous_ids AS SELECT customer_id, "
        f"row_number() OVER (ORDER BY customer_id) - 1 AS code FROM (SELECT DISTINCT customer_id FROM {this})"
    )
    names = session.sql("SELECT customer_id FROM _identity_previous_ids ORDER BY code").fetchnumpy()["customer_id"]
    rows = session.sql(
        f"SELECT hash(p.node) AS h, i.code FROM {this} p JOIN _identity_previous_ids i USING (customer_id)"
    ).fetchnumpy()
    return rows["h"].astype(np.uint64), rows["code"].astype(np.int64), np.asarray(names, dtype=object)


def stable_ids(labels: np.ndarray, hashes: np.ndarray, previous: np.ndarray, names: np.ndarray) -> np.ndarray:
    """A customer id per label (step 4 of the module docstring).

    `previous` holds each node's previous id as an index into `names` (sorted ids), -1 when
    the node is new. A person takes the previous id most of its nodes had (ties: the smaller
    id); an id claimed by several persons stays with the one holding most of its nodes (ties:
    the person with the smaller hash). Others get an id from the smallest node hash they hold,
    re-derived when that id is taken."""
    import pandas as pd

    n_labels = int(labels.max()) + 1 if len(labels) else 0
    anchor = np.full(n_labels, np.iinfo(np.uint64).max, dtype=np.uint64)
    _group_min(anchor, labels, hashes)
    chosen = np.full(n_labels, None, dtype=object)
    known = previous >= 0
    if known.any():
        votes = pd.DataFrame({"label": labels[known], "id": previous[known]})
        votes = votes.groupby(["label", "id"], sort=False).size().reset_index(name="n")
        votes["anchor"] = anchor[votes["label"].to_numpy()]
        best = votes.sort_values(["label", "n", "id"], ascending=[True, False, True]).drop_duplicates("label")
        kept = best.sort_values(["id", "n", "anchor"], ascending=[True, False, True]).drop_duplicates("id")
        chosen[kept["label"].to_numpy()] = names[kept["id"].to_numpy()]
    fresh = np.flatnonzero(pd.isna(chosen))
    if not len(fresh):
        return chosen
    taken = set(chosen[pd.notna(chosen)].tolist())
    for label in fresh.tolist():
        candidate = f"cus_{int(anchor[label]):016x}"
        if candidate in taken:  # the other part of a split already holds it
            candidate = f"cus_{int(anchor[label]) ^ 0x5BD1E995:016x}"
        chosen[label] = candidate
    return chosen


def _group_min(out: np.ndarray, groups: np.ndarray, values: np.ndarray) -> None:
    import pandas as pd

    minimum = pd.Series(values).groupby(groups, sort=False).min()
    out[minimum.index.to_numpy()] = minimum.to_numpy(dtype=np.uint64)


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
    previous_hashes, previous_codes, previous_names = _previous_ids(session, dbt.this)

    # Nodes are numbered by position and keyed by a 64-bit hash of their text: joins on the
    # hash are integer joins, and nothing here sorts ten million strings.
    kind_names = [k for (k,) in session.execute("SELECT DISTINCT kind FROM _identity_nodes ORDER BY 1").fetchall()]
    kind_list = "[" + ", ".join("'" + k.replace("'", "''") + "'" for k in kind_names) + "]"
    nodes = session.sql(
        f"SELECT hash(node) AS h, list_position({kind_list}, kind) - 1 AS kind FROM _identity_nodes"
    ).fetchnumpy()
    hashes = nodes["h"].astype(np.uint64)
    kinds = nodes["kind"].astype(np.int64)
    sorter = np.argsort(hashes)
    sorted_hashes = hashes[sorter]
    if len(hashes) > 1 and (np.diff(sorted_hashes) == 0).any():
        raise ValueError("int_identity__resolved: two identifiers share a 64-bit hash; rename one")

    def position(h: np.ndarray) -> np.ndarray:
        # searchsorted on a sorted copy: with `sorter=` numpy gathers at random on every probe.
        return sorter[np.searchsorted(sorted_hashes, h)]

    links = session.sql(
        "SELECT hash(node_a) AS a, hash(node_b) AS b, priority, is_device_link FROM _identity_edges"
    ).fetchnumpy()
    a, b = position(links["a"].astype(np.uint64)), position(links["b"].astype(np.uint64))
    device_link = links["is_device_link"].astype(bool)
    person = ~device_link
    limits = {kind_names.index(k): v for k, v in limits_by_kind.items() if k in kind_names}
    checkout = kind_names.index("shopify_checkout") if "shopify_checkout" in kind_names else -1
    labels, refused, shared, persons = resolve(
        len(kinds),
        kinds,
        a[person],
        b[person],
        links["priority"][person].astype(np.int64),
        a[device_link],
        b[device_link],
        limits,
        kinds == checkout,
        hashes,
    )

    previous_ids = np.full(len(kinds), -1, dtype=np.int64)
    if len(previous_hashes):
        at = np.searchsorted(sorted_hashes, previous_hashes).clip(0, len(hashes) - 1)
        still = sorted_hashes[at] == previous_hashes
        previous_ids[sorter[at[still]]] = previous_codes[still]
    customer_of_label = stable_ids(labels, hashes, previous_ids, previous_names)

    # Notes as a dictionary-encoded column: a handful of texts over millions of rows.
    note_texts = ["kept apart: a link here would exceed an identifier limit"]
    note_codes = np.full(len(kinds), -1, dtype=np.int32)
    for x, y in refused:
        note_codes[x] = note_codes[y] = 0
    for count in np.unique(persons).tolist():
        note_texts.append(f"shared device: seen with {count} persons, linked to none")
        note_codes[shared[persons == count]] = len(note_texts) - 1
    sizes = np.bincount(labels)
    session.register(
        "_identity_labels",
        pa.table(
            {
                "h": hashes,
                "customer_id": pa.DictionaryArray.from_arrays(labels, pa.array(customer_of_label, type=pa.string())),
                "previous_customer_id": pa.DictionaryArray.from_arrays(
                    pa.array(previous_ids, mask=previous_ids < 0), pa.array(previous_names, type=pa.string())
                ),
                "customer_identifiers": sizes[labels],
                "note": pa.DictionaryArray.from_arrays(
                    pa.array(note_codes, mask=note_codes < 0), pa.array(note_texts, type=pa.string())
                ),
            }
        ),
    )
    return session.sql(
        "SELECT n.node, n.kind, l.customer_id::VARCHAR AS customer_id, "
        "l.previous_customer_id::VARCHAR AS previous_customer_id, l.customer_identifiers, n.is_blocked, "
        "coalesce(n.block_reason, l.note::VARCHAR) AS resolution_note "
        "FROM _identity_nodes n JOIN _identity_labels l ON hash(n.node) = l.h"
    )
