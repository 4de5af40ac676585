"""OPC UA session security: policy and mode, the edge's own certificate (created on first use),
the server certificates it trusts (pinned by thumbprint), and a user whose password is read from
the environment or a file at every connect. No secret is ever logged."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.crypto import security_policies
from asyncua.common.utils import ServiceError
from cryptography import x509

from kernel.logs import get_logger
from kernel.opcua_security import load_certificate, own_certificate, password, thumbprint
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


async def secure(client: Client, security: OpcUaSecurity, endpoint: str) -> None:
    """Set the client up as `security` says; call before connect."""
    if security.user is not None:
        client.set_user(security.user)
        client.set_password(password(security))
    if security.policy == "None":
        return
    certificate_file, key_file = Path(security.certificate), Path(security.private_key)  # type: ignore[arg-type]
    client.application_uri = APPLICATION_URI
    own = await own_certificate(certificate_file, key_file, APPLICATION_URI, socket.gethostname(), server=False)
    if own.created:
        log.warning("opcua.client_certificate_created", endpoint=endpoint, certificate=str(certificate_file),
                    thumbprint=own.thumbprint, hint="trust this certificate on the server")
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
