"""A throwaway PostgreSQL server for tests and benchmarks: initdb into a directory, start on a free port,
throw away.

Why in db/: the test suite (tests/conftest.py `pg_cluster`) and `make bench` (bench/analytics.py,
bench/fleet.py) both start one; tests/pgcluster.py re-exports it for the tests' imports.

Uses the newest Debian server binaries (/usr/lib/postgresql/<major>/bin).
PostgreSQL refuses to run as root, so when we are root every server command
runs as the `postgres` user (`runuser -u postgres --`) and the cluster
directory is handed to that user.  The superuser connects over the unix
socket without a password (trust); applications get a password-protected
role `tradewatch` over TCP on 127.0.0.1 (scram-sha-256), like production.
Durability is switched off (fsync, full_page_writes) for speed.
"""

import atexit
import glob
import os
import re
import secrets
import shutil
import socket
import subprocess
from pathlib import Path

import psycopg2
from psycopg2 import sql
from sqlalchemy.engine import URL

PG_ROOT = "/usr/lib/postgresql"
APP_ROLE = "tradewatch"
APP_DATABASE = "tradewatch"
SERVER_USER = "postgres"
START_ATTEMPTS = 3


class PgClusterError(RuntimeError):
    """The throwaway cluster could not be set up; the message says why and what to do."""


def find_bin_dir(root: str = PG_ROOT) -> Path:
    """The newest <root>/<major>/bin that has initdb and pg_ctl."""
    candidates = []
    for path in glob.glob(os.path.join(root, "*", "bin")):
        major = Path(path).parent.name
        if re.fullmatch(r"\d+(\.\d+)?", major) and all(
            os.access(Path(path, b), os.X_OK) for b in ("initdb", "pg_ctl")
        ):
            candidates.append((tuple(int(p) for p in major.split(".")), Path(path)))
    if not candidates:
        raise PgClusterError(
            f"PostgreSQL server binaries not found under {root}/*/bin: "
            "run `make sysdeps` (or `apt-get install postgresql`)"
        )
    return max(candidates)[1]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PgCluster:
    """One PostgreSQL server living in `base_dir` (which must be empty or absent)."""

    def __init__(self, base_dir: str | os.PathLike[str]) -> None:
        self.base_dir = Path(base_dir)
        self.data_dir = self.base_dir / "data"
        self.socket_dir = self.base_dir / "socket"
        self.log_file = self.base_dir / "server.log"
        self.port: int | None = None
        self.password = secrets.token_urlsafe(16)
        self._bin: Path | None = None
        self._as_server_user = os.geteuid() == 0

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """initdb (first time only), start the server, create the application role and database."""
        self._bin = find_bin_dir()
        if not self.data_dir.exists():
            self._initdb()
        for attempt in range(START_ATTEMPTS):
            self.port = free_port()
            try:
                self._pg_ctl(
                    "start", "-w", "-t", "60", "-l", str(self.log_file), "-o", self._server_options()
                )
                break
            except PgClusterError:
                if attempt == START_ATTEMPTS - 1:
                    raise
        atexit.register(self.stop)
        self._create_app_role()

    def stop(self) -> None:
        """Stop the server if it runs (fast shutdown: disconnects clients)."""
        if self._bin is None or not (self.data_dir / "postmaster.pid").exists():
            return
        self._pg_ctl("stop", "-w", "-t", "60", "-m", "fast")
        atexit.unregister(self.stop)

    def restart(self) -> None:
        """Stop and start again on the same port: every client connection is cut."""
        self._pg_ctl(
            "restart", "-w", "-t", "60", "-m", "fast", "-l", str(self.log_file), "-o", self._server_options()
        )

    def destroy(self) -> None:
        """Stop and delete the cluster directory."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    # -- what tests use ----------------------------------------------------------------

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the application database, with the role's password."""
        return self.url_for(APP_DATABASE)

    def url_for(self, database: str) -> str:
        if self.port is None:
            raise PgClusterError("the cluster is not started")
        return URL.create(
            "postgresql+psycopg2",
            username=APP_ROLE,
            password=self.password,
            host="127.0.0.1",
            port=self.port,
            database=database,
        ).render_as_string(hide_password=False)

    def create_database(self, name: str) -> str:
        """A new empty database owned by the application role; returns its URL."""
        self.admin_execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(APP_ROLE))
        )
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting anyone still connected."""
        self.admin_execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def admin_execute(self, statement: sql.Composable | str, database: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser (over the unix socket), outside a transaction."""
        connection = psycopg2.connect(
            host=str(self.socket_dir), port=self.port, user=SERVER_USER, dbname=database, connect_timeout=10
        )
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(statement)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    # -- internals ---------------------------------------------------------------------

    def _server_options(self) -> str:
        settings = {
            "port": str(self.port),
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.socket_dir),
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "off",
            "shared_buffers": "32MB",
            "max_connections": "100",
        }
        return " ".join(f"-c {key}='{value}'" for key, value in settings.items())

    def _initdb(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self._as_server_user:
            shutil.chown(self.base_dir, SERVER_USER, SERVER_USER)
            shutil.chown(self.socket_dir, SERVER_USER, SERVER_USER)
            reachable = subprocess.run(
                ["runuser", "-u", SERVER_USER, "--", "test", "-w", str(self.base_dir)], capture_output=True
            )
            if reachable.returncode != 0:
                raise PgClusterError(
                    f"user {SERVER_USER} cannot write {self.base_dir}: put the cluster under a directory every user "
                    "can traverse (e.g. tempfile.mkdtemp() in /tmp, not pytest's private tmp_path)"
                )
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SERVER_USER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )

    def _create_app_role(self) -> None:
        exists = self.admin_execute(
            sql.SQL("SELECT 1 FROM pg_roles WHERE rolname = {}").format(sql.Literal(APP_ROLE))
        )
        verb = "ALTER" if exists else "CREATE"
        self.admin_execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(APP_ROLE), sql.Literal(self.password)
            )
        )
        if not self.admin_execute(
            sql.SQL("SELECT 1 FROM pg_database WHERE datname = {}").format(sql.Literal(APP_DATABASE))
        ):
            self.admin_execute(
                sql.SQL("CREATE DATABASE {} OWNER {}").format(
                    sql.Identifier(APP_DATABASE), sql.Identifier(APP_ROLE)
                )
            )

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), *args)

    def _run(self, program: str, *args: str) -> None:
        assert self._bin is not None
        command = [str(self._bin / program), *args]
        if self._as_server_user:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        # cwd: the server user may not be allowed into the caller's working directory.
        result = subprocess.run(command, cwd=self.base_dir, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log_tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise PgClusterError(
                f"{program} {args[0] if args else ''} failed ({result.returncode}): "
                f"{(result.stderr or result.stdout).strip()}\n{log_tail}"
            )
