"""The stack's PostgreSQL: a cluster in a project-local directory with the production roles.

Why not tests/pgcluster.py: that one is a throwaway for one test session (random port, stopped
at interpreter exit). This cluster survives `make stack` exiting, keeps its data between runs,
and gets exactly the roles of deploy/postgres/initdb/10-tradewatch-roles.sql, so the bot writes
as `tradewatch`, the exporter reads as `tradewatch_exporter` and the SQL panels run as
`tradewatch_grafana`, as in docker-compose.yml.

PostgreSQL refuses to run as root: when we are root, initdb and pg_ctl run as the `postgres`
user (`runuser -u postgres --`), which then owns the cluster directory. The superuser connects
only over the unix socket in the cluster directory (trust); roles log in over TCP on 127.0.0.1
with passwords (scram-sha-256).
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from sqlalchemy.engine import URL

PG_ROOT = "/usr/lib/postgresql"
SERVER_USER = "postgres"
DATABASE = "tradewatch"
ROLES_SQL = Path(__file__).resolve().parents[1] / "deploy" / "postgres" / "initdb" / "10-tradewatch-roles.sql"
# Role name -> the variable the roles SQL reads its password from.
ROLE_PASSWORD_VARIABLES = {
    "tradewatch": "TRADEWATCH_DB_PASSWORD",
    "tradewatch_exporter": "EXPORTER_DB_PASSWORD",
    "tradewatch_grafana": "GRAFANA_DB_PASSWORD",
}


class PostgresError(RuntimeError):
    """The cluster could not be set up or started; the message says why."""


def find_bin_dir(root: str = PG_ROOT) -> Path:
    """The newest <root>/<major>/bin with initdb, pg_ctl and psql."""
    found = []
    for path in glob.glob(os.path.join(root, "*", "bin")):
        major = Path(path).parent.name
        if re.fullmatch(r"\d+", major) and all(os.access(Path(path, b), os.X_OK) for b in ("initdb", "pg_ctl", "psql")):
            found.append((int(major), Path(path)))
    if not found:
        raise PostgresError(f"PostgreSQL server binaries not found under {root}/*/bin: run `make sysdeps`")
    return max(found)[1]


class LocalPostgres:
    """One cluster under `base_dir` (data/, socket/, server.log), listening on 127.0.0.1:`port`."""

    def __init__(self, base_dir: Path, port: int, passwords: Mapping[str, str]) -> None:
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.socket_dir = base_dir / "socket"
        self.log_file = base_dir / "server.log"
        self.port = port
        self.passwords = dict(passwords)  # role name -> password
        self._as_server_user = os.geteuid() == 0
        self._bin = find_bin_dir()

    def url(self, role: str) -> str:
        """SQLAlchemy URL of the tradewatch database for `role` (password included: never log it)."""
        return URL.create("postgresql+psycopg2", username=role, password=self.passwords[role],
                          host="127.0.0.1", port=self.port, database=DATABASE).render_as_string(hide_password=False)

    @property
    def running(self) -> bool:
        return self._run_server_command("pg_ctl", "status", "-D", str(self.data_dir), check=False).returncode == 0

    def start(self) -> None:
        """initdb on first use, start the server, create the database and (re)apply the roles."""
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        options = " ".join(f"-c {key}='{value}'" for key, value in {
            "port": self.port, "listen_addresses": "127.0.0.1", "unix_socket_directories": self.socket_dir,
            "shared_buffers": "32MB", "max_connections": "50",
        }.items())
        self._run_server_command("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir),
                                 "-l", str(self.log_file), "-o", options)
        if self.psql("-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'", database="postgres") != "1":
            self.psql("-c", f"CREATE DATABASE {DATABASE}", database="postgres")
        self.apply_roles()

    def stop(self) -> bool:
        """Fast shutdown (clients disconnected); False when it was not running."""
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        self._run_server_command("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data_dir))
        return True

    def apply_roles(self) -> None:
        """Run the committed roles SQL (idempotent); again after migrations it grants `alerts`."""
        env = {variable: self.passwords[role] for role, variable in ROLE_PASSWORD_VARIABLES.items()}
        self.psql("-v", "ON_ERROR_STOP=1", "-f", str(ROLES_SQL), extra_env=env)

    def psql(self, *args: str, database: str = DATABASE, extra_env: Mapping[str, str] | None = None) -> str:
        """psql as the superuser over the unix socket; returns stdout, raises PostgresError on failure."""
        env = dict(os.environ, **(extra_env or {}))
        env.pop("PGPASSWORD", None)
        result = subprocess.run(
            [str(self._bin / "psql"), "-X", "-q", "-h", str(self.socket_dir), "-p", str(self.port),
             "-U", SERVER_USER, "-d", database, *args],
            env=env, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise PostgresError(f"psql failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
        return result.stdout.strip()

    def _initdb(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        if self._as_server_user:
            for path in (self.base_dir, self.socket_dir):
                shutil.chown(path, SERVER_USER, SERVER_USER)
            if subprocess.run(["runuser", "-u", SERVER_USER, "--", "test", "-w", str(self.base_dir)],
                              check=False).returncode != 0:
                raise PostgresError(f"user {SERVER_USER} cannot reach {self.base_dir}: every parent directory "
                                    "must be traversable by other users (chmod o+x)")
        self._run_server_command("initdb", "-D", str(self.data_dir), "-U", SERVER_USER, "--auth-local=trust",
                                 "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C", "--no-sync")

    def _run_server_command(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self._bin / program), *args]
        if self._as_server_user:
            command = ["runuser", "-u", SERVER_USER, "--", *command]
        # cwd: the server user may not be allowed into the caller's working directory.
        result = subprocess.run(command, cwd=self.base_dir if self.base_dir.exists() else "/", capture_output=True,
                                text=True, timeout=120, check=False)
        if check and result.returncode != 0:
            tail = self.log_file.read_text(errors="replace")[-1500:] if self.log_file.exists() else ""
            raise PostgresError(f"{program} {args[0]} failed: {(result.stderr or result.stdout).strip()}\n{tail}")
        return result
