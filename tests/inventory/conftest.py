"""Every inventory test with a database ends with its balances checked against its ledger."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _balances_checked(balances_match_ledger: None) -> None:
    """Uses `balances_match_ledger` (tests/conftest.py) for every test here."""
