"""Configuration: every problem named, and nothing secret printed."""

from __future__ import annotations

from pathlib import Path

import pytest

from mhchat.cli import main
from mhchat.config import parse_settings, shown_url
from mhchat.errors import ConfigError

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
