"""The command line: clear messages for bad configuration, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mhchat", *args], capture_output=True, text=True, check=False
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
