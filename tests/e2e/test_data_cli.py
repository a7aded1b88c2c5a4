"""`keel data` as a user runs it: import, list, resample, download (from the local exchange on 127.0.0.1), exit codes."""

from __future__ import annotations

import json
import signal
import socket
import time

import pytest

from helpers.cli import keel, spawn
from keel.data.files import write_csv
from keel.data.synthetic import generate_regime_ohlcv
from keel.venues.book import Market
from keel.venues.faults import ScriptedFault, VenueFault
from keel.venues.server import LocalExchange

FRAME = generate_regime_ohlcv(["BTCUSDT"], 600, seed=4)[0]  # 1m bars from 2024-01-01T00:00:00Z
T0 = 1_704_067_200_000


def data(*args: str, cwd, check: bool = True):
    return keel("data", *args, "--data-home", str(cwd / "store"), cwd=cwd, check=check)


@pytest.fixture
def exchange():
    with LocalExchange([Market("BTCUSDT", "BTC", "USDT")], {}, keys={}) as ex:
        ex.max_klines = 200
        yield ex


def test_import_list_and_resample_a_file(tmp_path):
    write_csv(FRAME, tmp_path / "btcusdt.csv")
    imported = data("import", "btcusdt.csv", "--source", "vendor", cwd=tmp_path)
    assert "imported btcusdt.csv as vendor/BTCUSDT/1m: 600 bars added" in imported.stdout
    resampled = data("resample", "--source", "vendor", "--symbol", "BTCUSDT", "--to", "5m", "--to", "4h", cwd=tmp_path)
    assert "into vendor/BTCUSDT/5m: 120 bars" in resampled.stdout
    assert "the last 4h bin had not closed (120 1m bars): left out" in resampled.stdout
    table = data("list", cwd=tmp_path).stdout
    assert "vendor" in table and "from 1m" in table and "600" in table
    listed = json.loads(data("list", "--json", cwd=tmp_path).stdout)["datasets"]
    assert [(d["timeframe"], d["rows"]) for d in listed] == [("1m", 600), ("5m", 120), ("4h", 2)]
    assert listed[0]["first"] == "2024-01-01T00:00:00Z" and listed[2]["derived_from"]["timeframe"] == "1m"


