"""Create the secret files docker-compose.yml mounts (compose `secrets:`), each one only if missing.

    python3 deploy/make_secrets.py [--dir secrets]     # default: $TRADEWATCH_SECRETS_DIR or ./secrets

Why files: a password in an environment variable stays readable in the container's
configuration (`docker inspect`) and in every process's environment for the container's whole
life; a mounted file is read once by the one service that needs it.
Why mode 0644 inside a 0700 directory: compose (without swarm) bind-mounts the file as it is,
and the services read it as their own users (postgres 999, tradewatch 10001, alertmanager
65534, grafana 472); the directory, private to you, keeps other users of the host out.
Values are random (URL-safe hex); an existing file is never overwritten (rotate by deleting it,
then re-running deploy/postgres/initdb/10-tradewatch-roles.sql: see README, Security).
Stdlib only; prints the names it created, never a value.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

#: compose secret name -> bytes of randomness (hex: twice as many characters).
SECRETS = {
    "postgres_password": 24,
    "tradewatch_db_password": 24,
    "exporter_db_password": 24,
    "grafana_db_password": 24,
    "exporter_sink_token": 32,
}


def make_secrets(directory: Path) -> list[str]:
    """Create the missing secret files under `directory`; the names created."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    created = []
    for name, size in SECRETS.items():
        path = directory / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_hex(size) + "\n")
        path.chmod(0o644)  # whatever the umask
        created.append(name)
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("TRADEWATCH_SECRETS_DIR") or str(Path(__file__).resolve().parents[1] / "secrets")
    parser.add_argument("--dir", type=Path, default=Path(default), help=f"where to write them (default {default})")
    args = parser.parse_args(argv)
    try:
        created = make_secrets(args.dir)
    except OSError as exc:
        sys.stderr.write(f"cannot write the secrets under {args.dir}: {exc.strerror or exc}\n")
        return 2
    kept = [name for name in SECRETS if name not in created]
    sys.stdout.write(f"{args.dir}: created {', '.join(created) or 'nothing'}; kept {', '.join(kept) or 'nothing'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
