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
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
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
    members = np.flatnonzero(in_bad[labels])
    mask = in_bad[labels[a]]
    ea, eb, ep = a[mask], b[mask], priority[mask]
    # An identifier of an unlimited kind on a single link (a checkout token) adds to no tally:
    # its link is never refused and sways no other decision, so it joins its neighbour afterwards
    # instead of costing a pass of the loop below.
    limited = np.zeros(int(max(kinds.max(initial=0), *limits, 0)) + 1, dtype=bool)
    limited[list(limits)] = True
    degree = np.bincount(np.concatenate([ea, eb]), minlength=len(labels))
    leaf_a = (degree[ea] == 1) & ~limited[kinds[ea]]
    leaf_b = (degree[eb] == 1) & ~limited[kinds[eb]] & ~leaf_a
    leaves = np.concatenate([ea[leaf_a], eb[leaf_b]])
    stems = np.concatenate([eb[leaf_a], ea[leaf_b]])
    rest = ~(leaf_a | leaf_b)
    ea, eb, ep = ea[rest], eb[rest], ep[rest]
    ta, tb = tiebreak[ea], tiebreak[eb]
    order = np.lexsort((np.maximum(ta, tb), np.minimum(ta, tb), ep))
    ea, eb = ea[order], eb[order]

    # Union-find on the members numbered 0..m-1: Python lists index far faster than dicts, and
    # the loop is the one part of the stitch that cannot be vectorized (each decision depends
    # on the ones before).
    parent = list(range(len(members)))
    counts = [{kind: 1} if kind in limits else {} for kind in kinds[members].tolist()]
    refused_at: list[int] = []
    local_a = np.searchsorted(members, ea).tolist()
    local_b = np.searchsorted(members, eb).tolist()
    for i, (x, y) in enumerate(zip(local_a, local_b, strict=True)):
        rx = x
        while parent[rx] != rx:
            rx = parent[rx]
        while parent[x] != rx:
            parent[x], x = rx, parent[x]
        ry = y
        while parent[ry] != ry:
            ry = parent[ry]
        while parent[y] != ry:
            parent[y], y = ry, parent[y]
        if rx == ry:
            continue
        cx, cy = counts[rx], counts[ry]
        if len(cx) < len(cy):
            rx, ry, cx, cy = ry, rx, cy, cx
        # Each part is within the limits already: only a kind both hold can go over.
        if any(k in cx and cx[k] + v > limits[k] for k, v in cy.items()):
            refused_at.append(i)
            continue
        parent[ry] = rx
        for k, v in cy.items():
            cx[k] = cx.get(k, 0) + v
        counts[ry] = {}

    roots = np.asarray(parent, dtype=np.int64)
    while True:  # pointer jumping: every member straight to its root
        up = roots[roots]
        if np.array_equal(up, roots):
            break
        roots = up
    root_of_leaf = roots[np.searchsorted(members, stems)]
    roots[np.searchsorted(members, leaves)] = root_of_leaf
    _, relabel = np.unique(roots, return_inverse=True)
    labels[members] = int(labels.max()) + 1 + relabel
    refused = list(zip(ea[refused_at].tolist(), eb[refused_at].tolist(), strict=True))
    return labels, refused