def test_a_bad_file_exits_2_naming_the_row_and_nothing_is_stored(tmp_path):
    (tmp_path / "bad.csv").write_text(
        "timestamp,open,high,low,close\n2024-01-01T00:00:00Z,1,2,0.5,1\n2024-01-01T00:01:00Z,1,2,0.5,nan\n"
    )
    write_csv(FRAME, tmp_path / "good.csv")
    proc = data("import", "good.csv", "bad.csv", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "bad.csv, row 2, column 'close'" in proc.stderr
    assert "no datasets" in data("list", cwd=tmp_path).stdout  # the good file was not imported either


def test_a_conflicting_import_exits_2_and_replace_is_explicit(tmp_path):
    write_csv(FRAME, tmp_path / "btcusdt.csv")
    data("import", "btcusdt.csv", cwd=tmp_path)
    lines = (tmp_path / "btcusdt.csv").read_text().splitlines()
    fields = lines[5].split(",")
    fields[4] = str(float(fields[4]) * 1.0001)  # a revised close, still inside high and low
    lines[5] = ",".join(fields)
    (tmp_path / "revised.csv").write_text("\n".join(lines) + "\n")
    refused = data("import", "revised.csv", "--symbol", "BTCUSDT", cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "already stored" in refused.stderr and "--replace" in refused.stderr
    replaced = data("import", "revised.csv", "--symbol", "BTCUSDT", "--replace", cwd=tmp_path)
    assert "replaced revised.csv as files/BTCUSDT/1m" in replaced.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("import", "missing.csv"), "file not found"),
        (("import", "a.csv", "b.csv", "--symbol", "X"), "--symbol names the symbol of one file"),
        (("import", "a.csv", "--timeframe", "1M"), "--timeframe: timeframe '1M'"),
        (("resample", "--symbol", "BTCUSDT", "--to", "5m"), "no stored files/BTCUSDT dataset to resample into 5m"),
        (("resample", "--symbol", "BTCUSDT", "--to", "5m", "--from", "1m"), "no dataset files/BTCUSDT/1m"),
        (("download", "--exchange", "binanse", "--symbol", "BTC/USDT", "--since", "2024-01-01"), "did you mean"),
        (("download", "--exchange", "binance", "--symbol", "BTC/USDT", "--since", "yesterday"), "is not a date"),
        (("download", "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "7x"), "timeframe '7x'"),
        (("download", "--exchange", "binance", "--symbol", "B", "--since", "2024-02-01", "--until", "2024-01-01"),
         "is not before"),
    ],
)  # fmt: skip
def test_bad_input_exits_2_saying_what_was_wrong(tmp_path, args, message):
    write_csv(FRAME, tmp_path / "a.csv")
    proc = data(*args, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and message in proc.stderr


def test_download_from_the_local_exchange_then_resume(tmp_path, exchange):
    exchange.serve_history("BTCUSDT", start_ms=T0, count=700, gaps=[(T0 + 300 * 60_000, T0 + 310 * 60_000)])
    first = data(
        "download", "--exchange", "binance", "--api-url", exchange.url, "--symbol", "BTC/USDT",
        "--since", "2024-01-01", "--until", "2024-01-01T08:00:00Z", cwd=tmp_path,
    )  # fmt: skip
    assert "downloaded binance/BTC/USDT/1m: 470 new bars" in first.stdout
    assert "gap: 10 bars missing from 2024-01-01 05:00 to 2024-01-01 05:09" in first.stdout
    resume = ("download", "--exchange", "binance", "--api-url", exchange.url, "--symbol", "BTCUSDT", "--json")
    second = json.loads(data(*resume, cwd=tmp_path).stdout)
    assert second["fetched"] == 220 and second["stored"]["rows"] == 690 and second["stored"]["gap_count"] == 1


def test_download_with_nothing_listening_exits_1_saying_the_connection_was_refused(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = data(
        "download", "--exchange", "binance", "--api-url", f"http://127.0.0.1:{port}", "--symbol", "BTC/USDT",
        "--since", "2024-01-01", "--retries", "0", cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 1 and "cannot connect" in proc.stderr and "connection was refused" in proc.stderr


def test_an_unknown_symbol_at_the_exchange_exits_2(tmp_path, exchange):
    proc = data(
        "download", "--exchange", "binance", "--api-url", exchange.url, "--symbol", "DOGE/USDT",
        "--since", "2024-01-01", cwd=tmp_path, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "has no market 'DOGE/USDT'" in proc.stderr


def test_ctrl_c_keeps_what_arrived_and_the_same_command_resumes(tmp_path, exchange):
    exchange.serve_history("BTCUSDT", start_ms=T0, count=1000)
    # Two pages answer at once; the third is held until the download is interrupted.
    exchange.script("GET /api/v3/klines", ScriptedFault(VenueFault.LATENCY, seconds=0), times=2)
    exchange.script("GET /api/v3/klines", ScriptedFault(VenueFault.LATENCY, seconds=60))
    args = ["data", "download", "--exchange", "binance", "--api-url", exchange.url, "--symbol", "BTC/USDT",
            "--since", "2024-01-01", "--data-home", str(tmp_path / "store")]  # fmt: skip
    proc = spawn(*args, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while len(exchange.faults.hits) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in stderr
    kept = json.loads(data("list", "--json", cwd=tmp_path).stdout)["datasets"]
    assert [d["rows"] for d in kept] == [400]
    resumed = json.loads(keel(*args[:-2], "--data-home", str(tmp_path / "store"), "--json", cwd=tmp_path).stdout)
    assert resumed["fetched"] == 600 and resumed["stored"]["rows"] == 1000


def test_list_reports_a_file_that_is_no_dataset_and_exits_1_still_listing_the_others(tmp_path):
    write_csv(FRAME, tmp_path / "btcusdt.csv")
    data("import", "btcusdt.csv", cwd=tmp_path)
    stray = tmp_path / "store" / "files" / "ETH" / "1m.parquet"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"not parquet")
    proc = data("list", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "BTCUSDT" in proc.stdout
    assert f"problem: {stray}: cannot read the dataset" in proc.stderr
