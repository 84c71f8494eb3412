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
The MT5 bridge's TLS pair (mt5_bridge_cert, mt5_bridge_key) is a self-signed certificate for the
compose names mt5 / mt5-wine and loopback, made with the `cryptography` package when it is
importable (as `python -m mt5bridge.server gen-cert` does), else with the openssl command.
Stdlib only otherwise; prints the names it created (and the certificate's fingerprint), never a value.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # mt5bridge.tls (stdlib only unless cryptography is there)

from mt5bridge.tls import DEFAULT_CERT_HOSTS, fingerprint_of_file  # noqa: E402

#: compose secret name -> bytes of randomness (hex: twice as many characters).
SECRETS = {
    "postgres_password": 24,
    "tradewatch_db_password": 24,
    "exporter_db_password": 24,
    "grafana_db_password": 24,
    "exporter_sink_token": 32,
}


#: The bridge's TLS pair: compose secret names (the certificate is public; the key is not).
BRIDGE_CERT, BRIDGE_KEY = "mt5_bridge_cert", "mt5_bridge_key"
BRIDGE_CERT_DAYS = 825


def make_bridge_pair(directory: Path) -> bool:
    """Create the bridge's certificate and key if either is missing (both, together); True if made."""
    cert, key = directory / BRIDGE_CERT, directory / BRIDGE_KEY
    if cert.exists() and key.exists():
        return False
    cert.unlink(missing_ok=True)
    key.unlink(missing_ok=True)
    try:
        from mt5bridge.tls import generate_self_signed

        generate_self_signed(cert, key, DEFAULT_CERT_HOSTS, BRIDGE_CERT_DAYS, key_mode=0o644)
    except ImportError:  # no cryptography on this host: the openssl command makes the same pair
        _openssl_pair(cert, key)
    return True


def _openssl_pair(cert: Path, key: Path) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise OSError("neither the cryptography package nor the openssl command is available")
    names = ",".join(("IP:" if host[0].isdigit() or ":" in host else "DNS:") + host for host in DEFAULT_CERT_HOSTS)
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", str(BRIDGE_CERT_DAYS), "-subj", "/CN=tradewatch mt5bridge",
         "-addext", f"subjectAltName={names}", "-addext", "basicConstraints=critical,CA:TRUE,pathlen:0",
         "-addext", "keyUsage=critical,digitalSignature,keyCertSign", "-addext", "extendedKeyUsage=serverAuth"],
        check=True, capture_output=True,
    )
    for path in (cert, key):
        path.chmod(0o644)


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
    if make_bridge_pair(directory):
        created += [BRIDGE_CERT, BRIDGE_KEY]
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("TRADEWATCH_SECRETS_DIR") or str(Path(__file__).resolve().parents[1] / "secrets")
    parser.add_argument("--dir", type=Path, default=Path(default), help=f"where to write them (default {default})")
    args = parser.parse_args(argv)
    try:
        created = make_secrets(args.dir)
    except (OSError, subprocess.CalledProcessError) as exc:
        sys.stderr.write(f"cannot write the secrets under {args.dir}: {getattr(exc, 'strerror', None) or exc}\n")
        return 2
    kept = [name for name in (*SECRETS, BRIDGE_CERT, BRIDGE_KEY) if name not in created]
    sys.stdout.write(f"{args.dir}: created {', '.join(created) or 'nothing'}; kept {', '.join(kept) or 'nothing'}\n")
    sys.stdout.write(f"mt5 bridge certificate SHA-256 fingerprint: {fingerprint_of_file(args.dir / BRIDGE_CERT)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