def attach_devices(
    labels: np.ndarray, device: np.ndarray, other: np.ndarray, bridge: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Join each device to the one person it was seen with; devices seen with several stay apart.

    `bridge` marks nodes that are record keys rather than a person's identifiers (a checkout
    token): a component of bridges alone (a checkout typed with a placeholder email) is not a
    person, so it does not make a device shared; it follows the device to its person. A device
    seen with bridges only is one anonymous customer with all of them.

    Returns the new labels, and the shared devices with how many persons each was seen with."""
    labels = labels.copy()
    if not len(device):
        return labels, np.empty(0, np.int64), np.empty(0, np.int64)
    size = int(labels.max()) + 1
    is_person = np.bincount(labels[~bridge], minlength=size) > 0
    # (device, person) pairs, de-duplicated as one int64 each: far faster than a 2-D unique.
    encoded = _distinct(device.astype(np.int64) * size + labels[other])
    pairs = np.stack([encoded // size, encoded % size], axis=1)
    real = pairs[is_person[pairs[:, 1]]]
    devices, first, persons = np.unique(real[:, 0], return_index=True, return_counts=True)
    person_of = np.full(len(labels), -1, dtype=np.int64)
    person_of[devices[persons == 1]] = real[first[persons == 1], 1]
    # A device seen with bridges only (guest checkouts and no person): its first bridge
    # component is taken as the device's own, and the others follow it below, so a second
    # guest checkout neither moves the device to a new customer nor leaves a checkout alone.
    loose = pairs[~is_person[pairs[:, 1]] & (person_of[pairs[:, 0]] == -1) & ~np.isin(pairs[:, 0], devices)]
    lone, lone_first = np.unique(loose[:, 0], return_index=True)
    person_of[lone] = loose[lone_first, 1]
    # Bridges go where their device went (only bridges: persons are never relabelled here).
    follow = pairs[~is_person[pairs[:, 1]] & (person_of[pairs[:, 0]] >= 0)]
    relabel = np.arange(int(labels.max()) + 1)
    relabel[follow[:, 1]] = person_of[follow[:, 0]]
    attached = person_of >= 0
    labels[attached] = person_of[attached]
    labels = relabel[labels]
    shared = persons > 1
    return labels, devices[shared], persons[shared]


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values. A plain `np.unique` takes a hash-table path that is two orders of
    magnitude slower than sorting on millions of int64 keys shaped like these (measured 4 s
    against 0.05 s for 2M)."""
    ordered = np.sort(values)
    return ordered[np.concatenate([[True], ordered[1:] != ordered[:-1]])] if len(ordered) else ordered


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


def _previous_ids(session, this) -> tuple[np.ndarray, np.ndarray, pa.Array]:
    """The previous run's ids: (node hashes, their id codes, the ids in sorted order).

    Codes index the sorted distinct ids, so the vote below works on integers, never on
    millions of Python strings. Empty on the first run."""
    exists = session.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [this.schema, this.identifier],
    ).fetchall()[0][0]
    if not exists:
        return np.empty(0, np.uint64), np.empty(0, np.int64), pa.array([], type=pa.string())
    # Only the distinct ids travel as text, sorted by DuckDB; each node's id comes as a 64-bit
    # hash of it, looked up among theirs (an integer probe, not ten million strings to encode).
    ids = session.sql(
        f"SELECT customer_id, hash(customer_id) AS c FROM (SELECT DISTINCT customer_id FROM {this} "
        "WHERE customer_id IS NOT NULL) ORDER BY customer_id"
    ).to_arrow_table()
    id_index = pd.Index(ids.column("c").to_numpy())
    if not id_index.is_unique:
        raise ValueError(f"int_identity__resolved: two customer ids of {this} share a 64-bit hash; rename one")
    rows = session.sql(f"SELECT hash(node) AS h, hash(customer_id) AS c FROM {this} WHERE customer_id IS NOT NULL")
    rows = rows.fetchnumpy()
    return rows["h"], id_index.get_indexer(rows["c"]).astype(np.int64), ids.column("customer_id").combine_chunks()


def stable_ids(labels: np.ndarray, hashes: np.ndarray, previous: np.ndarray, names: np.ndarray) -> np.ndarray:
    """A customer id per label (step 4 of the module docstring), as Python strings.

    `previous` holds each node's previous id as an index into `names` (sorted ids), -1 when
    the node is new. A person takes the previous id most of its nodes had (ties: the smaller
    id); an id claimed by several persons stays with the one holding most of its nodes (ties:
    the person with the smaller hash). Others get an id from the smallest node hash they hold,
    re-derived when that id is taken."""
    ids = stable_id_array(labels, hashes, previous, pa.array(list(names), type=pa.string()))
    return np.asarray(ids.to_pylist(), dtype=object)


