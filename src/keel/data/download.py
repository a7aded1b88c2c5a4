"""OHLCV history from an exchange into the store, through ccxt's `fetch_ohlcv`: paged, polite, resumable.

- **Paged**: `fetch_ohlcv(symbol, timeframe, since, limit)` from the first missing bar; the next page starts one
  timeframe after the last bar received. A page that brings nothing new ends the range: the exchange has no later bars.
- **Polite**: ccxt's own rate limiter is on (each exchange's `rateLimit`); an HTTP 429 (`RateLimitExceeded`,
  `DDoSProtection`) is waited out as `Retry-After` says, or with a doubling backoff, and tried again; so is a
  timeout or a dropped connection. After `max_retries` in a row the download stops with what it committed kept.
- **Closed bars only**: a bar still forming (its close after now) is not stored; the next run fetches it closed.
- **Gaps** (bars the exchange does not have) are never filled: they are found, reported and kept in the manifest.
- **Resumable**: only what the store lacks is fetched (before its first bar, after its last). Bars are committed
  every `commit_rows` bars and when the download stops for any reason (an error, Ctrl-C), each commit one atomic
  rename; a second run continues from the last stored bar.

`import ccxt` costs most of a second: it happens in `open_exchange`, never at import of this module.
"""

from __future__ import annotations

import difflib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from keel.data.frame import OHLCV, ns_to_datetime
from keel.data.store import DatasetKey, DataStore, Gap, Timeframe, Written, find_gaps
from keel.domain.errors import DataError, InputError, KeelError

__all__ = ["DownloadError", "DownloadResult", "download", "open_exchange"]

#: ccxt options for Binance's spot API: spot markets only, nothing from the wallet endpoints (neither the testnet nor
#: the local exchange has them); the same as the ccxt broker's
_BINANCE_OPTIONS = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False, "fetchMargins": False}
#: the longest one Retry-After is waited for
MAX_WAIT_SECONDS = 60.0
_MS = 1_000_000


class DownloadError(KeelError):
    """The exchange failed the download (unreachable, refusing, still rate-limited); what was committed is kept."""


@dataclass(slots=True)
class DownloadResult:
    """What one download did."""

    key: DatasetKey
    requested: tuple[int, int]  # [since, until) in ns
    fetched: int = 0  # new bars stored
    pages: int = 0
    retries: int = 0  # requests tried again (429, timeouts)
    rate_limited: int = 0  # of which 429s
    forming_dropped: int = 0  # 1 when the last bar was still forming, and so not stored
    gaps: list[Gap] = field(default_factory=list)  # the dataset's gaps inside the requested range
    first_available_ns: int | None = None  # the exchange's first bar, when it is after `since`
    written: Written | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": str(self.key),
            "exchange": self.key.source,
            "symbol": self.key.symbol,
            "timeframe": self.key.timeframe.label,
            "since": _iso(self.requested[0]),
            "until": _iso(self.requested[1]),
            "fetched": self.fetched,
            "pages": self.pages,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "forming_dropped": self.forming_dropped,
            "gaps": [g.as_dict() for g in self.gaps],
            "first_available": _iso(self.first_available_ns) if self.first_available_ns is not None else None,
            "stored": self.written.manifest.as_dict() if self.written is not None else None,
        }


