"""The store contract, unchanged, against PostgreSQL (several workers or hosts share one database there)."""

from __future__ import annotations

import pytest
from journal_contract import StoreContract

pytestmark = pytest.mark.postgres


class TestStoreContractOnPostgres(StoreContract):
    """Every contract test, in a fresh PostgreSQL schema per test."""
