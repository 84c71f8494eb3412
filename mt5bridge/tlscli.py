"""Command-line side of the bridge's TLS: the server's --cert/--key/--insecure and ``gen-cert``.

    python -m mt5bridge.server gen-cert --cert bridge.crt --key bridge.key [--host NAME ...]

prints the certificate's SHA-256 fingerprint (pin it on the bot: MT5_BRIDGE_FINGERPRINT) or
copy the certificate to the bot and use it as MT5_BRIDGE_CA_FILE.
"""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys
from pathlib import Path

from mt5bridge.tls import (
    DEFAULT_CERT_DAYS,
    DEFAULT_CERT_HOSTS,
    TLSSettingsError,
    generate_self_signed,
    server_context,
)

CERT_ENV = "MT5_BRIDGE_CERT_FILE"
KEY_ENV = "MT5_BRIDGE_KEY_FILE"
INSECURE_WARNING = (
    "mt5bridge runs WITHOUT TLS (--insecure): the token and every call cross in clear text; "
    "use it only on loopback or a link you trust"
)

log = logging.getLogger("mt5bridge.server")


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("TLS (required unless --insecure)")
    group.add_argument("--cert", metavar="FILE", help=f"PEM certificate (default ${CERT_ENV})")
    group.add_argument("--key", metavar="FILE", help=f"PEM private key (default ${KEY_ENV})")
    group.add_argument("--insecure", action="store_true", help="plain TCP: no encryption (warned on every start)")


def tls_context(options: argparse.Namespace, environ: dict[str, str] | os._Environ = os.environ) -> ssl.SSLContext | None:
    """The server context from --cert/--key (or their variables); None with --insecure."""
    cert = options.cert or environ.get(CERT_ENV, "").strip() or None
    key = options.key or environ.get(KEY_ENV, "").strip() or None
    if options.insecure:
        if options.cert or options.key:
            raise TLSSettingsError("--insecure: cannot be combined with --cert/--key")
        return None
    if not cert or not key:
        raise TLSSettingsError(
            f"--cert/--key: a TLS certificate and key are required ({CERT_ENV}/{KEY_ENV}; make one with "
            f"`python -m mt5bridge.server gen-cert`), or --insecure for plain TCP"
        )
    for option, path in (("--cert", cert), ("--key", key)):
        if not Path(path).is_file():
            raise TLSSettingsError(f"{option}: {path!r} is not a file")
    try:
        return server_context(cert, key)
    except TLSSettingsError as exc:
        raise TLSSettingsError(f"--cert/--key: {exc}") from None


def tls_context_or_exit(parser: argparse.ArgumentParser, options: argparse.Namespace) -> ssl.SSLContext | None:
    """tls_context, or one line and exit 2 (the config-error style of every entry point)."""
    try:
        return tls_context(options)
    except TLSSettingsError as exc:
        parser.exit(2, f"{parser.prog}: config error: {exc}\n")


def warn_if_insecure(insecure: bool) -> None:
    """Said on every start: plain TCP must never go unnoticed."""
    if insecure:
        log.warning(INSECURE_WARNING)


def gen_cert_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mt5bridge.server gen-cert",
        description="Write a self-signed certificate and key for the bridge; print its SHA-256 fingerprint.",
    )
    parser.add_argument("--cert", required=True, metavar="FILE")
    parser.add_argument("--key", required=True, metavar="FILE")
    parser.add_argument("--host", action="append", metavar="NAME",
                        help=f"a name or IP the certificate is valid for (repeatable; default {', '.join(DEFAULT_CERT_HOSTS)})")
    parser.add_argument("--days", type=int, default=DEFAULT_CERT_DAYS)
    options = parser.parse_args(argv)
    if not 1 <= options.days <= 3650:
        parser.exit(2, f"{parser.prog}: --days: must be between 1 and 3650\n")
    for path in (options.cert, options.key):
        if os.path.exists(path):
            parser.exit(2, f"{parser.prog}: {path} exists; remove it first to make a new pair\n")
    try:
        import cryptography  # noqa: F401 - only this command needs it
    except ImportError:
        parser.exit(2, f"{parser.prog}: needs the 'cryptography' package (pip install cryptography)\n")
    try:
        fingerprint = generate_self_signed(options.cert, options.key, tuple(options.host or DEFAULT_CERT_HOSTS),
                                           options.days)
    except (OSError, ValueError) as exc:
        parser.exit(2, f"{parser.prog}: cannot write the pair: {exc}\n")
    sys.stdout.write(
        f"wrote {options.cert} and {options.key} (keep the key on the bridge host only)\n"
        f"SHA-256 fingerprint: {fingerprint}\n"
        f"bot side: MT5_BRIDGE_FINGERPRINT={fingerprint}  or  MT5_BRIDGE_CA_FILE=<a copy of {options.cert}>\n"
    )
    return 0
