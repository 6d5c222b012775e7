"""TLS material made on this host, never committed: a local CA, the edge's server
certificate and those of the exporters of pull-mode hosts, all under private/ (next to
.env, git-ignored). Used only when the values do not bring their own certificate.

    private/ca/ca.crt, ca.key          the local CA (key 0600, mounted nowhere)
    private/edge/server.crt, .key      the edge's certificate (mounted into the edge)
    private/trust/ca.crt               the CA certificate alone, for what must trust it
    private/web/server.crt, .key       Prometheus' and Alertmanager's (values web_tls)

private/web/ and private/trust/ are mounted into containers whose users are not this
host's: they are 0755 (the key 0644) inside private/, which stays 0700 on the host.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .secrets import write_private

CA_DAYS = 3650
SERVER_DAYS = 397          # what browsers accept for a server certificate
RENEW_BEFORE = dt.timedelta(days=30)


def private_dir(env_file: Path) -> Path:
    """Where generated TLS material and agent bundles go: next to .env, made private."""
    private = env_file.resolve().parent / "private"
    private.mkdir(mode=0o700, exist_ok=True)
    return private


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.chmod(0o644)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey, mode: int = 0o600) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    write_private(path, pem)
    path.chmod(mode)


def local_ca(private: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The local CA, made on first use and kept (agents and pull hosts trust it)."""
    cert_path, key_path = private / "ca" / "ca.crt", private / "ca" / "ca.key"
    if cert_path.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if cert.not_valid_after_utc - _now() > RENEW_BEFORE:
            _write_cert(private / "trust" / "ca.crt", cert)
            return cert, key
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Observability bundle local CA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "observability bundle")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    _write_cert(private / "trust" / "ca.crt", cert)
    return cert, key


def _alt_names(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _fits(cert_path: Path, ca: x509.Certificate, names: list[str]) -> bool:
    """An existing server certificate is kept while it is signed by this CA, names
    exactly these names and has more than a month left."""
    if not cert_path.exists():
        return False
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    try:
        cert.verify_directly_issued_by(ca)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
        return False
    return set(san) == set(_alt_names(names)) and cert.not_valid_after_utc - _now() > RENEW_BEFORE


def server_certificate(private: Path, cert_path: Path, key_path: Path, names: list[str],
                       key_mode: int = 0o600) -> bool:
    """A certificate for `names` signed by the local CA at cert_path/key_path; returns
    True when it was (re)made."""
    ca, ca_key = local_ca(private)
    if _fits(cert_path, ca, names) and key_path.exists():
        return False
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName(_alt_names(names)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    _write_key(key_path, key, key_mode)
    _write_cert(cert_path, cert)
    return True


def edge_names(values: dict) -> list[str]:
    return [values["edge"]["hostname"], *values["edge"]["alt_names"]]


# Names Prometheus and Alertmanager are reached by inside the stack: their own loopback
# (health checks, Prometheus' scrape of itself), their service names and aliases.
WEB_NAMES = ["localhost", "127.0.0.1", "prometheus", "prometheus.stack", "alertmanager", "alertmanager-2"]


def web_names(values: dict) -> list[str]:
    bind = [] if ipaddress.ip_address(values["bind_address"]).is_unspecified else [values["bind_address"]]
    return list(dict.fromkeys([*WEB_NAMES, values["edge"]["hostname"], *bind, *values["web_tls"]["alt_names"]]))


def ensure(values: dict, private: Path) -> None:
    """What the running stack mounts from private/: the edge's certificate when the edge
    is on and the values bring none, the local CA when pull-mode hosts are scraped or
    Prometheus and Alertmanager serve TLS (with their certificate)."""
    if values["layers"]["edge"] and not values["edge"]["tls"]["cert_file"]:
        server_certificate(private, private / "edge" / "server.crt", private / "edge" / "server.key",
                           edge_names(values))
    if any(host["mode"] == "pull" for host in values["hosts"].values()):
        local_ca(private)
    if values["web_tls"]["enabled"]:
        server_certificate(private, private / "web" / "server.crt", private / "web" / "server.key",
                           web_names(values), key_mode=0o644)
    for shared in ("trust", "web"):
        if (private / shared).is_dir():
            (private / shared).chmod(0o755)