def open_exchange(
    exchange_id: str, *, api_url: str | None = None, timeout_ms: int = 15_000, rate_limit_ms: int | None = None
) -> Any:
    """A ccxt exchange for public market data (no keys), its rate limiter on. `api_url`: every API of the exchange at
    this base URL instead (the local exchange on 127.0.0.1)."""
    import ccxt

    name = exchange_id.strip().lower()
    if name not in ccxt.exchanges:
        close = difflib.get_close_matches(name, ccxt.exchanges, n=3)
        raise InputError(
            f"unknown exchange id {exchange_id!r}",
            hint=(f"did you mean {', '.join(close)}? " if close else "") + "use a ccxt exchange id (e.g. binance, "
            "kraken, coinbase; the full list is ccxt.exchanges)",
        )
    config: dict[str, Any] = {"enableRateLimit": True, "timeout": timeout_ms}
    if rate_limit_ms is not None:
        config["rateLimit"] = rate_limit_ms
    if name == "binance":
        config["options"] = dict(_BINANCE_OPTIONS)
    exchange = getattr(ccxt, name)(config)
    if api_url is not None:
        parts = urlsplit(api_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise InputError(f"--api-url {api_url!r} is not an http(s) URL", hint="e.g. http://127.0.0.1:8080")
        base = api_url.rstrip("/")
        exchange.urls["api"] = {
            k: base + urlsplit(v).path for k, v in exchange.urls["api"].items() if isinstance(v, str)
        }
    if not exchange.has.get("fetchOHLCV"):
        raise InputError(f"{name} offers no OHLCV history through ccxt (fetchOHLCV)", hint="choose another exchange")
    return exchange


def download(
    store: DataStore,
    exchange: Any,
    symbol: str,
    timeframe: Timeframe,
    *,
    since_ns: int | None,
    until_ns: int | None = None,
    page_limit: int = 1000,
    commit_rows: int = 50_000,
    max_retries: int = 5,
    progress: Callable[[int, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    now_ns: Callable[[], int] = time.time_ns,
) -> DownloadResult:
    """Download `symbol`'s `timeframe` bars in [since, until) (until: now) into the store, under the exchange's id.

    Without `since`, the download resumes after the stored dataset's last bar (there must be one). `progress(done,
    total)` is called after every page, in bars. Raises `InputError` for what the user can fix (symbol, timeframe,
    dates) and `DownloadError` when the exchange fails; bars received before either are committed first.
    """
    import ccxt

    fetcher = _Fetcher(exchange, ccxt, max_retries=max_retries, sleep=sleep)
    name = str(getattr(exchange, "id", "exchange"))
    fetcher.call("load markets", exchange.load_markets)
    unified = _market_symbol(exchange, name, symbol)
    _check_timeframe(exchange, name, timeframe)
    key = DatasetKey(name, unified, timeframe)
    now = now_ns()
    end = min(until_ns, now) if until_ns is not None else now
    stored = store.manifest(key)
    resuming = since_ns is None
    if since_ns is None:
        if stored is None:
            raise InputError(f"nothing stored for {key} to resume from", hint="pass --since (e.g. --since 2024-01-01)")
        since_ns = stored.last_ns + timeframe.ns
    since_ns = int(timeframe.floor(np.array([since_ns]))[0])
    if resuming and since_ns + timeframe.ns > end:
        return DownloadResult(key, (since_ns, max(since_ns, end)))  # up to date: no bar has closed since the last
    if since_ns >= end:
        raise InputError(
            f"--since {_iso(since_ns)} is not before --until {_iso(end)} (or now)", hint="give a --since in the past"
        )
    ranges = [(since_ns, end)]
    if stored is not None:  # only what the store lacks
        ranges = [(since_ns, min(end, stored.first_ns)), (max(since_ns, stored.last_ns + timeframe.ns), end)]
        ranges = [(a, b) for a, b in ranges if a < b]
    result = DownloadResult(key, (since_ns, end))
    total = sum((b - a) // timeframe.ns for a, b in ranges)
    pending: list[list[float]] = []
    with store.writing(key):
        try:
            done = 0
            for start, stop in ranges:
                cursor = start
                while cursor < stop:
                    page = fetcher.call(
                        "fetch bars",
                        exchange.fetch_ohlcv,
                        unified,
                        timeframe.label,
                        since=cursor // _MS,
                        limit=page_limit,
                    )
                    result.pages += 1
                    rows, reached_end = _new_rows(page, cursor, stop, timeframe, now, result)
                    if not rows:
                        break  # nothing after the cursor: the exchange has no later bars in this range
                    if cursor == since_ns and rows[0][0] > since_ns:
                        result.first_available_ns = int(rows[0][0])  # the exchange has nothing earlier
                    pending.extend(rows)
                    cursor = int(rows[-1][0]) + timeframe.ns
                    done = min(total, done + len(rows))
                    if progress is not None:
                        progress(done, total)
                    if len(pending) >= commit_rows:
                        _commit(store, key, pending, result)
                        pending = []
                    if reached_end:
                        break  # the range's end, or a bar still forming: nothing later to ask for
        finally:
            # Whatever ends the download (done, an error, Ctrl-C), the bars received are kept.
            if pending:
                _commit(store, key, pending, result)
    result.retries, result.rate_limited = fetcher.retries, fetcher.rate_limited
    if result.written is not None and result.written.manifest.gap_count:
        every = find_gaps(np.asarray(store.read(key).ts), timeframe)
        result.gaps = [g for g in every if g.last_ns >= since_ns and g.first_ns < end]
    return result


# ---------------------------------------------------------------------------------------------------------------


class _Fetcher:
    """One ccxt call, tried again after a 429 (nothing was processed), a timeout or a dropped connection."""

    def __init__(self, exchange: Any, ccxt: Any, *, max_retries: int, sleep: Callable[[float], None]) -> None:
        self.exchange, self.ccxt, self.max_retries, self.sleep = exchange, ccxt, max_retries, sleep
        self.retries = 0
        self.rate_limited = 0

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        ccxt = self.ccxt
        name = getattr(self.exchange, "id", "exchange")
        for attempt in range(self.max_retries + 1):
            try:
                return fn(*args, **kwargs)
            except (ccxt.DDoSProtection, ccxt.RateLimitExceeded) as exc:
                self.rate_limited += 1
                if attempt == self.max_retries:
                    raise DownloadError(
                        f"{name}: still rate-limited after {self.max_retries} retries ({what}): {_short(exc)}",
                        hint="what was downloaded is stored; run the same command later to resume",
                    ) from None
                wait = self._retry_after(attempt)
            except (ccxt.RequestTimeout, ccxt.ExchangeNotAvailable, ccxt.NetworkError) as exc:
                if _refused(exc):
                    raise DownloadError(
                        f"{name}: cannot connect ({what}): the connection was refused or the host is unreachable; "
                        "is there a network connection, and is the exchange's address right?",
                        hint="what was downloaded is stored; run the same command again once it is reachable",
                    ) from None
                if attempt == self.max_retries:
                    raise DownloadError(
                        f"{name}: no answer after {self.max_retries + 1} tries ({what}): {_short(exc)}",
                        hint="what was downloaded is stored; run the same command again to resume",
                    ) from None
                wait = min(MAX_WAIT_SECONDS, 0.5 * 2**attempt)
            except ccxt.BadSymbol as exc:
                raise InputError(f"{name} refuses the symbol: {_short(exc)}") from None
            except ccxt.BaseError as exc:
                raise DownloadError(f"{name} refused {what}: {type(exc).__name__}: {_short(exc)}") from None
            self.retries += 1
            self.sleep(wait)
        raise AssertionError("unreachable")

    def _retry_after(self, attempt: int) -> float:
        headers = getattr(self.exchange, "last_response_headers", None) or {}
        value = headers.get("Retry-After") if hasattr(headers, "get") else None
        try:
            wait = max(0.0, float(value)) if value is not None else 1.0 * 2**attempt
        except ValueError:
            wait = 1.0 * 2**attempt
        return min(wait, MAX_WAIT_SECONDS)


def _refused(exc: BaseException) -> bool:
    """Whether the connection was refused or the host unreachable (ccxt keeps the cause in the exception chain)."""
    signs = (
        "connection refused",
        "failed to establish a new connection",
        "name or service not known",
        "nodename nor servname",
        "temporary failure in name resolution",
        "network is unreachable",
    )
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError) or any(s in str(current).lower() for s in signs):
            return True
        current = current.__cause__ or current.__context__
    return False


def _market_symbol(exchange: Any, name: str, symbol: str) -> str:
    """ccxt's unified symbol for `symbol`: itself (BTC/USDT), or the market its exchange id names (BTCUSDT)."""
    markets = exchange.markets or {}
    if symbol in markets:
        return symbol
    by_id = [m["symbol"] for m in markets.values() if m.get("id") == symbol]
    if len(by_id) == 1:
        return by_id[0]
    upper = symbol.upper()
    if upper in markets:
        return upper
    close = difflib.get_close_matches(upper, list(markets), n=3)
    raise InputError(
        f"{name} has no market {symbol!r}",
        hint=(f"did you mean {', '.join(close)}? " if close else "")
        + f"symbols are ccxt's unified BASE/QUOTE (e.g. BTC/USDT); {name} lists {len(markets)} "
        + ("market" if len(markets) == 1 else "markets"),
    )


def _check_timeframe(exchange: Any, name: str, timeframe: Timeframe) -> None:
    offered = getattr(exchange, "timeframes", None) or {}
    if offered and timeframe.label not in offered:
        raise InputError(
            f"{name} does not offer {timeframe.label} bars",
            hint=f"{name} offers: {', '.join(offered)}; a longer timeframe can be resampled from a shorter one",
        )


def _new_rows(
    page: Any, cursor: int, stop: int, timeframe: Timeframe, now: int, result: DownloadResult
) -> tuple[list[list[float]], bool]:
    """The page's bars in [cursor, stop) that have closed by `now`, checked for shape, ascending; and whether the page
    reached the range's end (a bar at or after `stop`, or one still forming)."""
    where = f"{result.key.source} {result.key.symbol} {timeframe.label}"
    rows: list[list[float]] = []
    for raw in page or ():
        if not isinstance(raw, list | tuple) or len(raw) < 6 or raw[0] is None:
            raise DownloadError(f"{where}: the exchange sent a bar that is not [time, o, h, l, c, v]: {raw!r:.80}")
        ts = int(raw[0]) * _MS
        if ts < cursor:
            continue
        if ts >= stop:
            return rows, True
        if ts + timeframe.ns > now:
            result.forming_dropped = 1
            return rows, True
        values = [float(v) if v is not None else float("nan") for v in raw[1:6]]
        if rows and ts <= rows[-1][0]:
            raise DownloadError(f"{where}: the exchange sent bars out of time order at {_iso(ts)}")
        rows.append([ts, *values])
    return rows, False


def _commit(store: DataStore, key: DatasetKey, rows: list[list[float]], result: DownloadResult) -> None:
    """Store the bars received; when one fails the checks, those before it are stored and the download stops."""
    table = np.asarray(rows, dtype=np.float64)
    ts = np.asarray([int(r[0]) for r in rows], dtype=np.int64)
    source = f"{key.source} {key.symbol} {key.timeframe.label} (downloaded)"
    frame = OHLCV(key.symbol, ts, *(np.ascontiguousarray(table[:, i]) for i in range(1, 6)), source=source)
    try:
        _store_bars(store, key, frame, result)
    except DataError as exc:
        bad = exc.row - 1 if exc.row is not None and exc.row <= len(ts) else None
        if bad:
            _store_bars(store, key, frame.slice(0, bad), result)
        at = f" at {_iso(int(ts[bad]))}" if bad is not None else ""
        what = f"{exc.column}: {exc.problem}" if exc.column else exc.problem
        raise DownloadError(
            f"{key.source} sent a bar{at} that fails Keel's checks ({what}); the download stopped there",
            hint="the bars before it are stored; report the bar to the exchange, or import corrected data",
        ) from None


def _store_bars(store: DataStore, key: DatasetKey, frame: OHLCV, result: DownloadResult) -> None:
    first, last = _iso(int(frame.ts[0])), _iso(int(frame.ts[-1]))
    written = store.write(key, frame, action="download", detail=f"{first} to {last}")
    result.fetched += written.added
    result.written = written


def _short(exc: Exception, width: int = 200) -> str:
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text if len(text) <= width else text[: width - 3] + "..."


def _iso(ns: int) -> str:
    return ns_to_datetime(ns).isoformat().replace("+00:00", "Z")
