"""The command line: clear messages for bad configuration, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest


def run(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mhchat", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


class TestCli:
    def test_version(self) -> None:
        result = run("--version")
        assert result.returncode == 0
        assert result.stdout.startswith("mhchat ")

    def test_bad_config_lists_each_problem(self, tmp_path: Path) -> None:
        config = tmp_path / "bad.toml"
        config.write_text(
            '[chat]\nhashtag = "two words"\n[web]\nport = "eighty"\n'
            '[modes]\nsignposting = "auto"\n[database]\nurl = "mysql://x"\n'
        )
        result = run("check-config", "-c", str(config))
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        lines = [ln for ln in result.stderr.splitlines() if ln.startswith("  - ")]
        assert len(lines) == 4
        assert any("hashtag" in ln for ln in lines)
        assert any("port must be a whole number" in ln for ln in lines)

    def test_unreadable_toml_is_explained(self, tmp_path: Path) -> None:
        config = tmp_path / "broken.toml"
        config.write_text("[chat\n")
        result = run("check-config", "-c", str(config))
        assert result.returncode == 2
        assert "not valid TOML" in result.stderr
        assert "Traceback" not in result.stderr

    def test_missing_file_is_explained(self, tmp_path: Path) -> None:
        result = run("serve", "-c", str(tmp_path / "nope.toml"))
        assert result.returncode == 2
        assert "does not exist" in result.stderr

    def test_migrate_twice(self, tmp_path: Path) -> None:
        config = tmp_path / "ok.toml"
        config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "m.db"}"\n')
        first = run("migrate", "-c", str(config))
        second = run("migrate", "-c", str(config))
        assert first.returncode == 0, first.stderr
        assert "Applied migrations 0001" in first.stdout
        assert "Nothing to do" in second.stdout

    def test_config_that_is_not_utf8_is_explained(self, tmp_path: Path) -> None:
        config = tmp_path / "utf16.toml"
        config.write_bytes("[chat]\n".encode("utf-16"))
        result = run("check-config", "-c", str(config))
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert "is not UTF-8 text" in result.stderr

    @pytest.mark.parametrize(
        ("section", "key"),
        [("questions", "file"), ("welcomes", "templates"), ("safety", "lexicon")],
    )
    def test_named_files_that_are_not_utf8_are_explained(
        self, tmp_path: Path, section: str, key: str
    ) -> None:
        (tmp_path / "named.toml").write_bytes(b"\xff\xfe")
        config = tmp_path / "ok.toml"
        config.write_text(f'[{section}]\n{key} = "named.toml"\n')
        result = run("check-config", "-c", str(config))
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert f"{tmp_path / 'named.toml'} is not UTF-8 text" in result.stderr

    def test_questions_file_that_is_not_utf8_is_explained(self, tmp_path: Path) -> None:
        questions = tmp_path / "q.toml"
        questions.write_bytes(b"\xff\xfe")
        result = run("questions", "--file", str(questions))
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert "is not UTF-8 text" in result.stderr

    def test_triage_classifies_every_line_around_a_byte_that_is_not_utf8(
        self, tmp_path: Path
    ) -> None:
        posts = tmp_path / "posts.txt"
        posts.write_bytes(b"hello everyone\n\xff odd byte\nI want to kill myself\n")
        result = run("triage", str(posts))
        assert result.returncode == 0, result.stderr
        decisions = [orjson.loads(line) for line in result.stdout.splitlines()]
        assert [d["line"] for d in decisions] == [1, 2, 3]
        assert decisions[2]["decision"] == "crisis"

    def test_triage_reads_crlf_and_bad_bytes_from_standard_input(self) -> None:
        result = subprocess.run(
            [sys.executable, "-m", "mhchat", "triage"],
            input=b"\xff odd byte\r\nI want to kill myself\r\n",
            capture_output=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        decisions = [orjson.loads(line) for line in result.stdout.splitlines()]
        assert [d["text"] for d in decisions] == ["\ufffd odd byte", "I want to kill myself"]
        assert decisions[1]["decision"] == "crisis"

    def test_transcript_of_a_database_that_is_not_there_creates_nothing(
        self, tmp_path: Path
    ) -> None:
        missing = tmp_path / "nowhere" / "mhchat.db"
        config = tmp_path / "ok.toml"
        config.write_text(f'[database]\nurl = "sqlite:///{missing}"\n')
        result = run("transcript", "-c", str(config), "2026-11-25")
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert f"there is no database at {missing}; check [database] url" in result.stderr
        assert not missing.parent.exists()

    @pytest.mark.parametrize("command", ["migrate", "replay"])
    def test_a_database_that_cannot_be_reached_is_explained_without_its_password(
        self, tmp_path: Path, command: str
    ) -> None:
        config = tmp_path / "pg.toml"
        config.write_text('[database]\nurl = "postgresql://u:hunter22@127.0.0.1:1/x"\n')
        files = [str(tmp_path / "recording.jsonl")] if command == "replay" else []
        result = run(command, "-c", str(config), *files)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert "cannot connect to postgresql://u:***@127.0.0.1:1/x" in result.stderr
        assert "hunter22" not in result.stderr + result.stdout

    @pytest.mark.parametrize("command", ["migrate", "replay"])
    def test_a_sqlite_file_that_cannot_be_made_is_explained(
        self, tmp_path: Path, command: str
    ) -> None:
        config = tmp_path / "bad.toml"
        config.write_text('[database]\nurl = "sqlite:////proc/nope/x.db"\n')
        files = [str(tmp_path / "recording.jsonl")] if command == "replay" else []
        result = run(command, "-c", str(config), *files)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert "the SQLite database /proc/nope/x.db cannot be opened" in result.stderr

    def test_serve_on_a_port_in_use_is_explained(self, tmp_path: Path) -> None:
        config = tmp_path / "ok.toml"
        config.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "s.db"}"\n')
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = str(taken.getsockname()[1])
            result = subprocess.run(
                [sys.executable, "-m", "mhchat", "serve", "-c", str(config), "--port", port],
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert f"port {port} on 127.0.0.1 is in use" in result.stderr

    @pytest.mark.parametrize("where", ["file", "/proc/mhchat-demo"])
    def test_demo_out_that_cannot_be_a_folder_is_explained(
        self, tmp_path: Path, where: str
    ) -> None:
        out = tmp_path / "taken" if where == "file" else Path(where)
        if where == "file":
            out.write_text("")
        result = run("demo", "--out", str(out), "--no-browser")
        assert result.returncode == 2
        assert "Traceback" not in result.stderr
        assert f"mhchat demo: --out {out}" in result.stderr or f"folder {out}" in result.stderr

    def test_db_copy_from_a_file_that_is_not_there_creates_nothing(self, tmp_path: Path) -> None:
        missing = tmp_path / "nowhere" / "mhchat.db"
        result = run(
            "db",
            "copy",
            "--from",
            f"sqlite:///{missing}",
            "--to",
            "postgresql://u:hunter22@127.0.0.1:1/x",
            timeout=30,
        )
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert f"there is no SQLite database at {missing}" in result.stderr
        assert not missing.parent.exists()

    def test_db_copy_to_a_server_that_cannot_be_reached_returns_promptly(
        self, tmp_path: Path
    ) -> None:
        source = tmp_path / "mhchat.db"
        config = tmp_path / "ok.toml"
        config.write_text(f'[database]\nurl = "sqlite:///{source}"\n')
        assert run("migrate", "-c", str(config)).returncode == 0
        # The hang this guards against: the source's worker thread outliving the error.
        result = run(
            "db",
            "copy",
            "--from",
            f"sqlite:///{source}",
            "--to",
            "postgresql://u:hunter22@127.0.0.1:1/x",
            timeout=30,
        )
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert (
            "mhchat cannot copy the database: cannot connect to postgresql://u:***@127.0.0.1:1/x"
            in result.stderr
        )
        assert "hunter22" not in result.stderr + result.stdout

    def test_dashboard_without_sign_in_stops_only_the_commands_that_serve_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        for name in ("HASH", "PASSWORD_HASH", "TOKEN"):
            monkeypatch.delenv(f"MHCHAT_DASHBOARD_{name}", raising=False)
        config = tmp_path / "demo.toml"
        config.write_text(
            f'[database]\nurl = "sqlite:///{tmp_path / "d.db"}"\n[dashboard]\n'
            'facilitators = ["Sam"]\n'
        )
        migrated = run("migrate", "-c", str(config))
        assert migrated.returncode == 0, migrated.stderr
        transcript = run("transcript", "-c", str(config), "2026-11-25")
        assert "There is no session '2026-11-25'" in transcript.stderr
        for command in ("serve", "check-config"):
            refused = run(command, "-c", str(config), timeout=60)
            assert refused.returncode == 2
            assert "no sign-in is set up" in refused.stderr
