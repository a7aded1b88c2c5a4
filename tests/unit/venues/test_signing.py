"""Request authentication: refused as Binance refuses it."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from keel.venues.book import VenueReject
from keel.venues.signing import verify

KEYS = {"k": "s"}
NOW = 1_700_000_000_000


def signed(query: str, secret: str = "s") -> tuple[str, dict[str, str]]:
    sig = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    total = f"{query}&signature={sig}"
    return total, dict(p.split("=", 1) for p in total.split("&"))


def test_a_request_signed_with_the_keys_secret_in_time_passes():
    verify(*signed(f"symbol=BTCUSDT&timestamp={NOW}"), "k", KEYS, NOW)


@pytest.mark.parametrize(
    ("key", "secret", "ts", "code"),
    [
        (None, "s", NOW, -2014),
        ("other", "s", NOW, -2015),
        ("k", "wrong", NOW, -1022),
        ("k", "s", NOW - 6_000, -1021),
        ("k", "s", NOW + 1_000, -1021),
    ],
)
def test_refused_with_binances_code(key, secret, ts, code):
    with pytest.raises(VenueReject) as caught:
        verify(*signed(f"symbol=BTCUSDT&timestamp={ts}", secret), key, KEYS, NOW)
    assert caught.value.code == code


def test_a_request_without_a_signature_is_refused():
    with pytest.raises(VenueReject, match="signature"):
        verify(f"timestamp={NOW}", {"timestamp": str(NOW)}, "k", KEYS, NOW)