def stable_id_array(labels: np.ndarray, hashes: np.ndarray, previous: np.ndarray, names: pa.Array) -> pa.Array:
    """`stable_ids` as an Arrow string array: millions of ids never become Python objects."""
    n_labels = int(labels.max()) + 1 if len(labels) else 0
    anchor = np.full(n_labels, np.iinfo(np.uint64).max, dtype=np.uint64)
    np.minimum.at(anchor, labels, hashes)
    kept_code = np.full(n_labels, -1, dtype=np.int64)
    known = previous >= 0
    if known.any():
        # (label, id) votes as one int64 each: a sort of integers, not a group-by of pairs.
        width = len(names)
        pairs, votes = np.unique(labels[known].astype(np.int64) * width + previous[known], return_counts=True)
        label, code = pairs // width, pairs % width
        best = _first_per_group(label, np.lexsort((code, -votes, label)))
        label, code, votes = label[best], code[best], votes[best]
        kept = _first_per_group(code, np.lexsort((anchor[label], -votes, code)))
        kept_code[label[kept]] = code[kept]
    fresh = np.flatnonzero(kept_code < 0)
    fresh_anchor = anchor[fresh]
    candidates = _customer_ids(fresh_anchor)
    if len(fresh) < n_labels:  # the other part of a split may already hold the candidate
        taken = names.take(pa.array(kept_code[kept_code >= 0]))
        clash = pc.is_in(candidates, value_set=taken).to_numpy(zero_copy_only=False)
        if clash.any():
            fresh_anchor[clash] ^= np.uint64(0x5BD1E995)
            candidates = _customer_ids(fresh_anchor)
    position = kept_code
    position[fresh] = len(names) + np.arange(len(fresh))
    return pa.concat_arrays([names.cast(pa.string()), candidates]).take(pa.array(position))


def _first_per_group(groups: np.ndarray, order: np.ndarray) -> np.ndarray:
    """The first index of `order` (sorted by `groups` first) in each run of equal groups."""
    ordered = groups[order]
    return order[np.concatenate([[True], ordered[1:] != ordered[:-1]])] if len(order) else order


