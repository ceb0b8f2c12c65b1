"""The Dockerfile's steps, run without Docker: build the wheel from exactly what the builder
stage copies, install it into a clean virtual environment, then migrate, check the container's
configuration and serve /healthz from the installed package (not the checkout)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mhchat.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def builder_copies() -> list[str]:
    """Sources the first (builder) stage copies from the build context (``COPY a b ./``)."""
    stages = DOCKERFILE.read_text(encoding="utf-8").split("\nFROM ")
    found: list[str] = []
    for line in stages[1].splitlines():
        match = re.match(r"COPY\s+(?!--from)(.+)\s+\S+$", line.strip())
        if match:
            found.extend(match.group(1).split())
    return found


def run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=500,
        check=False,
    )
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


def test_wheel_installs_in_a_clean_environment_and_runs(tmp_path: Path) -> None:
    copies = builder_copies()
    assert {"pyproject.toml", "src", "adapters", "migrations"} <= set(copies)
    context = tmp_path / "context"
    context.mkdir()
    for name in copies:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, context / name)

    # pip wheel, as the builder stage does (only mhchat's own wheel: dependencies come next).
    wheels = tmp_path / "wheels"
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", wheels,
        ".", cwd=context)  # fmt: skip
    built = list(wheels.glob("mhchat-*.whl"))
    assert len(built) == 1

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    uv = Path(sys.executable).parent / "uv"
    run(uv, "pip", "install", "--python", python, built[0], cwd=tmp_path)

    # The container's configuration, with the volume's database path moved into tmp_path.
    volume = tmp_path / "volume"
    volume.mkdir()
    config = tmp_path / "mhchat.toml"
    text = (ROOT / "deploy" / "mhchat.toml").read_text(encoding="utf-8")
    config.write_text(text.replace("/var/lib/mhchat", str(volume)), encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "MHCHAT_CONFIG": str(config)}

    # From a folder without the checkout: the package must carry its own migrations.
    migrated = run(python, "-m", "mhchat", "migrate", cwd=volume, env=env)
    assert "schema is at version" in migrated
    assert (volume / "mhchat.db").is_file()
    checked = run(python, "-m", "mhchat", "check-config", cwd=volume, env=env)
    assert "is valid" in checked
    located = run(python, "-c", "import mhchat; print(mhchat.__file__)", cwd=volume, env=env)
    assert str(venv) in located

    port = free_port()
    server = subprocess.Popen(
        [str(python), "-m", "mhchat", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=volume,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "serve did not answer /healthz"
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=30)
        if server.stderr:
            server.stderr.close()
