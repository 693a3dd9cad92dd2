"""TLS in the image: FROM scratch has no CA store, so the image carries a bundle at
/etc/ssl/certs/ca-certificates.crt and names it in SSL_CERT_FILE, where both TLS stacks
of the deployer (the AWS SDK's client and reqwest's platform verifier, both through
rustls-native-certs) look. A local HTTPS endpoint whose certificate comes from a test CA
shows that verification is on (refused with the image's bundle) and that the bundle is
what it trusts (accepted once the test CA is in that file)."""

from __future__ import annotations

import datetime
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import ENGINE, HOST_FLAGS


def issue(tmp: Path) -> tuple[Path, Path, Path]:
    """A test CA and a certificate for 127.0.0.1 it signed: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "openai-lambda-proxy test CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class Refuse(BaseHTTPRequestHandler):
    """Answers every call as STS answers unknown credentials."""

    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("content-length") or 0))
        body = (
            b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>'
            b"<Code>InvalidClientTokenId</Code><Message>The security token included in the request is invalid."
            b"</Message></Error><RequestId>1</RequestId></ErrorResponse>"
        )
        self.send_response(403)
        self.send_header("content-type", "text/xml")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def https_endpoint(tmp_path):
    ca, cert, key = issue(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", ca
    server.shutdown()


def deployer(image: str, endpoint: str, *mount: str) -> str:
    out = subprocess.run(
        [*ENGINE, "run", "--rm", *HOST_FLAGS, *mount,
         "-e", "DEPLOYER_COMMAND=destroy", "-e", "AWS_REGION=us-east-1", "-e", f"AWS_ENDPOINT_URL={endpoint}",
         "-e", "AWS_ACCESS_KEY_ID=testing", "-e", "AWS_SECRET_ACCESS_KEY=testing", "-e", "AWS_EC2_METADATA_DISABLED=true",
         image],
        capture_output=True, text=True, timeout=120, check=False,
    )
    return out.stdout + out.stderr


def test_the_image_verifies_tls_against_its_ca_bundle(image, https_endpoint, tmp_path):
    endpoint, ca = https_endpoint
    refused = deployer(image, endpoint)
    assert "UnknownIssuer" in refused or "invalid peer certificate" in refused, refused
    assert "AWS refused the credentials" not in refused, refused

    # The image's bundle plus the test CA, where SSL_CERT_FILE points.
    bundle = tmp_path / "bundle.pem"
    # No shell or cat in a scratch image: copy the bundle out of a created container.
    name = f"olp_tls_{tmp_path.name[-8:]}"
    subprocess.run([*ENGINE, "create", "--name", name, image], check=True, capture_output=True)
    try:
        subprocess.run([*ENGINE, "cp", f"{name}:/etc/ssl/certs/ca-certificates.crt", str(bundle)], check=True)
    finally:
        subprocess.run([*ENGINE, "rm", name], check=False, capture_output=True)
    assert bundle.read_bytes().count(b"BEGIN CERTIFICATE") > 100, "the image's CA bundle is (nearly) empty"
    bundle.write_bytes(bundle.read_bytes() + ca.read_bytes())
    trusted = deployer(image, endpoint, "-v", f"{bundle}:/etc/ssl/certs/ca-certificates.crt:ro")
    assert "AWS refused the credentials (InvalidClientTokenId)" in trusted, trusted
