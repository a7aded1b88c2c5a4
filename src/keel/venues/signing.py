"""Request authentication as Binance does it: the `X-MBX-APIKEY` header names a known key, the `signature` parameter
is the HMAC-SHA256 (hex) of every other parameter exactly as sent, with the key's secret, and `timestamp` lies
within `recvWindow` (5000 ms by default) of the server's clock. A failure is refused with Binance's code and message,
so a client learns the same thing it would learn there."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from keel.venues.book import VenueReject

DEFAULT_RECV_WINDOW_MS = 5_000
MAX_RECV_WINDOW_MS = 60_000


def verify(
    total_params: str, params: Mapping[str, str], api_key: str | None, keys: Mapping[str, str], now_ms: int
) -> None:
    """Raise `VenueReject` unless the request is signed by a known key, in time. `total_params` is the query string
    followed by the body, as sent (the signature covers those bytes, not a re-encoding of them)."""
    if not api_key:
        raise VenueReject(401, -2014, "API-key format invalid.")
    secret = keys.get(api_key)
    if secret is None:
        raise VenueReject(401, -2015, "Invalid API-key, IP, or permissions for action.")
    signature = params.get("signature")
    if not signature:
        raise VenueReject(400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
    signed = "&".join(p for p in total_params.split("&") if p and not p.startswith("signature="))
    expected = hmac.new(secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise VenueReject(400, -1022, "Signature for this request is not valid.")
    try:
        ts = int(params["timestamp"])
        window = int(params.get("recvWindow", DEFAULT_RECV_WINDOW_MS))
    except (KeyError, ValueError) as exc:
        raise VenueReject(
            400, -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
        ) from exc
    if not 0 < window <= MAX_RECV_WINDOW_MS:
        raise VenueReject(400, -1131, "recvWindow must be less than 60000")
    if ts >= now_ms + 1_000 or now_ms - ts > window:
        raise VenueReject(400, -1021, "Timestamp for this request is outside of the recvWindow.")
