"""`make test` spreads modules over workers; conftest keeps each module (and the modules that share
the small world's nights) on one worker, which only works while xdist can read the groups."""

import pytest


def test_this_module_runs_as_one_group(request):
    if not getattr(request.config.option, "loadgroup", False):  # set on the workers of --dist loadgroup
        pytest.skip("only meaningful under `pytest -n N --dist loadgroup` (as `make test` runs)")
    # xdist groups by a suffix it adds to the node id; a pytest that ignores it splits modules.
    assert request.node.nodeid.endswith(f"@{__name__}"), request.node.nodeid
