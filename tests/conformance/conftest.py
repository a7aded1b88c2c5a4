"""Every test here runs once per venue in `VENUES`: a broker that passes them all speaks the contract."""

from __future__ import annotations

import pytest

from conformance.venues import VENUES


@pytest.fixture(params=sorted(VENUES))
def venue(request: pytest.FixtureRequest):
    v = VENUES[request.param]()
    v.move({"BTC/USDT": 100.0, "ETH/USDT": 50.0})
    yield v
    v.close()
