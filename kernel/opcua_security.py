"""OPC UA security shared by the edge (a client) and the simulators (a server): an application's own
certificate created on first use, certificate thumbprints, and the password of a plant file's
`security.user`, read from the environment or a file, never from the plant file. No secret is logged."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import NamedTuple

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from kernel.plant import OpcUaSecurity


class OwnCertificate(NamedTuple):
    thumbprint: str
    created: bool  # made (or remade, e.g. expired) by this call: to be trusted on the other side


def thumbprint(certificate: x509.Certificate) -> str:
    """SHA-1 of the DER form, as OPC UA tools (and PLC web pages) show a certificate's thumbprint."""
    return hashlib.sha1(certificate.public_bytes(Encoding.DER)).hexdigest().upper()  # noqa: S324 - the standard's choice


def load_certificate(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    return x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----") else x509.load_der_x509_certificate(data)


async def own_certificate(certificate_file: Path, key_file: Path, application_uri: str, host_name: str, *,
                          server: bool) -> OwnCertificate:
    """The application's self-signed certificate (DER) and key (PEM) at these paths, created when absent
    or no longer valid for `application_uri` and `host_name` (asyncua's rules); kept as they are otherwise,
    so a peer that trusts its thumbprint goes on trusting it across restarts."""
    before = thumbprint(load_certificate(certificate_file)) if certificate_file.is_file() else None
    for directory in {certificate_file.parent, key_file.parent}:
        directory.mkdir(parents=True, exist_ok=True)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    await cert_gen.setup_self_signed_certificate(key_file, certificate_file, application_uri, host_name, [usage], {})
    now = thumbprint(load_certificate(certificate_file))
    return OwnCertificate(now, now != before)


def password(security: OpcUaSecurity) -> str:
    """The password of `security.user`: its environment variable, or its file (a trailing newline ignored)."""
    if security.password_env is not None:
        value = os.environ.get(security.password_env)
        if value is None:
            raise LookupError(f"the OPC UA password variable {security.password_env} is not set")
        return value
    if security.password_file is None:
        raise LookupError("the OPC UA security names no password_env or password_file")
    try:
        return security.password_file.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as error:
        raise LookupError(f"the OPC UA password file {security.password_file} cannot be read: {error.strerror}") from None
