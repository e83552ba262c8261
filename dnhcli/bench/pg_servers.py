"""Throwaway PostgreSQL servers for the tests, the benchmarks and the demo: `initdb` into a
temporary folder and `pg_ctl` on a free loopback port, from the installed binaries, as the
`postgres` system user when this process is root (the server refuses to run as root)."""

from __future__ import annotations

import os
from pathlib import Path


class MissingPart(RuntimeError):
    """PostgreSQL (or a user to run it as) is not on this machine."""


class PostgresServer:
    """A throwaway PostgreSQL server on a free loopback port, from the installed binaries, run
    as the `postgres` system user when this process is root (the server refuses root)."""

    def __init__(self) -> None:
        import glob
        import pwd
        import shutil
        import socket
        import tempfile

        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = shutil.which("initdb") or (found[-1] if found else None)
        if initdb is None:
            raise MissingPart("PostgreSQL is not installed (apt-get install postgresql-15)")
        self.bin = Path(initdb).parent
        self.user: str | None = None
        self.folder = Path(tempfile.mkdtemp(prefix="dnh-pg-"))
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise MissingPart("running as root, and no `postgres` user to run PostgreSQL as") from None
            self.user = "postgres"
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.data = self.folder / "data"
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                  "-c full_page_writes=off -c max_connections=40", "start")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._databases = 0

    def _run(self, tool: str, *args: str) -> None:
        import subprocess

        command = [str(self.bin / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def database(self) -> str:
        """A new empty database on this server: its URL."""
        import psycopg

        self._databases += 1
        name = f"t{self._databases}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def kill(self) -> None:
        """SIGKILL the server (its postmaster), as a crash would."""
        import signal

        pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)

    def start(self) -> None:
        import time

        for _ in range(100):  # the killed server's children may still hold the port a moment
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w", "-t", "60",
                          "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off",
                          "start")
                return
            except Exception:  # noqa: BLE001 - retried, then raised
                time.sleep(0.2)
        raise RuntimeError("PostgreSQL did not restart")

    def stop(self) -> None:
        import shutil

        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        except Exception:  # noqa: BLE001 - already stopped
            pass
        shutil.rmtree(self.folder, ignore_errors=True)
