"""A whole replay run with its journal (and the trading state) on PostgreSQL leaves the same decisions as on
SQLite: the same code, another database."""

from __future__ import annotations

import sqlite3
from urllib.parse import quote

from keel.backtest.run import execute_run
from keel.data.synthetic import generate_regime_ohlcv
from keel.settings import load_settings
from keel.strategies import build_strategy

POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def test_replay_on_postgres_matches_sqlite(tmp_path, pg_schema):
    frames = generate_regime_ohlcv(2, 1_500, seed=9)
    strategy = build_strategy("sma_cross", {"fast": 5, "slow": 20})
    common = {"risk": {"require_stop": False}, "journal": {"batch_size": 50}}
    lite = execute_run(frames, load_settings(var_dir=tmp_path / "a", **common), strategy, out_dir=tmp_path / "lite")

    url = f"{POSTGRES_URL}?options={quote(pg_schema['options'])}"
    pg_settings = load_settings(var_dir=tmp_path / "b", journal={"url": url, "batch_size": 50}, risk=common["risk"])
    pg = execute_run(frames, pg_settings, strategy, out_dir=tmp_path / "pg")

    assert pg.summary == lite.summary and pg.summary.orders > 0
    assert (tmp_path / "pg" / "events.jsonl").read_bytes() == (tmp_path / "lite" / "events.jsonl").read_bytes()
    assert not (tmp_path / "pg" / "keel.db").exists()  # the journal lived in PostgreSQL

    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as con:
        pg_rows = con.execute("select intent_id, state, quantity from intents order by intent_id").fetchall()
    with sqlite3.connect(tmp_path / "lite" / "keel.db") as con:
        lite_rows = con.execute("select intent_id, state, quantity from intents order by intent_id").fetchall()
    assert [tuple(r) for r in pg_rows] == lite_rows

    again = execute_run(frames, pg_settings, strategy, out_dir=tmp_path / "pg")
    assert again.reused  # the completed run is recognised from the PostgreSQL journal: nothing runs twice
