"""Brokers behind one contract: the paper broker (fill simulator) now; ccxt venues later."""
