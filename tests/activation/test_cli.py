"""`python -m activation sync` and a platform the shop does not use (its load turned off)."""

from __future__ import annotations

from activation.cli import main


def test_a_turned_off_platform_named_for_a_push_is_refused(monkeypatch, capsys):
    monkeypatch.setenv("SOURCES__MAILCHIMP__ENABLED", "false")
    assert main(["sync", "--destination", "mailchimp", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "mailchimp is turned off (SOURCES__MAILCHIMP__ENABLED=false): nothing is pushed there" in err


def test_a_turned_off_platform_is_left_out_of_a_push_to_every_platform(monkeypatch, capsys):
    monkeypatch.setenv("SOURCES__MAILCHIMP__ENABLED", "false")
    # No Klaviyo key: the push stops there, having left Mailchimp out rather than asked for its settings.
    monkeypatch.setenv("ACTIVATION__KLAVIYO__API_KEY", "")
    monkeypatch.delenv("SOURCES__KLAVIYO__API_KEY", raising=False)
    assert main(["sync", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "mailchimp is turned off" in err
    assert "klaviyo: set ACTIVATION__KLAVIYO__API_KEY" in err
    assert "MAILCHIMP__API_KEY" not in err
