"""`keel llm ab`: two strategist prompt versions over the same bars. Each arm is recorded from the scripted loopback
server into its own cassette (in tmp), then replayed by the real command line with no server at all."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from helpers.cli import keel
from keel.data.files import load_many, write_csv
from keel.domain.errors import InputError
from keel.llm.ab import SCHEMA, plan, run_ab
from keel.llm.runtime import Wiring
from keel.settings import load_settings
from keel.strategies import build_strategy

from . import runs
from .chat_server import ChatServer, completion
from .support import FakeClock

V2_MARK = "Size with care"  # a phrase of strategist/v2.txt only


def rising(candidate: dict) -> bool:
    closes = [c for c in candidate["market"]["close"] if c is not None]
    return closes[-1] >= closes[0]


def strategist(body):
    """v1 takes every entry it is offered at its full bound; v2 takes only those whose window's closes rose."""
    payload = runs.user_payload(body)
    v2 = V2_MARK in body["messages"][0]["content"]
    proposals = [
        {
            "symbol": c["market"]["symbol"],
            "side": "buy",
            "quantity": payload["allowed"][c["market"]["symbol"]]["max_quantity"],
            "rationale": "momentum",
            "evidence_ids": payload["evidence_ids"][:1],
        }
        for c in payload["context"]["candidates"]
        if c["market"]["symbol"] in payload["allowed"] and (not v2 or rising(c))
    ]
    return completion(json.dumps({"proposals": proposals}))


class Setup:
    """A folder with two data files and a keel.toml whose strategist points at `url`."""

    def __init__(self, root: Path, url: str, *, seed: int = runs.SEED) -> None:
        self.root = root
        self.url = url
        self.files = []
        for frame in runs.frames(bars=400, symbols=2, seed=seed):
            self.files.append(write_csv(frame, root / f"{frame.symbol}.csv"))
        self.toml = root / "keel.toml"
        self.toml.write_text(
            f'var_dir = "{(root / "var").as_posix()}"\n'
            "[broker]\ncash = 10000\nfees_bps = 0\nslippage_bps = 0\n"
            '[sizing]\nmethod = "all_in"\n'
            '[strategy]\nname = "sma_cross"\nparams = { fast = 5, slow = 20 }\n'
            f'[llm.strategist]\nenabled = true\nbase_url = "{url}"\nmodel = "m-strategist"\n'
            "timeout_s = 5\nmax_attempts = 1\n"
            "prices = { prompt_per_1k = 0.01, completion_per_1k = 0.03 }\n"
        )

    def settings(self):
        return load_settings(self.toml)

    def frames(self):
        return load_many(self.files)

    def strategy(self):
        s = self.settings()
        return build_strategy(s.strategy.name, s.strategy.params)

    def ab(self, cassettes: Path, out: Path, *, record: bool = False, prompts=("v1", "v2"), role="strategist"):
        return run_ab(
            self.settings(),
            self.frames(),
            self.strategy(),
            role=role,
            prompts=list(prompts),
            cassette_dir=cassettes,
            record=record,
            out=out,
            wiring=Wiring(monotonic=FakeClock(), sleep=lambda s: None) if record else None,
        )

    def cli(self, cassettes: Path, out: Path, *more: str, check: bool = True):
        """`keel llm ab` over the data, v1 against v2, in a subprocess."""
        data = [a for f in self.files for a in ("--data", str(f))]
        args = ("--cassette-dir", str(cassettes), "--prompt", "v1", "--prompt", "v2", "--out", str(out), *more)
        return keel("llm", "ab", *data, "--config", str(self.toml), *args, cwd=self.root, check=check)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Both arms recorded once from the scripted server; the server's requests say what each arm was asked."""
    root = tmp_path_factory.mktemp("ab")
    server = ChatServer(strategist).start()
    try:
        setup = Setup(root, server.url)
        result = setup.ab(root / "cassettes", root / "recorded", record=True)
    finally:
        server.stop()
    return setup, result, list(server.requests)


