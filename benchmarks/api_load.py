"""API load: 8 concurrent clients polling and streaming the operator API while a real paper session runs, with
halts and resumes through the API in between.

Three processes, as in production: `keel session start bench --mode paper --speed N` over seeded synthetic one-minute
bars (a CSV file), `keel serve --port 0` over the same home, and this script, whose client threads call the API
over loopback HTTP (one `httpx.Client` each, keep-alive):

* 6 polling clients, each cycling through the reads an operator's console makes: the session, its orders, fills
  and positions (a page of 50), its equity curve, the pending intents, the trading state, `/metrics`;
* 2 streaming clients on `/events/stream?session=bench&after=0` (server-sent events), counting what they receive;
* one of the polling clients also halts and then resumes trading every `--halt-every` seconds (the risk officer's
  token; `risk.resume_cooldown_seconds = 0` so that a resume may follow at once).

Printed: each read's p50/p99/max and count, all reads together, the halt's and the resume's p50/p99 (the HTTP call,
measured by the client: request sent → response read), how long the streaming clients took to see each halt (call
sent → their `trading_state` event), what they received, errors, and the session's own bars per second. It measures;
it asserts nothing, and no test times anything.

    .venv/bin/python benchmarks/api_load.py [--bars 3000] [--speed 6000] [--clients 8] [--halt-every 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import common

sys.path.insert(0, str(common.REPO / "src"))

SESSION = "bench"
READS = (
    "/sessions/bench",
    "/sessions/bench/orders?limit=50",
    "/sessions/bench/fills?limit=50",
    "/sessions/bench/positions",
    "/sessions/bench/equity?points=200",
    "/intents/pending",
    "/trading-state",
    "/metrics",
)


def keel(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("keel")
    return subprocess.run([str(exe), *args], env=env, cwd=cwd, capture_output=True, text=True, check=True)


def spawn(*args: str, env: dict, cwd: Path) -> subprocess.Popen:
    """A `keel` child whose stdout (uvicorn's access log, the session's progress) is dropped, so that a full pipe
    never blocks it; its stderr is read by the caller."""
    exe = Path(sys.executable).with_name("keel")
    return subprocess.Popen(
        [str(exe), *args], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, -(-len(ordered) * q // 100)) - 1]


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1e3:.1f}"


class Figures:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reads: dict[str, list[float]] = defaultdict(list)
        self.halts: list[float] = []
        self.resumes: list[float] = []
        self.halt_sent: list[float] = []  # perf_counter when each halt call was sent
        self.seen: list[list[float]] = []  # per streaming client: perf_counter when it saw each halt
        self.streamed: list[int] = []
        self.errors: list[str] = []


def poller(base: str, token: str, risk: str | None, halt_every: float, stop: threading.Event, fig: Figures) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    next_halt = time.monotonic() + halt_every
    with httpx.Client(base_url=base, timeout=30) as http:
        i = 0
        while not stop.is_set():
            path = READS[i % len(READS)]
            i += 1
            url = path if path == "/metrics" else f"/api/v1{path}"
            t0 = time.perf_counter()
            got = http.get(url, headers=headers)
            took = time.perf_counter() - t0
            with fig.lock:
                if got.status_code == 200:
                    fig.reads[path.split("?")[0]].append(took)
                else:
                    fig.errors.append(f"GET {path}: {got.status_code} {got.text[:120]}")
            if risk is not None and time.monotonic() >= next_halt:
                next_halt = time.monotonic() + halt_every
                auth = {"Authorization": f"Bearer {risk}"}
                sent = time.perf_counter()
                halted = http.post("/api/v1/trading-state/halt", json={"reason": "load drill"}, headers=auth)
                took = time.perf_counter() - sent
                time.sleep(0.5)  # let the streams see it before it is lifted
                t1 = time.perf_counter()
                resumed = http.post("/api/v1/trading-state/resume", json={"reason": "drill over"}, headers=auth)
                took_resume = time.perf_counter() - t1
                with fig.lock:
                    if halted.status_code == 200 and resumed.status_code == 200:
                        fig.halts.append(took)
                        fig.resumes.append(took_resume)
                        fig.halt_sent.append(sent)
                    else:
                        fig.errors.append(
                            f"halt {halted.status_code} / resume {resumed.status_code}: {resumed.text[:120]}"
                        )


def streamer(base: str, token: str, stop: threading.Event, fig: Figures, slot: int) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {token}"}
    seen = fig.seen[slot]
    count = 0
    try:
        with (
            httpx.Client(base_url=base, timeout=httpx.Timeout(30, read=60)) as http,
            http.stream("GET", f"/api/v1/events/stream?session={SESSION}&after=0", headers=headers) as stream,
        ):
            event = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "journal":
                    count += 1
                elif line.startswith("data: ") and event == "trading_state":
                    if json.loads(line[6:])["state"] == "halted":
                        seen.append(time.perf_counter())
                elif line.startswith("data: ") and event == "end":
                    break
                if stop.is_set():
                    break
    except Exception as exc:  # a benchmark reports, never hides
        with fig.lock:
            fig.errors.append(f"stream {slot}: {type(exc).__name__}: {exc}")
    with fig.lock:
        fig.streamed.append(count)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bars", type=int, default=3_000, help="one-minute bars of each symbol")
    ap.add_argument("--speed", default="6000", help="bars arrive at this multiple of real time (6000: 100 a second)")
    ap.add_argument("--clients", type=int, default=8, help="clients in all; two of them stream")
    ap.add_argument("--halt-every", type=float, default=2.0, help="seconds between two halts")
    args = ap.parse_args()
    streams = 2
    pollers = max(1, args.clients - streams)
    common.print_host_line()
    with tempfile.TemporaryDirectory(prefix="keel-api-load-") as tmp:
        work = Path(tmp)
        config = work / "keel.toml"
        config.write_text(
            '[risk]\nresume_cooldown_seconds = 0\n[sizing]\nmethod = "fixed_notional"\n'
            f"[broker]\ncash = {common.CASH}\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEEL_")}
        env |= {"KEEL_HOME": str(work / "home")}
        data = []
        from keel.data.synthetic import generate_regime_ohlcv

        for i, frame in enumerate(generate_regime_ohlcv(2, args.bars, seed=common.SEED, interval_seconds=60)):
            data += ["--data", str(common.write_bars_csv(frame, work / f"SYN{i}.csv"))]
        viewer = keel("token", "create", "--name", "load", "--role", "viewer", env=env, cwd=work).stdout.strip()
        risk = keel("token", "create", "--name", "risk", "--role", "risk_officer", env=env, cwd=work).stdout.strip()
        api = spawn("serve", "--port", "0", "--config", str(config), env=env, cwd=work)
        base = None
        deadline = time.monotonic() + 60
        while base is None and time.monotonic() < deadline:
            line = api.stderr.readline()
            found = re.search(r"Keel API on (http://127\.0\.0\.1:\d+)/api/v1", line)
            base = found.group(1) if found else None
        if base is None:
            api.kill()
            raise SystemExit("keel serve did not start")
        threading.Thread(target=lambda: api.stderr.read(), daemon=True).start()  # drain its log
        session = spawn(
            "session", "start", SESSION, *data, "--strategy", "sma_cross", "--param", f"fast={common.FAST}",
            "--param", f"slow={common.SLOW}", "--mode", "paper", "--speed", args.speed, "--approval", "auto",
            "--config", str(config), env=env, cwd=work,
        )  # fmt: skip
        session_err: list[str] = []
        threading.Thread(target=lambda: session_err.append(session.stderr.read()), daemon=True).start()
        import httpx

        with httpx.Client(base_url=base, timeout=10) as http:
            auth = {"Authorization": f"Bearer {viewer}"}
            while http.get(f"/api/v1/sessions/{SESSION}", headers=auth).status_code != 200:
                if session.poll() is not None:
                    time.sleep(0.5)
                    raise SystemExit(f"the session ended before it registered: {''.join(session_err)[-2000:]}")
                time.sleep(0.05)
        fig = Figures()
        fig.seen = [[] for _ in range(streams)]
        stop = threading.Event()
        threads = [
            threading.Thread(target=poller, args=(base, viewer, risk if i == 0 else None, args.halt_every, stop, fig))
            for i in range(pollers)
        ] + [threading.Thread(target=streamer, args=(base, viewer, stop, fig, i)) for i in range(streams)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        session.wait()
        wall = time.perf_counter() - t0
        stop.set()
        for t in threads:
            t.join(timeout=60)
        api.terminate()
        api.wait(timeout=30)
        status = json.loads(keel("session", "status", SESSION, "--json", env=env, cwd=work).stdout)
    report(fig, wall, status, pollers, streams, args)


def report(fig: Figures, wall: float, status: dict, pollers: int, streams: int, args) -> None:
    rec = status.get("record", status)
    bars = rec.get("bars") or 0
    print(
        f"{pollers} polling + {streams} streaming clients for {wall:.1f} s while session '{SESSION}' ran "
        f"{bars:,} cycles ({bars / wall:.0f} a second, --speed {args.speed}); it ended: {rec.get('end_reason')}"
    )
    print(f"  {'read':<28}{'n':>7}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    every: list[float] = []
    for path, values in sorted(fig.reads.items()):
        every += values
        print(f"  {path:<28}{len(values):>7,}{ms(pct(values, 50)):>9}{ms(pct(values, 99)):>9}{ms(max(values)):>9}")
    print(
        f"  {'all reads':<28}{len(every):>7,}{ms(pct(every, 50)):>9}{ms(pct(every, 99)):>9}{ms(max(every, default=None)):>9}"
    )
    for label, values in (("halt (POST)", fig.halts), ("resume (POST)", fig.resumes)):
        top = max(values, default=None)
        print(f"  {label:<28}{len(values):>7,}{ms(pct(values, 50)):>9}{ms(pct(values, 99)):>9}{ms(top):>9}")
    lags = []
    for seen in fig.seen:
        for sent in fig.halt_sent:
            after = [s - sent for s in seen if s >= sent]
            if after:
                lags.append(min(after))
    print(
        f"  {'halt → seen on a stream':<28}{len(lags):>7,}{ms(pct(lags, 50)):>9}{ms(pct(lags, 99)):>9}"
        f"{ms(max(lags, default=None)):>9}"
    )
    print(f"  streamed journal records per client: {', '.join(f'{n:,}' for n in fig.streamed)}")
    print(f"  errors: {len(fig.errors)}" + "".join(f"\n    {e}" for e in fig.errors[:10]))


if __name__ == "__main__":
    main()
