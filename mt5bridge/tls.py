"""TLS for the bridge: server and client contexts, certificate pinning, self-signed pairs.

Why TLS: the bridge carries the shared token and every order across machines (the Wine
container, a Windows host next to terminal64.exe). The server loads a certificate and key
with the standard ``ssl`` module only (the Windows Python beside the terminal has nothing
else); the client trusts the server either through a CA file (which may be the self-signed
certificate itself) or through the pinned SHA-256 fingerprint of the server certificate,
which needs no CA and no host name. ``generate_self_signed`` needs the ``cryptography``
package and is only used by ``python -m mt5bridge.server gen-cert`` and deploy/make_secrets.py.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import ipaddress
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

#: Names a generated certificate is valid for unless told otherwise: the compose services
#: (mt5, mt5-wine) and loopback.
DEFAULT_CERT_HOSTS = ("localhost", "127.0.0.1", "::1", "mt5", "mt5-wine")
DEFAULT_CERT_DAYS = 825
FINGERPRINT_BYTES = 32  # SHA-256


class TLSSettingsError(ValueError):
    """A TLS setting cannot be used (missing file, bad fingerprint); one line, names the setting."""


def normalise_fingerprint(text: str) -> str:
    """``AB:CD:...`` (openssl's form) from any case, with or without colons, spaces or a sha256: prefix."""
    raw = text.strip()
    if raw.lower().startswith("sha256:"):
        raw = raw[len("sha256:") :]
    digits = "".join(ch for ch in raw if ch not in ": ").upper()
    if len(digits) != 2 * FINGERPRINT_BYTES or any(ch not in "0123456789ABCDEF" for ch in digits):
        raise ValueError(f"must be a SHA-256 fingerprint ({2 * FINGERPRINT_BYTES} hex digits, colons allowed)")
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def fingerprint_of_der(der: bytes) -> str:
    """The SHA-256 fingerprint of a DER certificate, in ``AB:CD:...`` form."""
    return normalise_fingerprint(hashlib.sha256(der).hexdigest())


def fingerprint_of_file(cert_file: str | Path) -> str:
    """The fingerprint of the first certificate of a PEM file."""
    pem = Path(cert_file).read_text(encoding="ascii")
    return fingerprint_of_der(ssl.PEM_cert_to_DER_cert(pem))


def fingerprints_match(expected: str, der: bytes) -> bool:
    """Constant-time comparison of a pinned fingerprint with a presented certificate."""
    return hmac.compare_digest(normalise_fingerprint(expected), fingerprint_of_der(der))


def server_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    """TLS 1.2+ server context with our certificate; raises TLSSettingsError with one line."""
    for name, path in (("certificate", cert_file), ("key", key_file)):
        if not Path(path).is_file():
            raise TLSSettingsError(f"TLS {name} file {str(path)!r} does not exist")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except (ssl.SSLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise TLSSettingsError(f"cannot load the TLS certificate/key ({cert_file}, {key_file}): {reason}") from None
    return context


@dataclass(frozen=True)
class ClientTrust:
    """How a client decides the server is the right one: a CA file, a pinned fingerprint, or both.

    ``insecure`` (neither) is plain TCP and must be asked for explicitly.
    """

    ca_file: str | None = None
    fingerprint: str | None = None
    insecure: bool = False

    def __post_init__(self) -> None:
        if self.insecure and (self.ca_file or self.fingerprint):
            raise TLSSettingsError("insecure (plain TCP) cannot be combined with a CA file or a fingerprint")
        if not self.insecure and not (self.ca_file or self.fingerprint):
            raise TLSSettingsError(
                "no TLS trust configured: set MT5_BRIDGE_CA_FILE or MT5_BRIDGE_FINGERPRINT "
                "(or MT5_BRIDGE_INSECURE=1 for plain TCP on a trusted link)"
            )
        if self.fingerprint:
            try:
                object.__setattr__(self, "fingerprint", normalise_fingerprint(self.fingerprint))
            except ValueError as exc:
                raise TLSSettingsError(f"MT5_BRIDGE_FINGERPRINT: {exc}") from None
        if self.ca_file and not Path(self.ca_file).is_file():
            raise TLSSettingsError(f"MT5_BRIDGE_CA_FILE: {self.ca_file!r} does not exist")

    def context(self) -> ssl.SSLContext | None:
        """The client context, or None for plain TCP."""
        if self.insecure:
            return None
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.ca_file:
            try:
                context.load_verify_locations(cafile=self.ca_file)
            except (ssl.SSLError, OSError) as exc:
                raise TLSSettingsError(f"MT5_BRIDGE_CA_FILE: cannot load {self.ca_file!r}: {exc}") from None
        else:
            # Pinned only: the fingerprint check after the handshake is the whole verification.
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def generate_self_signed(
    cert_file: str | Path,
    key_file: str | Path,
    hosts: tuple[str, ...] = DEFAULT_CERT_HOSTS,
    days: int = DEFAULT_CERT_DAYS,
    *,
    key_mode: int = 0o600,
) -> str:
    """Write a self-signed ECDSA P-256 certificate and its key; returns the certificate fingerprint.

    The certificate is its own CA (basicConstraints CA:TRUE, path length 0), so a client can
    use it directly as MT5_BRIDGE_CA_FILE. The key file is created with ``key_mode`` and never
    overwrites an existing file.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tradewatch mt5bridge")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=False, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write_new(Path(key_file), key_pem, key_mode)
    _write_new(Path(cert_file), certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return fingerprint_of_der(certificate.public_bytes(serialization.Encoding.DER))


def _write_new(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    path.chmod(mode)  # whatever the umask


CA_FILE_ENV = "MT5_BRIDGE_CA_FILE"
FINGERPRINT_ENV = "MT5_BRIDGE_FINGERPRINT"
INSECURE_ENV = "MT5_BRIDGE_INSECURE"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def client_trust(
    ca_file: str | None = None,
    fingerprint: str | None = None,
    insecure: bool | None = None,
    environ: dict[str, str] | os._Environ = os.environ,
) -> ClientTrust:
    """Explicit arguments if any is given, else $MT5_BRIDGE_CA_FILE / _FINGERPRINT / _INSECURE."""
    if ca_file is None and fingerprint is None and insecure is None:
        ca_file = environ.get(CA_FILE_ENV, "").strip() or None
        fingerprint = environ.get(FINGERPRINT_ENV, "").strip() or None
        raw = environ.get(INSECURE_ENV, "").strip().lower()
        if raw not in _TRUE + _FALSE:
            raise TLSSettingsError(f"{INSECURE_ENV}: expected true or false")
        insecure = raw in _TRUE
    return ClientTrust(ca_file=ca_file, fingerprint=fingerprint, insecure=bool(insecure))
