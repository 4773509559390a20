"""pg_kit.py: a PostgreSQL 15 of the tests' own, on loopback, in a
temporary folder: initdb, pg_ctl start, a database, and pg_ctl stop after.

Debian's postgresql-15 (the Makefile's PACKAGES) puts initdb and pg_ctl in
/usr/lib/postgresql/15/bin.  PostgreSQL refuses to run as root, so as root
the folder belongs to the postgres user and the commands run through
`runuser -u postgres`.  Nothing else is needed on the machine: no cluster
of Debian's, no service, no password (trust on loopback, in this folder).

As a module: `with Postgres() as pg: pg.url ...`.  As a command:
`python3 pg_kit.py CMD ARGS...` runs CMD with TAILOR_PG_URL set to a fresh
database, and stops PostgreSQL after, whatever CMD did.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

BIN = os.environ.get("TAILOR_PG_BIN", "/usr/lib/postgresql/15/bin")
TMP = os.environ.get("TAILOR_TEST_TMP", tempfile.gettempdir())


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Postgres:
    def __init__(self, tmp=None):
        self.root = os.geteuid() == 0
        # As root the postgres user must reach the folder: /tmp, not a
        # build folder under a home it may not enter.
        base = tempfile.gettempdir() if self.root else (tmp or TMP)
        os.makedirs(base, exist_ok=True)
        self.dir = tempfile.mkdtemp(prefix="tailor-pg-", dir=base)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "postgres.log")
        self.port = free_port()
        self.url = "postgresql://%s@127.0.0.1:%d/tailor" % (
            "postgres" if self.root else os.environ.get("USER") or "postgres", self.port)
        self.started = False

    def _run(self, args, check=True, timeout=120):
        if self.root:
            args = ["runuser", "-u", "postgres", "--"] + args
        return subprocess.run(args, check=check, capture_output=True, timeout=timeout)

    def start(self):
        if not os.path.exists(os.path.join(BIN, "initdb")):
            raise RuntimeError("no PostgreSQL 15 in %s (apt-get install postgresql-15)" % BIN)
        if self.root:
            shutil.chown(self.dir, "postgres", "postgres")
        user = "postgres" if self.root else (os.environ.get("USER") or "postgres")
        self._run([os.path.join(BIN, "initdb"), "-D", self.data, "-U", user, "-A", "trust",
                   "-E", "UTF8", "--no-sync"])
        # Loopback only, no Unix socket outside the folder; fsync stays on
        # (the tests count acknowledged events across a SIGKILL).
        opts = "-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s " \
               "-c max_connections=200 -c shared_buffers=64MB" % (self.port, self.dir)
        self._run([os.path.join(BIN, "pg_ctl"), "-D", self.data, "-l", self.log, "-w",
                   "-t", "60", "-o", opts, "start"])
        self.started = True
        self._run([os.path.join(BIN, "createdb") if os.path.exists(os.path.join(BIN, "createdb"))
                   else "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "tailor"])
        return self

    def psql(self, sql):
        """Run SQL in the test database; its output as text."""
        user = "postgres" if self.root else (os.environ.get("USER") or "postgres")
        out = self._run(["psql", "-X", "-q", "-A", "-t", "-h", "127.0.0.1", "-p", str(self.port),
                         "-U", user, "-d", "tailor", "-c", sql])
        return out.stdout.decode().strip()

    def dump(self, path):
        """pg_dump of the test database, in the custom format, to `path`."""
        user = "postgres" if self.root else (os.environ.get("USER") or "postgres")
        self._run(["pg_dump", "-Fc", "-f", path, "-h", "127.0.0.1", "-p", str(self.port),
                   "-U", user, "tailor"])

    def restore(self, path):
        """The test database dropped and restored from a dump(), in this
        same cluster (no client may be connected)."""
        user = "postgres" if self.root else (os.environ.get("USER") or "postgres")
        base = ["-h", "127.0.0.1", "-p", str(self.port), "-U", user]
        self._run(["psql", "-X", "-q"] + base + ["-d", "postgres", "-c", "DROP DATABASE tailor",
                                                  "-c", "CREATE DATABASE tailor"])
        self._run(["pg_restore", "-d", "tailor"] + base + [path])

    def stop(self, mode="fast"):
        if self.started:
            self._run([os.path.join(BIN, "pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop"],
                      check=False)
            self.started = False

    def restart(self):
        """Stop and start again on the same port (an outage)."""
        self.stop()
        opts = "-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s " \
               "-c max_connections=200 -c shared_buffers=64MB" % (self.port, self.dir)
        self._run([os.path.join(BIN, "pg_ctl"), "-D", self.data, "-l", self.log, "-w",
                   "-t", "60", "-o", opts, "start"])
        self.started = True

    def cleanup(self):
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()
            raise

    def __exit__(self, *exc):
        self.cleanup()


if __name__ == "__main__":
    with Postgres() as pg:
        env = dict(os.environ, TAILOR_PG_URL=pg.url)
        code = subprocess.call(sys.argv[1:], env=env)
    sys.exit(code)