def expected_points(requests) -> dict[str, dict[tuple[datetime, str], bool]]:
    """Each arm's (decision bar, symbol) → took it, from what the server was asked and its scripted rule."""
    arms: dict[str, dict[tuple[datetime, str], bool]] = {"v1": {}, "v2": {}}
    for r in requests:
        body = r["json"]
        v2 = V2_MARK in body["messages"][0]["content"]
        payload = runs.user_payload(body)
        when = datetime.fromisoformat(payload["context"]["decision_ts"])
        for c in payload["context"]["candidates"]:
            symbol = c["market"]["symbol"]
            if symbol in payload["allowed"]:
                arms["v2" if v2 else "v1"][(when, symbol)] = rising(c) if v2 else True
    return arms


def test_the_arms_differ_only_in_the_prompt_and_the_rate_is_the_share_of_differing_points(recorded):
    _, result, requests = recorded
    d = result.data
    assert d["schema"] == SCHEMA and d["role"] == "strategist" and d["prompts"] == ["v1", "v2"]
    v1, v2 = d["arms"]
    assert (v1["prompt_version"], v2["prompt_version"]) == ("strategist/v1", "strategist/v2")
    assert v1["run_id"] != v2["run_id"]
    assert json.loads(result.path.read_text()) == d  # what was written is what was returned
    arms = expected_points(requests)
    both = arms["v1"].keys() & arms["v2"].keys()
    differ = sum(1 for p in both if arms["v1"][p] != arms["v2"][p])
    g = d["disagreement"]
    assert g["points_in_both"] == len(both) > 0
    assert g["disagree"] == differ > 0 and g["by_kind"] == {"action": differ}
    assert g["rate"] == pytest.approx(differ / len(both), abs=1e-6) and 0 < g["rate"] < 1
    assert g["points_only_in"] == {"v1": len(arms["v1"].keys() - both), "v2": len(arms["v2"].keys() - both)}
    for arm in (v1, v2):
        calls = len([r for r in requests if (V2_MARK in r["json"]["messages"][0]["content"]) == (arm is v2)])
        assert arm["llm"]["role"]["calls"] == calls and arm["llm"]["role"]["fallbacks"] == 0
        assert arm["llm"]["tokens"] == 150 * calls and arm["llm"]["cost_usd"] == pytest.approx(0.0021 * calls)
    assert v1["scorecard"] != v2["scorecard"]


def test_a_replay_from_the_cassettes_needs_no_server_and_gives_the_same_ab(recorded, tmp_path):
    setup, result, _ = recorded
    proc = setup.cli(str(setup.root / "cassettes"), str(tmp_path / "replayed"), "--json")
    again = json.loads(proc.stdout)
    assert again["path"] == str(tmp_path / "replayed" / "ab.json")
    assert again["disagreement"] == result.data["disagreement"]
    for a, b in zip(again["arms"], result.data["arms"], strict=True):
        assert (a["run_id"], a["scorecard"], a["summary"], a["cassette_mode"]) == (
            b["run_id"],
            b["scorecard"],
            b["summary"],
            "replay",
        )
        assert a["llm"]["tokens"] == b["llm"]["tokens"] and a["llm"]["cost_usd"] == b["llm"]["cost_usd"]
    table = setup.cli(str(setup.root / "cassettes"), str(tmp_path / "replayed"))
    text = table.stdout
    assert "strategist/v1" in text and "strategist/v2" in text and "Sharpe" in text and "model tokens" in text
    assert f"disagreement: {100 * result.data['disagreement']['rate']:.1f} %" in text
    assert "already complete: reused" in text and "ab.json:" in text


