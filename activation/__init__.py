"""Activation: push audiences from the warehouse to the email platforms.

Plain Python, usable without Dagster: `activation.destinations` holds one client per email
platform behind the `Destination` protocol; the sync engine diffs each audience against its
ledger and sends only the changes, consent first.
"""
