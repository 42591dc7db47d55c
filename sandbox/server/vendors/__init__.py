"""Vendor modules: one per vendor API, each defining `mount(state)` and `error_response()`."""
