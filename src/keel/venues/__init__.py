"""Venues Keel can trade at. `local` is a testnet in a box: a small exchange on 127.0.0.1 that speaks the part of
Binance's spot REST API that ccxt's `binance` class uses, so the ccxt broker is tested against a real HTTP server, real
request signing and real faults, without the network. `book` is its matching engine and account state, `wire` its
JSON, `signing` its request authentication, `faults` the faults a test scripts, `server` the HTTP server itself.

Beside it, what every venue needs: `symbols`, Keel's one canonical symbol form (`BTC/USDT`, `XNYS:AAPL`) and its
mapping to each venue's; `calendars`, when a market trades (24/7, or an exchange's sessions)."""
