"""A test CA that makes short-lived X509 proxies (RFC 3820 layout, as voms-proxy-init writes
them: the proxy certificate, its key, then the user certificate) and PanDA tokens (JWTs)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(*cns: str) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "site-agent tests")]
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, cn) for cn in cns])


def _cert(subject, issuer, key, signer, start, end, ca=False) -> x509.Certificate:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


class GridCA:
    def __init__(self) -> None:
        now = dt.datetime.now(dt.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name("Test Grid CA")
        self.cert = _cert(
            self.name, self.name, self.key, self.key, now, now + dt.timedelta(days=9), True
        )
        self.user_key = ec.generate_private_key(ec.SECP256R1())
        self.user_name = _name("Test User")
        self.user = _cert(
            self.user_name, self.name, self.user_key, self.key, now, now + dt.timedelta(days=9)
        )

    def proxy(self, path: Path, seconds: float, mode: int = 0o600) -> Path:
        """A proxy valid for ``seconds`` more (negative: expired that long ago)."""
        now = dt.datetime.now(dt.UTC)
        key = ec.generate_private_key(ec.SECP256R1())
        end = now + dt.timedelta(seconds=seconds)
        cert = _cert(
            _name("Test User", "1234"), self.user_name, key, self.user_key,
            min(now, end) - dt.timedelta(hours=1), end,
        )  # fmt: skip
        pem = cert.public_bytes(serialization.Encoding.PEM)
        pem += key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        pem += self.user.public_bytes(serialization.Encoding.PEM)
        path.write_bytes(pem)
        os.chmod(path, mode)
        return path


def token(path: Path, seconds: float | None, mode: int = 0o600) -> Path:
    """A JWT-shaped PanDA token expiring in ``seconds`` (None: no exp claim)."""

    def b64(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"sub": "test"} | ({} if seconds is None else {"exp": int(_now() + seconds)})
    path.write_text(f"{b64({'alg': 'none'})}.{b64(claims)}.c2ln\n")
    os.chmod(path, mode)
    return path


def _now() -> float:
    import time

    return time.time()
