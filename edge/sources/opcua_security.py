"""OPC UA session security: policy and mode, the edge's own certificate (created on first use),
the server certificates it trusts (pinned by thumbprint), and a user whose password is read from
the environment or a file at every connect. No secret is ever logged."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.crypto import security_policies
from asyncua.common.utils import ServiceError
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kernel.logs import get_logger
from kernel.plant import OpcUaSecurity

log = get_logger(__name__)

POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
    "Aes128_Sha256_RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Aes256_Sha256_RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
}
MODES = {"Sign": ua.MessageSecurityMode.Sign, "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt}
# The application URI the edge's certificate names; a PLC that pins it sees the same after a restart.
APPLICATION_URI = f"urn:{socket.gethostname()}:open-mes:edge"


def thumbprint(certificate: x509.Certificate) -> str:
    """SHA-1 of the DER form, as OPC UA tools (and PLC web pages) show a certificate's thumbprint."""
    return hashlib.sha1(certificate.public_bytes(Encoding.DER)).hexdigest().upper()  # noqa: S324 - the standard's choice


def load_certificate(path: Path) -> x509.Certificate:
    data = path.read_bytes()
    return x509.load_pem_x509_certificate(data) if data.lstrip().startswith(b"-----") else x509.load_der_x509_certificate(data)


def trusted_thumbprints(locations: tuple[Path, ...]) -> set[str]:
    """Thumbprints of the certificate files listed, and of the certificates in the folders listed
    (a folder's other files, e.g. a key, are skipped with a log line)."""
    thumbprints = set()
    for location in locations:
        if not location.is_dir():
            thumbprints.add(thumbprint(load_certificate(location)))
            continue
        for file in sorted(f for f in location.iterdir() if f.is_file()):
            try:
                thumbprints.add(thumbprint(load_certificate(file)))
            except ValueError:
                log.warning("opcua.not_a_certificate_skipped", file=str(file))
    return thumbprints


def password(security: OpcUaSecurity) -> str:
    if security.password_env is not None:
        value = os.environ.get(security.password_env)
        if value is None:
            raise LookupError(f"the OPC UA password variable {security.password_env} is not set")
        return value
    assert security.password_file is not None
    return security.password_file.read_text(encoding="utf-8").rstrip("\r\n")


async def secure(client: Client, security: OpcUaSecurity, endpoint: str) -> None:
    """Set the client up as `security` says; call before connect."""
    if security.user is not None:
        client.set_user(security.user)
        client.set_password(password(security))
    if security.policy == "None":
        return
    certificate_file, key_file = Path(security.certificate), Path(security.private_key)  # type: ignore[arg-type]
    before = thumbprint(load_certificate(certificate_file)) if certificate_file.is_file() else None
    client.application_uri = APPLICATION_URI
    await client.setup_self_signed_certificate(key_file, certificate_file)
    own = thumbprint(load_certificate(certificate_file))
    if own != before:
        log.warning("opcua.client_certificate_created", endpoint=endpoint, certificate=str(certificate_file),
                    thumbprint=own, hint="trust this certificate on the server")
    trusted = trusted_thumbprints(security.trusted_server_certificates)

    async def validate(certificate: x509.Certificate, _application: Any) -> None:
        shown = thumbprint(certificate)
        if not trusted:
            log.info("opcua.server_certificate_accepted", endpoint=endpoint, thumbprint=shown,
                     hint="list it in trusted_server_certificates to pin it")
        elif shown not in trusted:
            log.warning("opcua.server_certificate_untrusted", endpoint=endpoint, thumbprint=shown)
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)

    client.certificate_validator = validate
    await client.set_security(POLICIES[security.policy], certificate_file, key_file, mode=MODES[security.mode])
