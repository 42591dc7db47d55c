"""The stitch inside int_identity__resolved.py: components, merge protection, devices.

dbt cannot unit-test a Python model, so its pure functions are tested here on small graphs."""

from __future__ import annotations

import importlib.util

import numpy as np

from orchestration.paths import DBT_PROJECT_DIR

_PATH = DBT_PROJECT_DIR / "models" / "intermediate" / "identity" / "int_identity__resolved.py"
_spec = importlib.util.spec_from_file_location("int_identity__resolved", _PATH)
stitch = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stitch)

EMAIL, PROFILE, DEVICE, CHECKOUT = 0, 1, 2, 3


def _groups(labels: np.ndarray) -> set[frozenset[int]]:
    out: dict[int, set[int]] = {}
    for node, label in enumerate(labels.tolist()):
        out.setdefault(label, set()).add(node)
    return {frozenset(g) for g in out.values()}


def _resolve(kinds, person_links, device_links=(), limits=None, priority=None):
    kinds = np.array(kinds)
    a = np.array([x for x, _ in person_links], dtype=np.int64)
    b = np.array([y for _, y in person_links], dtype=np.int64)
    prio = np.array(priority if priority is not None else [1] * len(a), dtype=np.int64)
    dev = np.array([d for d, _ in device_links], dtype=np.int64)
    other = np.array([o for _, o in device_links], dtype=np.int64)
    return stitch.resolve(len(kinds), kinds, a, b, prio, dev, other, limits or {}, kinds == CHECKOUT)


def test_a_long_chain_is_one_person_in_one_pass():
    n = 5000
    labels, refused, _, _ = _resolve([EMAIL] * n, [(i, i + 1) for i in range(n - 1)])
    assert len(set(labels.tolist())) == 1 and refused == []


def test_a_component_over_a_limit_gives_way_at_its_weakest_link():
    # Two people, each an email with a profile, glued by a weak link (priority 5) between the
    # emails: two profiles exceed the limit of one, so the weak link is refused.
    kinds = [EMAIL, PROFILE, EMAIL, PROFILE]
    links = [(0, 1), (2, 3), (0, 2)]
    labels, refused, _, _ = _resolve(kinds, links, limits={PROFILE: 1}, priority=[1, 1, 5])
    assert _groups(labels) == {frozenset({0, 1}), frozenset({2, 3})}
    assert refused == [(0, 2)]
    # Without the limit, the same links make one person.
    labels, _, _, _ = _resolve(kinds, links, priority=[1, 1, 5])
    assert len(set(labels.tolist())) == 1


def test_a_device_joins_the_one_person_it_was_seen_with():
    kinds = [EMAIL, PROFILE, DEVICE]
    labels, _, shared, _ = _resolve(kinds, [(0, 1)], device_links=[(2, 0)])
    assert len(set(labels.tolist())) == 1 and len(shared) == 0


def test_a_device_seen_with_two_people_joins_neither_and_never_joins_them():
    kinds = [EMAIL, EMAIL, DEVICE]
    labels, _, shared, persons = _resolve(kinds, [], device_links=[(2, 0), (2, 1)])
    assert _groups(labels) == {frozenset({0}), frozenset({1}), frozenset({2})}
    assert shared.tolist() == [2] and persons.tolist() == [2]


def test_a_checkout_without_a_person_follows_its_device():
    # A checkout typed with a placeholder email (no person identifier left) on a device someone
    # logged in on: the device is not shared, and the checkout goes with it.
    kinds = [EMAIL, DEVICE, CHECKOUT]
    labels, _, shared, _ = _resolve(kinds, [], device_links=[(1, 0), (1, 2)])
    assert len(set(labels.tolist())) == 1 and len(shared) == 0


def test_a_device_with_only_a_checkout_keeps_it():
    kinds = [DEVICE, CHECKOUT]
    labels, _, _, _ = _resolve(kinds, [], device_links=[(0, 1)])
    assert len(set(labels.tolist())) == 1


def test_a_device_with_two_guest_checkouts_keeps_both():
    # A second guest checkout on a device no person was seen on: device and both checkouts stay
    # one customer (before, the device left both, and each checkout became a customer alone).
    kinds = [DEVICE, CHECKOUT, CHECKOUT]
    labels, _, shared, _ = _resolve(kinds, [], device_links=[(0, 1), (0, 2)])
    assert len(set(labels.tolist())) == 1 and len(shared) == 0
    # Next to a device with one guest checkout of its own, nothing is merged across devices.
    kinds = [DEVICE, CHECKOUT, CHECKOUT, DEVICE, CHECKOUT]
    labels, _, _, _ = _resolve(kinds, [], device_links=[(0, 1), (0, 2), (3, 4)])
    assert _groups(labels) == {frozenset({0, 1, 2}), frozenset({3, 4})}


def _previous(ids: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    names = np.array(sorted({i for i in ids if i}), dtype=object)
    codes = np.array([list(names).index(i) if i else -1 for i in ids], dtype=np.int64)
    return codes, names


def test_new_customers_get_ids_from_their_identifiers_not_from_the_numbering():
    hashes = np.array([50, 10, 40, 30], dtype=np.uint64)
    none = _previous([None] * 4)
    first = stitch.stable_ids(np.array([0, 0, 1, 1]), hashes, *none)
    renumbered = stitch.stable_ids(np.array([1, 1, 0, 0]), hashes, *none)
    assert list(first) == list(renumbered[[1, 0]])
    assert first[0] != first[1]


def test_a_merge_keeps_the_majority_id_and_a_split_leaves_it_with_the_larger_part():
    hashes = np.arange(1, 7, dtype=np.uint64)
    previous = _previous(["cus_a", "cus_a", "cus_a", "cus_b", "cus_b", None])
    merged = stitch.stable_ids(np.zeros(6, dtype=np.int64), hashes, *previous)
    assert list(merged) == ["cus_a"]

    previous = _previous(["cus_a"] * 6)
    split = stitch.stable_ids(np.array([0, 0, 0, 0, 1, 1]), hashes, *previous)
    assert split[0] == "cus_a" and split[1] not in ("cus_a", None)
