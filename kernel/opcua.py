"""Plant-file node addresses as asyncua NodeIds, for the edge (reading) and the simulators (serving)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence

from asyncua import ua

from kernel.plant import NodeAddress


class UnknownNamespace(LookupError):
    pass


def node_id(address: NodeAddress, namespaces: Sequence[str]) -> ua.NodeId:
    """The NodeId of `address` on a server with this namespace array (index -> URI)."""
    index = address.namespace_index
    if index is None:
        if address.namespace_uri not in namespaces:
            raise UnknownNamespace(f"namespace {address.namespace_uri} is not on the server")
        index = list(namespaces).index(address.namespace_uri)
    if address.kind == "i":
        return ua.NodeId(int(address.identifier), index, ua.NodeIdType.Numeric)
    if address.kind == "g":
        return ua.NodeId(uuid.UUID(str(address.identifier)), index, ua.NodeIdType.Guid)
    if address.kind == "b":
        return ua.NodeId(base64.b64decode(str(address.identifier)), index, ua.NodeIdType.ByteString)
    return ua.NodeId(str(address.identifier), index, ua.NodeIdType.String)