def test_a_missing_cassette_fails_closed_and_says_to_record(recorded, tmp_path):
    setup, _, _ = recorded
    cassettes = tmp_path / "cassettes"
    shutil.copytree(setup.root / "cassettes" / "v1", cassettes / "v1")  # v2 was never recorded
    proc = setup.cli(str(cassettes), str(tmp_path / "out"), check=False)
    assert proc.returncode == 2
    assert "arm v2: no cassette" in proc.stderr and "--record" in proc.stderr
    assert "configured endpoint" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_a_cassette_of_another_prompt_is_refused_before_any_run(recorded, tmp_path):
    setup, _, _ = recorded
    cassettes = tmp_path / "cassettes"
    shutil.copytree(setup.root / "cassettes" / "v1", cassettes / "v1")
    shutil.copytree(setup.root / "cassettes" / "v1", cassettes / "v2")  # v1's answers under v2's name
    with pytest.raises(InputError, match=r"arm v2: .*recorded for prompt strategist/v1 .*not strategist/v2") as e:
        setup.ab(cassettes, tmp_path / "out")
    assert "--record" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_a_request_the_cassette_does_not_hold_stops_the_ab_without_a_result(recorded, tmp_path):
    setup, _, _ = recorded
    other = Setup(tmp_path, setup.url, seed=runs.SEED + 1)  # the same settings over other bars
    with pytest.raises(InputError, match=r"arm v1: .*no recorded answer.*ab\.json was not written") as e:
        other.ab(setup.root / "cassettes", tmp_path / "out")
    assert "--record" in str(e.value)
    assert not (tmp_path / "out" / "ab.json").exists()


def test_recording_into_an_ab_whose_arms_are_complete_is_refused(recorded, tmp_path):
    setup, _, _ = recorded
    with pytest.raises(InputError, match="already complete there"):
        setup.ab(tmp_path / "new-cassettes", setup.root / "recorded", record=True)
    assert not (tmp_path / "new-cassettes").exists()


def test_recording_never_overwrites_a_cassette(recorded, tmp_path):
    setup, _, _ = recorded
    cassettes = tmp_path / "cassettes"
    shutil.copytree(setup.root / "cassettes", cassettes)
    before = (cassettes / "v1" / "strategist.jsonl").read_bytes()
    with pytest.raises(InputError, match="already exists; a recording never overwrites"):
        setup.ab(cassettes, tmp_path / "out", record=True)
    assert (cassettes / "v1" / "strategist.jsonl").read_bytes() == before
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("prompts", "role", "message"),
    [
        (("v1", "v1"), "strategist", "given twice"),
        (("v1",), "strategist", "exactly two"),
        (("v1", "v9"), "strategist", "no prompt strategist/v9"),
        (("v1", "v2"), "trader", "not one of"),
        (("v1", "v2"), "critic", "no prompt critic/v2"),
    ],
)
def test_bad_prompt_choices_are_refused(recorded, tmp_path, prompts, role, message):
    setup, _, _ = recorded
    with pytest.raises(InputError, match=message):
        plan(
            setup.settings(),
            setup.frames(),
            setup.strategy(),
            role=role,
            prompts=prompts,
            cassette_dir=setup.root / "cassettes",
            record=False,
            out=tmp_path / "out",
        )
    assert not (tmp_path / "out").exists()


def test_a_disabled_role_is_refused(recorded, tmp_path):
    setup, _, _ = recorded
    settings = setup.settings()
    off = settings.model_copy(update={"llm": settings.llm.model_copy(update={"strategist": settings.llm.critic})})
    with pytest.raises(InputError, match=r"llm\.strategist\.enabled is false"):
        plan(
            off,
            setup.frames(),
            setup.strategy(),
            role="strategist",
            prompts=["v1", "v2"],
            cassette_dir=setup.root / "cassettes",
            record=False,
            out=None,
        )


def test_an_out_folder_with_files_of_someone_else_is_left_alone(recorded, tmp_path):
    setup, _, _ = recorded
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="did not write"):
        setup.ab(setup.root / "cassettes", out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    (out / "notes.txt").unlink()
    (out / "ab.json").write_text('{"mine": true}')
    with pytest.raises(InputError, match="not an A/B result Keel wrote"):
        setup.ab(setup.root / "cassettes", out)
    assert sorted(p.name for p in out.iterdir()) == ["ab.json"]
    assert (out / "ab.json").read_text() == '{"mine": true}'


def test_an_arm_folder_holding_another_run_is_refused(recorded, tmp_path):
    setup, _, _ = recorded
    out = tmp_path / "out"
    shutil.copytree(setup.root / "recorded" / "v1", out / "v2")  # arm v1's run where arm v2's belongs
    with pytest.raises(InputError, match="holds another run"):
        setup.ab(setup.root / "cassettes", out)
    assert sorted(p.name for p in out.iterdir()) == ["v2"]