def _customer_ids(anchors: np.ndarray) -> pa.Array:
    """`cus_` and 16 hex digits of each anchor, written as bytes in bulk, not one f-string each."""
    width = 20
    text = np.empty((len(anchors), width), dtype=np.uint8)
    text[:, :4] = np.frombuffer(b"cus_", dtype=np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    values = anchors.astype(np.uint64)
    for i in range(16):
        text[:, 4 + i] = digits[(values >> np.uint64(60 - 4 * i)) & np.uint64(15)]
    offsets = np.arange(0, width * (len(anchors) + 1), width, dtype=np.int32)
    return pa.StringArray.from_buffers(len(anchors), pa.py_buffer(offsets), pa.py_buffer(text))


def node_positions(index: pd.Index, hashes: np.ndarray, what: str) -> np.ndarray:
    """Position of each hash among the nodes (one hash-table probe each, in any order)."""
    positions = index.get_indexer(hashes)
    if len(positions) and positions.min() < 0:
        raise ValueError(f"int_identity__resolved: {what} names an identifier missing from int_identity__nodes")
    return positions


def model(dbt, session):
    dbt.config(materialized="table")
    # A plain statement: dbt finds the config keys a Python model reads by parsing its calls,
    # and does not look inside a comprehension.
    configured_limits = dbt.config.get("identity_limits")
    limits_by_kind: dict[str, int] = {k: v for k, v in (configured_limits or {}).items() if v}
    if not limits_by_kind:
        raise ValueError("int_identity__resolved: no identity_limits configured (var tessera__identity_limits)")

    # Views in the warehouse's main schema, read just below and dropped right after (left
    # there, they would sit beside the marts for anyone browsing the warehouse).
    dbt.ref("int_identity__nodes").create_view("_identity_nodes")
    dbt.ref("int_identity__edges").create_view("_identity_edges")
    try:
        resolved = _resolve_identifiers(dbt, session, limits_by_kind)
    finally:
        session.execute("DROP VIEW IF EXISTS _identity_nodes")
        session.execute("DROP VIEW IF EXISTS _identity_edges")
    session.register("_identity_resolved_rows", resolved)
    return session.sql("SELECT * FROM _identity_resolved_rows")


def _resolve_identifiers(dbt, session, limits_by_kind: dict[str, int]) -> pa.Table:
    """Every identifier with its customer, as the table this model writes."""
    previous_hashes, previous_codes, previous_names = _previous_ids(session, dbt.this)

    # The nodes are read once, in one order, and the result is written in that same order: no
    # join back on the node text. Edges find their nodes by a 64-bit hash of the text, an
    # integer lookup; nothing here sorts ten million strings.
    kind_names = [k for (k,) in session.execute("SELECT DISTINCT kind FROM _identity_nodes ORDER BY 1").fetchall()]
    kind_list = "[" + ", ".join("'" + k.replace("'", "''") + "'" for k in kind_names) + "]"
    nodes = session.sql(
        f"SELECT node, hash(node) AS h, (list_position({kind_list}, kind) - 1)::INTEGER AS kind, "
        "is_blocked, block_reason FROM _identity_nodes"
    ).to_arrow_table()
    hashes = nodes.column("h").to_numpy()
    kinds = nodes.column("kind").to_numpy()
    nodes = nodes.drop_columns(["h", "kind"])  # copied out above
    index = pd.Index(hashes)
    if not index.is_unique:
        raise ValueError("int_identity__resolved: two identifiers share a 64-bit hash; rename one")

    previous_ids = np.full(len(kinds), -1, dtype=np.int64)
    if len(previous_hashes):
        at = index.get_indexer(previous_hashes)
        still = at >= 0
        previous_ids[at[still]] = previous_codes[still]
        del at, still
    del previous_hashes, previous_codes

    links = session.sql(
        "SELECT hash(node_a) AS a, hash(node_b) AS b, priority, is_device_link FROM _identity_edges"
    ).fetchnumpy()
    a = node_positions(index, links.pop("a"), "an edge")
    b = node_positions(index, links.pop("b"), "an edge")
    del index  # the largest structure here: gone before the stitch needs its memory
    device_link = links.pop("is_device_link").astype(bool)
    person = ~device_link
    person_a, person_b, priority = a[person], b[person], links.pop("priority")[person].astype(np.int64)
    device, device_other = a[device_link], b[device_link]
    del a, b, links, device_link, person
    limits = {kind_names.index(k): v for k, v in limits_by_kind.items() if k in kind_names}
    checkout = kind_names.index("shopify_checkout") if "shopify_checkout" in kind_names else -1
    labels, refused, shared, persons = resolve(
        len(kinds), kinds, person_a, person_b, priority, device, device_other, limits, kinds == checkout, hashes
    )
    del person_a, person_b, priority, device, device_other
    customer_of_label = stable_id_array(labels, hashes, previous_ids, previous_names)
    del hashes

    note_texts = ["kept apart: a link here would exceed an identifier limit"]
    note_codes = np.full(len(kinds), -1, dtype=np.int32)
    if refused:
        note_codes[np.asarray(refused, dtype=np.int64).ravel()] = 0
    for count in np.unique(persons).tolist():
        note_texts.append(f"shared device: seen with {count} persons, linked to none")
        note_codes[shared[persons == count]] = len(note_texts) - 1
    notes = pa.array(note_texts, type=pa.string()).take(pa.array(note_codes, mask=note_codes < 0))
    # The customer id decoded to plain strings (measured a little faster to write); the kind and
    # the previous id stay dictionary-encoded, which holds ~300 MB less while DuckDB writes.
    resolved = pa.table(
        {
            "node": nodes.column("node"),
            "kind": pa.DictionaryArray.from_arrays(kinds, pa.array(kind_names, type=pa.string())),
            "customer_id": customer_of_label.take(labels),
            "previous_customer_id": pa.DictionaryArray.from_arrays(
                pa.array(previous_ids.astype(np.int32), mask=previous_ids < 0), previous_names
            ),
            "customer_identifiers": np.bincount(labels)[labels],
            "is_blocked": nodes.column("is_blocked"),
            "resolution_note": pc.coalesce(nodes.column("block_reason"), notes),
        }
    )
    del nodes, labels, kinds, previous_ids, note_codes, notes
    # Arrow's allocator keeps freed buffers for reuse; hand them back before DuckDB writes.
    pa.default_memory_pool().release_unused()
    return resolved
