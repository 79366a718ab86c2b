"""``taskpost server --ssl-certfile --ssl-keyfile`` serves HTTPS with uvicorn's certificate options:
a certificate made here, signed by a CA made here, that an httpx client trusting that CA accepts."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import httpx
import pytest

pytest.importorskip("cryptography", reason="the dev extra's cryptography makes the test certificates")

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from taskpost.launch import LocalCoordinator
from taskpost.protocol import API_PREFIX


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)


def _make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signs for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("Taskpost test CA"))
        .issuer_name(_name("Taskpost test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    _write_key(server_key, key_file)
    return ca_file, cert_file, key_file


def test_the_coordinator_serves_https_with_the_given_certificate(tmp_path: Path) -> None:
    ca_file, cert_file, key_file = _make_certificates(tmp_path)
    trust_the_ca = ssl.create_default_context(cafile=str(ca_file))
    coordinator = LocalCoordinator(
        tmp_path,
        server_args=["--ssl-certfile", str(cert_file), "--ssl-keyfile", str(key_file)],
        scheme="https",
        verify=trust_the_ca,
    ).start()
    try:
        assert coordinator.url.startswith("https://")
        health = httpx.get(f"{coordinator.url}/health", verify=trust_the_ca)
        assert health.status_code == 200 and health.json()["database"] == "ok"
        keys = httpx.get(
            f"{coordinator.url}{API_PREFIX}/keys",
            headers={"Authorization": f"Bearer {coordinator.admin_key}"},
            verify=trust_the_ca,
        )
        assert keys.status_code == 200, keys.text

        # A client that does not trust the CA is refused by its own TLS check, and plain HTTP fails.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"{coordinator.url}/health")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{coordinator.port}/health")
    finally:
        coordinator.stop()
