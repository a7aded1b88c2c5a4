"""`keel venue local`: it prints its URL, answers there, and Ctrl-C stops it cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request

from helpers.cli import KEEL, keel, keel_env


def test_keel_venue_local_serves_on_loopback_until_ctrl_c():
    proc = subprocess.Popen(
        [*KEEL, "venue", "local", "--price", "BTCUSDT=123.45"],
        env=keel_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("local exchange at http://127.0.0.1:"), line
        url = line.split()[3]
        with urllib.request.urlopen(f"{url}/api/v3/ticker/price?symbol=BTCUSDT", timeout=5) as r:
            assert json.load(r) == {"symbol": "BTCUSDT", "price": "123.45"}
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "local exchange stopped" in err


def test_keel_venue_check_checks_a_further_venue_with_its_own_keys_and_config_show_masks_them(tmp_path):
    from keel.venues.book import Market
    from keel.venues.server import LocalExchange

    with LocalExchange([Market("BTCUSDT", "BTC", "USDT")], {"USDT": 100}, keys={"b-key-1": "b-secret-2"}) as ex:
        ex.set_price("BTCUSDT", 100)
        (tmp_path / "keel.toml").write_text(
            '[venue]\nexchange = "binance"\napi_key = "main-key-3"\napi_secret = "main-secret-4"\n'
            f'api_url = "http://127.0.0.1:1"\n\n[venue.venues.backup]\nexchange = "binance"\napi_key = "b-key-1"\n'
            f'api_secret = "b-secret-2"\napi_url = "{ex.url}"\n\n[venue.routing]\non_down = "fallback_exits"\n'
            'fallback = "backup"\n'
        )
        env = {"KEEL_HOME": str(tmp_path / "home")}
        checked = keel(
            "venue", "check", "--exchange", "backup", "--symbol", "BTC/USDT", "--json", cwd=tmp_path, env=env
        )
        body = json.loads(checked.stdout)
        assert body["venue"] == "backup" and body["ok"], body  # the backup's URL and keys, not the main venue's
        assert not ex.book.orders
        shown = keel("config", "show", cwd=tmp_path, env=env)
        assert "venue.venues.backup.api_key" in shown.stdout
        for secret in ("b-key-1", "b-secret-2", "main-key-3", "main-secret-4"):
            assert secret not in shown.stdout + checked.stdout + checked.stderr
        (tmp_path / "keel.toml").write_text('[venue]\nexchange = "binance"\n\n[venue.routing]\ndefault = "nowhere"\n')
        bad = keel("config", "check", cwd=tmp_path, env=env, check=False)
        assert bad.returncode == 2 and "venue.routing.default names venue 'nowhere'" in bad.stdout + bad.stderr
