"""Audiences read from dbt's manifest: the activation block of each model, as the analyst wrote it,
and a clear refusal of a block that cannot be pushed as written."""

from __future__ import annotations

import pytest

from activation.audiences import AudienceConfigError, audience_from_node, load_audiences
from orchestration.paths import DBT_PROJECT_DIR

MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"


def test_the_abandoned_cart_audience_is_read_as_its_yml_writes_it():
    audiences = {a.name: a for a in load_audiences(MANIFEST)}
    carts = audiences["abandoned_checkouts"]
    assert carts.destinations == ("klaviyo", "mailchimp")
    assert carts.audience.klaviyo_list == "Abandoned checkout (24h)"
    assert carts.audience.mailchimp_tag == "abandoned_checkout_24h"
    assert (carts.audience.event, carts.event_id_column) == ("Abandoned Checkout", "checkout_token")
    assert carts.guard_max_change_share == 0.75  # a rolling window: its own, wider guard
    assert carts.holdout_share == 0.1  # the default
    assert {"checkout_token", "cart_value", "items"} <= set(carts.audience.properties)
    assert (carts.schema, carts.table) == ("marts", "abandoned_checkouts")
    # Every segment under marts/segments is an audience too, and nothing else is.
    assert {name for name in audiences if name.startswith("seg_")} and all(
        name.startswith("seg_") or name == "abandoned_checkouts" for name in audiences
    )


def _node(**activation) -> dict:
    block = {"destinations": ["klaviyo"], "klaviyo_list": "VIP", "properties": ["orders"], **activation}
    return {
        "name": "seg_vip",
        "schema": "marts",
        "config": {"meta": {"activation": block}},
        "columns": {"email": {}, "orders": {}, "checkout_token": {}},
    }


def test_a_model_without_an_activation_block_is_no_audience():
    node = _node()
    node["config"]["meta"] = {}
    assert audience_from_node(node) is None


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ({"holdout_share": 1.5}, "holdout_share must be between 0 and 1, got 1.5"),
        ({"guard_max_change_share": -0.1}, "guard_max_change_share must be between 0 and 1"),
        ({"destinations": ["klaviyo", "hubspot"]}, "destinations must list some of"),
        ({"destinations": []}, "destinations must list some of"),
        ({"klaviyo_list": None}, "pushes to klaviyo but has no meta.activation.klaviyo_list"),
        ({"destinations": ["mailchimp"]}, "pushes to mailchimp but has no meta.activation.mailchimp_tag"),
        ({"event": "Abandoned Checkout"}, "needs both `event` and `event_id`, or neither"),
        ({"event_id": "checkout_token"}, "needs both `event` and `event_id`, or neither"),
        ({"properties": ["orders", "lifetime_value"]}, "names columns the model does not document: ['lifetime_value']"),
    ],
)
def test_a_block_that_cannot_be_pushed_as_written_is_refused_naming_the_model(change, refusal):
    node = _node(**change)
    with pytest.raises(AudienceConfigError) as error:
        audience_from_node(node)
    assert str(error.value).startswith("seg_vip: ") and refusal in str(error.value)


def test_a_sound_block_gives_the_audience_it_describes():
    config = audience_from_node(_node(event="VIP Joined", event_id="checkout_token", holdout_share=0))
    assert config.destinations == ("klaviyo",) and config.audience.mailchimp_tag is None
    assert config.holdout_share == 0.0 and config.event_id_column == "checkout_token"
