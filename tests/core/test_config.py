"""Configuration: every problem named, and nothing secret printed."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import pytest

import mhchat.service  # noqa: F401 - registers the checks of every section, as the CLI does
from mhchat.cli import main
from mhchat.config import parse_settings, shown_url
from mhchat.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "S3cretPassw0rd"


def check_config(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    config = tmp_path / "mhchat.toml"
    config.write_text(text, encoding="utf-8")
    try:
        status = main(["check-config", "-c", str(config)])
    except SystemExit as exc:
        status = int(str(exc.code))
    out = capsys.readouterr()
    return status, out.out + out.err


class TestShownUrl:
    @pytest.mark.parametrize(
        ("url", "shown"),
        [
            (
                f"postgresql://mhuser:{PASSWORD}@127.0.0.1/db",
                "postgresql://mhuser:***@127.0.0.1/db",
            ),
            (
                f"postgres://u:{PASSWORD}@h:5432/db?sslmode=require",
                "postgres://u:***@h:5432/db?sslmode=require",
            ),
            (
                f"postgresql:///db?host=/tmp&password={PASSWORD}",
                "postgresql:///db?host=/tmp&password=***",
            ),
            (f"postgresql://u:a@{PASSWORD}@h/db", "postgresql://u:***@h/db"),
            ("postgresql://mhuser@127.0.0.1/db", "postgresql://mhuser@127.0.0.1/db"),
            ("sqlite:///var/mhchat.db", "sqlite:///var/mhchat.db"),
            ("sqlite::memory:", "sqlite::memory:"),
            (f"postgresql://u:{PASSWORD}@[::1/db", "postgresql:***"),
        ],
    )
    def test_the_password_is_masked(self, url: str, shown: str) -> None:
        assert shown_url(url) == shown


class TestDatabaseUrl:
    def test_check_config_does_not_print_the_password(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        status, output = check_config(
            tmp_path,
            f'[database]\nurl = "postgresql://mhuser:{PASSWORD}@127.0.0.1/db"\n',
            capsys,
        )
        assert status == 0, output
        assert "database: postgresql://mhuser:***@127.0.0.1/db" in output
        assert PASSWORD not in output

    def test_a_refused_url_is_shown_without_its_password(self) -> None:
        with pytest.raises(ConfigError) as caught:
            parse_settings({"database": {"url": f"mysql://mhuser:{PASSWORD}@db/mhchat"}}, {})
        assert "mysql://mhuser:***@db/mhchat" in caught.value.problems[0]
        assert PASSWORD not in str(caught.value)


def problems_of(doc: dict[str, Any]) -> list[str]:
    try:
        parse_settings(doc, {})
    except ConfigError as exc:
        return exc.problems
    return []


class TestUnknownNames:
    @pytest.mark.parametrize(
        ("doc", "problem"),
        [
            ({"chat": {"foo": 1}}, "[chat] has no setting foo; its settings are hashtag, id."),
            (
                {"database": {"uri": "sqlite:///x.db"}},
                "[database] has no setting uri (did you mean url?).",
            ),
            ({"web": {"prot": 80}}, "[web] has no setting prot (did you mean port?)."),
            ({"bus": {"capacty": 5}}, "[bus] has no setting capacty (did you mean capacity?)."),
            (
                {"leases": {"timeout": 5}},
                "[leases] has no setting timeout (did you mean timeout_seconds?).",
            ),
            (
                {"sender": {"poll": 1}},
                "[sender] has no setting poll (did you mean poll_seconds?).",
            ),
            (
                {"logging": {"levels": "info"}},
                "[logging] has no setting levels (did you mean level?).",
            ),
            (
                {"schedul": {}},
                "[schedul] is not a section mhchat knows (did you mean [schedule]?).",
            ),
            ({"zzz": {}}, "[zzz] is not a section mhchat knows; the sections are [adapters],"),
            (
                {"schedule": {"lenght_minutes": 30}},
                "[schedule] has no setting lenght_minutes (did you mean length_minutes?).",
            ),
            (
                {"questions": {"files": "q.toml"}},
                "[questions] has no setting files (did you mean file?).",
            ),
            (
                {"reposts": {"budgett": 5}},
                "[reposts] has no setting budgett (did you mean budget?).",
            ),
            (
                {"welcomes": {"template": "t.toml"}},
                "[welcomes] has no setting template (did you mean templates?).",
            ),
            (
                {"safety": {"max_link": 2}},
                "[safety] has no setting max_link (did you mean max_links?).",
            ),
        ],
    )
    def test_each_is_a_problem(self, doc: dict[str, Any], problem: str) -> None:
        found = problems_of(doc)
        assert len(found) == 1, found
        assert found[0].startswith(problem)

    def test_a_chat_of_many_is_checked_too(self) -> None:
        doc = {"chats": [{"id": "uk", "hashtag": "MHChat", "schedule": {"lenght_minutes": 3}}]}
        assert problems_of(doc) == [
            "[[chats]] uk: [schedule] has no setting lenght_minutes"
            " (did you mean length_minutes?)."
        ]

    def test_check_config_refuses_them(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        status, output = check_config(tmp_path, "[chat]\nfoo = 1\n[bogus]\nx = 1\n", capsys)
        assert status == 2
        assert "[chat] has no setting foo" in output
        assert "[bogus] is not a section mhchat knows" in output
        assert "is valid" not in output


class TestTypes:
    @pytest.mark.parametrize(
        ("doc", "problem"),
        [
            ({"logging": {"json": "yes"}}, "[logging] json must be true or false, not 'yes'."),
            ({"leases": {"enabled": "no"}}, "[leases] enabled must be true or false, not 'no'."),
            ({"chat": {"id": ""}}, "[chat] id must not be empty"),
            ({"chat": {"id": "  "}}, "[chat] id must not be empty"),
        ],
    )
    def test_each_is_a_problem(self, doc: dict[str, Any], problem: str) -> None:
        found = problems_of(doc)
        assert len(found) == 1, found
        assert found[0].startswith(problem)

    def test_true_and_false_still_count(self) -> None:
        settings = parse_settings(
            {
                "database": {"url": "postgresql://u@h/db"},
                "leases": {"enabled": False},
                "logging": {"json": True},
            },
            {},
        )
        assert settings.leases_on is False
        assert settings.logging.json is True
        assert parse_settings({}, {}).logging.json is None


class TestShippedExamples:
    """The configuration the project shows or ships must not trip the checks above."""

    def test_readme_example(self) -> None:
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        block = readme.split("## Configuration", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
        assert problems_of(tomllib.loads(block)) == []

    @pytest.mark.parametrize("name", ["mhchat.toml", "mhchat.production.toml"])
    def test_deploy_files(self, name: str) -> None:
        doc = tomllib.loads((ROOT / "deploy" / name).read_text(encoding="utf-8"))
        assert problems_of(doc) == []


class TestAdapterSettings:
    """check-config builds each enabled adapter as serve does, so their own checks run."""

    def test_an_adapter_serve_would_refuse_is_a_problem(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in [n for n in os.environ if n.startswith("MHCHAT_X_")]:
            monkeypatch.delenv(name)
        status, output = check_config(
            tmp_path, '[adapters.x]\ntier = "pay_per_use"\nbogus_key = 1\n', capsys
        )
        assert status == 2
        assert "[adapters.x] unknown settings bogus_key." in output
        assert "[adapters.x] no credentials at all: set MHCHAT_X_BEARER_TOKEN at least." in output
        assert "is valid" not in output

    def test_missing_secrets_and_typos_of_each_adapter(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in [
            n for n in os.environ if n.startswith(("MHCHAT_FACEBOOK_", "MHCHAT_BLUESKY_"))
        ]:
            monkeypatch.delenv(name)
        status, output = check_config(
            tmp_path,
            '[adapters.facebook]\npageid = "2"\n[adapters.bluesky]\nhandle = "h.bsky.social"\n'
            'source = "rss"\n',
            capsys,
        )
        assert status == 2
        assert "[adapters.facebook] pageid is not a setting of the Facebook adapter" in output
        assert "[adapters.facebook] The environment variable MHCHAT_FACEBOOK_APP_SECRET" in output
        assert "[adapters.bluesky] Set MHCHAT_BLUESKY_APP_PASSWORD" in output
        assert "[adapters.bluesky] source must be one of jetstream, firehose, search" in output

    def test_a_disabled_adapter_is_not_checked(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        status, output = check_config(
            tmp_path, "[adapters.x]\nenabled = false\nbogus_key = 1\n", capsys
        )
        assert status == 0, output

    def test_a_usable_adapter_passes(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("MHCHAT_X_BEARER_TOKEN", "bearer-token-value")
        status, output = check_config(
            tmp_path,
            '[adapters.x]\ntier = "basic"\nread_only = true\nhost_username = "MHChatHost"\n',
            capsys,
        )
        assert status == 0, output
        assert "x: secrets found in the environment: BEARER_TOKEN" in output

    def test_each_chat_of_many_is_named(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in [n for n in os.environ if n.startswith("MHCHAT_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("MHCHAT_CHAT_UK_BLUESKY_APP_PASSWORD", "app-password")
        status, output = check_config(
            tmp_path,
            '[[chats]]\nid = "uk"\nhashtag = "MHChat"\n'
            '[chats.adapters.bluesky]\nhandle = "uk.bsky"\n'
            '[[chats]]\nid = "us"\nhashtag = "MHChatUS"\n'
            '[chats.adapters.bluesky]\nhandle = "us.bsky"\n',
            capsys,
        )
        assert status == 2
        assert "[[chats]] us: [adapters.bluesky] Set MHCHAT_BLUESKY_APP_PASSWORD" in output
        assert "[[chats]] uk:" not in output
