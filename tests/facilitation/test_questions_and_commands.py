"""The questions file, per-platform formatting, settings checks and the two commands."""

from __future__ import annotations

import argparse
import io
import json
from datetime import date
from pathlib import Path

import pytest

from mhchat.cli import main
from mhchat.commands import questions as questions_command
from mhchat.commands import triage as triage_command
from mhchat.config import parse_settings
from mhchat.errors import ConfigError
from mhchat.facilitation.formatting import fit, measure
from mhchat.facilitation.questions import load_questions, parse_questions, preview, validate
from mhchat.facilitation.reviews import review_warnings
from mhchat.facilitation.schedule import Schedule
from mhchat.facilitation.settings import parse_facilitation, stale_help_lines
from mhchat.facilitation.templates import load_templates
from mhchat.facilitation.threads import answer_tag, question_tag
from mhchat.facilitation.triage import load_lexicon

from .conftest import settings_from


class TestFormatting:
    def test_hashtag_always_present_and_not_doubled(self) -> None:
        assert fit("How are you?", "MHChat", "x") == "How are you? #MHChat"
        assert fit("How are you #mhchat?", "MHChat", "x") == "How are you #mhchat?"

    def test_x_weighted_length_counts_emoji_and_urls(self) -> None:
        text = "😀" * 200 + " https://example.com/" + "a" * 50
        out = fit(text, "MHChat", "x")
        assert measure(out, "x") <= 280
        assert out.endswith("… #MHChat")

    def test_bluesky_counts_graphemes(self) -> None:
        family = "👨‍👩‍👧‍👦"  # one grapheme, seven code points
        out = fit(family * 400, "MHChat", "bluesky")
        assert measure(out, "bluesky") <= 300
        assert out.endswith("#MHChat")
        assert family in out

    def test_facebook_keeps_long_text(self) -> None:
        text = "word " * 2000
        assert fit(text, "MHChat", "facebook") == text.strip() + " #MHChat"


class TestAnswerTags:
    @pytest.mark.parametrize(
        ("text", "n"),
        [
            ("A2 yes", 2),
            ("A2: yes", 2),
            ("a2 - yes", 2),
            ("@host A3. ok", 3),
            ("#MHChat A10 hi", 10),
            ("a lot of things", None),
            ("a 20 minute walk", None),
            ("A2B road", None),
            ("Q2 hello", None),
        ],
    )
    def test_answer_convention(self, text: str, n: int | None) -> None:
        assert answer_tag(text) == n

    def test_our_question_posts(self) -> None:
        assert question_tag("Q3: who helps? #MHChat") == 3
        assert question_tag("Welcome to #MHChat") is None


class TestQuestionsFile:
    def test_packaged_example_is_valid_and_previews_in_every_audience_zone(self) -> None:
        qfile = load_questions(None)
        schedule = Schedule(settings_from().schedule)
        assert (
            validate(qfile, schedule, hashtag="MHChat", platforms=["x", "bluesky", "facebook"])
            == []
        )
        summer = preview(
            qfile,
            schedule.by_id("2026-07-01"),
            hashtag="MHChat",
            zone="Europe/London",
            platforms=["x"],
        )
        assert "20:00 BST / 15:00 EDT / 12:00 PDT" in summer
        winter = preview(
            qfile,
            schedule.by_id("2026-11-25"),
            hashtag="MHChat",
            zone="Europe/London",
            platforms=["x"],
        )
        assert "20:05 GMT / 15:05 EST / 12:05 PST" in winter
        assert "Q1: How are you, really, this week? #MHChat" in winter

    def test_problems_are_plain_sentences(self) -> None:
        doc = {
            "default": {
                "questions": [
                    {"n": 1, "offset_minutes": 90, "text": "x" * 300},
                    {"n": 1, "offset_minutes": 5, "text": "{mood}"},
                ]
            },
            "sessions": {"2026-11-26": {"topic": "Thursday?"}, "soon": {}},
        }
        qfile, problems = parse_questions(doc)
        assert any("must be the chat's date" in p for p in problems)
        found = validate(
            qfile, Schedule(settings_from().schedule), hashtag="MHChat", platforms=["x"]
        )
        text = "\n".join(found)
        assert "Q1 appears twice" in text
        assert "after the chat's end" in text
        assert "on X with the hashtag; X allows 280" in text
        assert "{mood} is not a placeholder" in text
        assert "2026-11-26 is a Thursday" in text

    def test_a_session_table_overrides_the_default(self) -> None:
        qfile, problems = parse_questions(
            {
                "default": {
                    "topic": "A",
                    "questions": [{"n": 1, "offset_minutes": 5, "text": "one"}],
                },
                "sessions": {"2026-12-02": {"topic": "Sleep"}},
            }
        )
        assert problems == []
        plan = qfile.plan_for("2026-12-02")
        assert plan.topic == "Sleep"
        assert plan.questions == qfile.default.questions


