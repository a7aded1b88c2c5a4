"""The local exchange's JSON, field for field as Binance's spot API writes it (numbers as strings, times in ms): what
ccxt's `binance` class parses."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from keel.venues.book import Bar, Book, Market, Trade, VenueOrder


def num(value: Decimal) -> str:
    return format(value, "f")


def market(m: Market) -> dict[str, Any]:
    return {
        "symbol": m.symbol,
        "status": "TRADING",
        "baseAsset": m.base,
        "baseAssetPrecision": 8,
        "quoteAsset": m.quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "permissions": ["SPOT"],
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": num(m.min_price),
                "maxPrice": num(m.max_price),
                "tickSize": num(m.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": num(m.min_qty),
                "maxQty": num(m.max_qty),
                "stepSize": num(m.step_size),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": num(m.min_notional),
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
    }


def exchange_info(book: Book, now_ms: int) -> dict[str, Any]:
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "rateLimits": [],
        "exchangeFilters": [],
        "symbols": [market(m) for m in book.markets.values()],
    }


def order(o: VenueOrder, *, full: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_order_id,
        "price": num(o.price),
        "origQty": num(o.quantity),
        "executedQty": num(o.executed),
        "cummulativeQuoteQty": num(o.quote_qty),
        "status": o.status,
        "timeInForce": o.time_in_force or "GTC",
        "type": o.type,
        "side": o.side,
        "selfTradePreventionMode": "NONE",
    }
    if full:
        body["transactTime"] = o.time_ms
        body["workingTime"] = o.time_ms
        body["fills"] = [
            {
                "price": num(t.price),
                "qty": num(t.qty),
                "commission": num(t.commission),
                "commissionAsset": t.commission_asset,
                "tradeId": t.trade_id,
            }
            for t in o.fills
        ]
    else:
        body.update(
            stopPrice="0.00000000",
            icebergQty="0.00000000",
            time=o.time_ms,
            updateTime=o.update_ms,
            isWorking=o.is_open,
            workingTime=o.time_ms,
            origQuoteOrderQty="0.00000000",
        )
    return body


def cancelled(o: VenueOrder) -> dict[str, Any]:
    """A cancel's answer: the order's own client id as `origClientOrderId`, a fresh one for the cancel itself."""
    body = order(o, full=False)
    for k in ("stopPrice", "icebergQty", "time", "updateTime", "isWorking", "workingTime", "origQuoteOrderQty"):
        body.pop(k)
    body["origClientOrderId"] = o.client_order_id
    body["clientOrderId"] = f"cancel-{o.order_id}"
    body["transactTime"] = o.update_ms
    return body


def trade(t: Trade) -> dict[str, Any]:
    return {
        "symbol": t.symbol,
        "id": t.trade_id,
        "orderId": t.order_id,
        "orderListId": -1,
        "price": num(t.price),
        "qty": num(t.qty),
        "quoteQty": num(t.price * t.qty),
        "commission": num(t.commission),
        "commissionAsset": t.commission_asset,
        "time": t.time_ms,
        "isBuyer": t.side == "BUY",
        "isMaker": t.maker,
        "isBestMatch": True,
    }


def kline(b: Bar, bar_ms: int) -> list[Any]:
    return [
        b.open_ms,
        num(b.open),
        num(b.high),
        num(b.low),
        num(b.close),
        num(b.volume),
        b.open_ms + bar_ms - 1,
        num(b.volume * b.close),
        0,
        "0",
        "0",
        "0",
    ]


def ticker_24hr(symbol: str, price: Decimal, bars: list[Bar], now_ms: int) -> dict[str, Any]:
    first = bars[0].open if bars else price
    high = max((b.high for b in bars), default=price)
    low = min((b.low for b in bars), default=price)
    volume = sum((b.volume for b in bars), Decimal(0))
    return {
        "symbol": symbol,
        "priceChange": num(price - first),
        "priceChangePercent": num(((price - first) / first * 100).quantize(Decimal("0.001"))),
        "weightedAvgPrice": num(price),
        "prevClosePrice": num(first),
        "lastPrice": num(price),
        "lastQty": "0",
        "bidPrice": num(price),
        "bidQty": "1",
        "askPrice": num(price),
        "askQty": "1",
        "openPrice": num(first),
        "highPrice": num(high),
        "lowPrice": num(low),
        "volume": num(volume),
        "quoteVolume": num(volume * price),
        "openTime": now_ms - 86_400_000,
        "closeTime": now_ms,
        "firstId": 0,
        "lastId": 0,
        "count": 0,
    }


def book_ticker(symbol: str, price: Decimal) -> dict[str, Any]:
    return {"symbol": symbol, "bidPrice": num(price), "bidQty": "1", "askPrice": num(price), "askQty": "1"}


def account(book: Book, now_ms: int, can_trade: bool = True, can_withdraw: bool = False) -> dict[str, Any]:
    return {
        "makerCommission": 0,
        "takerCommission": 0,
        "canTrade": can_trade,
        "canWithdraw": can_withdraw,
        "canDeposit": False,
        "updateTime": now_ms,
        "accountType": "SPOT",
        "balances": [{"asset": a, "free": num(f), "locked": num(h)} for a, (f, h) in book.balances().items()],
        "permissions": ["SPOT"],
    }
