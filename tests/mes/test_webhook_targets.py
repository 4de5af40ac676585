"""Webhooks reach public hosts only (SSRF): checked at registration for addresses, at each attempt for names
(tests/mes/test_alert_engine.py, with real resolution of localhost names), unless the plant allows a range
(MES_WEBHOOK_ALLOW_PRIVATE)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.settings import Settings
from mes.rules.webhooks import networks, refusal
from tests.support.http import ok, refused


@pytest.mark.parametrize("address, kind", [
    ("127.0.0.1", "loopback"), ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback"), ("169.254.169.254", "link-local"),
    ("fe80::1%eth0", "link-local"), ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("fd00::1", "private"), ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"), ("100.64.0.1", "not public")])
def test_addresses_outside_the_public_internet_are_refused_with_what_they_are(address, kind):
    assert f"is {kind}:" in refusal(address, ())


def test_public_addresses_are_allowed_and_an_allowed_range_opens_only_itself():
    assert refusal("93.184.215.14", ()) is None and refusal("2606:4700::1", ()) is None
    allowed = networks(["10.1.0.0/16"])
    assert refusal("10.1.200.7", allowed) is None
    assert refusal("10.2.0.1", allowed) is not None and refusal("127.0.0.1", allowed) is not None


@given(st.ip_addresses(v=4))
def test_an_address_is_allowed_exactly_when_public_or_in_an_allowed_range(address):
    allowed = networks(["192.168.0.0/16"])
    expected_allowed = address.is_global and not address.is_multicast or address in allowed[0]
    assert (refusal(str(address), allowed) is None) == expected_allowed


def test_a_webhook_to_an_address_not_public_is_refused_at_registration(api):
    for url in ("http://169.254.169.254/latest/meta-data/", "http://127.0.0.1:8000/x", "http://[::1]/x", "https://10.0.0.1/x"):
        refused(api.put("/webhooks/ops", json={"url": url}), 422, "webhooks go to public hosts only")
    assert ok(api.get("/webhooks")) == []


def test_the_settings_take_allowed_ranges_comma_separated(monkeypatch):
    monkeypatch.setenv("MES_WEBHOOK_ALLOW_PRIVATE", "10.1.0.0/16, 127.0.0.1")
    assert Settings().webhook_allow_private == ["10.1.0.0/16", "127.0.0.1/32"]
    monkeypatch.setenv("MES_WEBHOOK_ALLOW_PRIVATE", "not-a-range")
    with pytest.raises(ValueError):
        Settings()