class TestSettings:
    def test_defaults(self) -> None:
        s = settings_from()
        assert s.schedule.zone == "Europe/London"
        assert s.schedule.weekday == 2
        assert s.reposts.budget.for_platform("x") == 100
        assert {line.region for line in s.safety.help_lines} == {"uk", "us"}

    def test_problems_reach_check_config(self) -> None:
        with pytest.raises(ConfigError) as err:
            parse_settings(
                {
                    "schedule": {"zone": "Mars/Olympus", "weekday": "caturday"},
                    "reposts": {"budget": {"x": -1}},
                },
                {},
            )
        text = " ".join(err.value.problems)
        assert "Mars/Olympus" in text
        assert "caturday" in text
        assert "[reposts.budget] x" in text

    def test_help_lines_past_their_review_are_reported(self) -> None:
        doc = {
            "safety": {
                "help_lines": [
                    {
                        "region": "uk",
                        "name": "Samaritans",
                        "contact": "116 123",
                        "reviewed": date(2025, 1, 1),
                    }
                ]
            }
        }
        parsed, problems = parse_facilitation(doc)
        assert problems == ["[safety] regions names 'us' but no help line is configured for it."]
        stale = stale_help_lines(parsed.safety, date(2026, 11, 25))
        assert len(stale) == 1
        assert "2025-01-01" in stale[0]

    def test_templates_must_carry_the_help_lines(self, tmp_path: Path) -> None:
        path = tmp_path / "t.toml"
        path.write_text('welcome = "hi {handle}"\nsignposting = "call someone {who}"\n')
        with pytest.raises(ConfigError) as err:
            load_templates(path)
        assert any("{help_lines}" in p for p in err.value.problems)


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mhchat")
    sub = root.add_subparsers()
    questions_command.add_parser(sub)
    triage_command.add_parser(sub)
    return root


class TestCommands:
    def test_triage_prints_one_json_line_per_post(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "posts.txt"
        path.write_text(
            "A1 doing fine tonight\n"
            + json.dumps({"text": "I want to die", "id": 7})
            + "\n\nyou are all fucking idiots\n"
        )
        args = parser().parse_args(["triage", str(path)])
        assert args.func(args) == 0
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        assert [line["decision"] for line in lines] == ["ok", "crisis", "abuse"]
        assert lines[1]["id"] == 7
        assert "crisis" in lines[1]["reason"]
        assert lines[2]["line"] == 4

    def test_triage_reads_standard_input(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setattr("sys.stdin", io.StringIO("je veux mourir\n"))
        args = parser().parse_args(["triage", "-"])
        assert args.func(args) == 0
        assert json.loads(capsys.readouterr().out)["decision"] == "crisis"

    def test_questions_previews_a_session(self, capsys: pytest.CaptureFixture[str]) -> None:
        args = parser().parse_args(
            ["questions", "--session", "2026-11-25", "--platforms", "x,bluesky"]
        )
        assert args.func(args) == 0
        out = capsys.readouterr().out
        assert "20:00 GMT / 15:00 EST / 12:00 PST" in out
        assert "x (" in out
        assert "bluesky (" in out

    def test_questions_reports_problems_with_status_1(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "q.toml"
        path.write_text(
            '[default]\n[[default.questions]]\nn = 1\noffset_minutes = 5\ntext = "'
            + "long " * 80
            + '"\n'
        )
        args = parser().parse_args(
            ["questions", "--file", str(path), "--session", "2026-11-25", "--platforms", "x"]
        )
        assert args.func(args) == 1
        assert "X allows 280" in capsys.readouterr().err

    def test_questions_refuses_a_wrong_weekday(self, capsys: pytest.CaptureFixture[str]) -> None:
        args = parser().parse_args(["questions", "--session", "2026-11-26"])
        assert args.func(args) == 2
        assert "Thursday" in capsys.readouterr().err


def test_review_warnings_for_old_numbers_and_an_old_lexicon() -> None:
    safety = settings_from().safety
    lexicon = load_lexicon()
    assert review_warnings(safety, lexicon, date(2026, 11, 25)) == []
    later = review_warnings(safety, lexicon, date(2027, 12, 1))
    assert len(later) == 4
    assert "crisis lexicon" in later[-1]


def test_check_config_warns_about_numbers_due_for_review(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "mhchat.toml"
    config.write_text(
        '[[safety.help_lines]]\nregion = "uk"\nname = "Samaritans"\n'
        'contact = "call 116 123"\nreviewed = 2020-01-01\n'
        '[[safety.help_lines]]\nregion = "us"\nname = "988"\n'
        'contact = "call or text 988"\nreviewed = 2020-01-01\n'
    )
    assert main(["check-config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "is valid" in out
    assert "Warnings" in out
    assert "last checked on 2020-01-01" in out


def test_a_broken_questions_file_is_a_configuration_problem(tmp_path: Path) -> None:
    path = tmp_path / "questions.toml"
    path.write_text("[default\n")
    with pytest.raises(ConfigError) as err:
        parse_settings({"questions": {"file": str(path)}}, {})
    assert any("is not valid TOML" in p for p in err.value.problems)
