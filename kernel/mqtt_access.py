"""Who may do what on the broker: the plant's MQTT identities, their passwords and their grants.

Each edge publishes only its own machines' data topics and its own status topic (also its Last Will),
and reads only its own acknowledgment topic; the core reads every data and status topic and publishes
only the edges' acknowledgments and alert notifications. The embedded
broker is configured from these grants (kernel/embedded/broker.py), a plant's own broker the same way
by hand (docs/security.md). The core refuses, on its side too, data and status for a machine from an
edge the plant file does not assign it to (core/rules/assignment.py): a broker without these grants
still cannot make one edge count for another's machine.

Passwords never sit in the plant file: an identity names an environment variable or a file; one that
names neither gets a generated password from a broker the project starts itself (`mes demo`, tests).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import shlex
from dataclasses import dataclass
from typing import Literal

from kernel.mqtt import with_options
from kernel.payload import (
    ACK_SUBSCRIPTION,
    ALERTS_SUBSCRIPTION,
    DATA_SUBSCRIPTION,
    STATUS_SUBSCRIPTION,
    ack_topic,
    data_topic,
    status_topic,
)
from kernel.plant import PasswordSource, Plant
from kernel.settings import Settings

Access = Literal["read", "write"]
# Mosquitto's own format for password files ($7$: PBKDF2-SHA512, mosquitto_passwd(1)); its default is 101
# iterations, which a stolen file would not resist long.
MOSQUITTO_HASH_ITERATIONS = 20_000
MOSQUITTO_SALT_BYTES = 12


@dataclass(frozen=True)
class Grant:
    topic: str  # a topic filter: + and # as in a subscription
    access: Access


@dataclass(frozen=True)
class BrokerUser:
    username: str
    password: str
    grants: tuple[Grant, ...]


def core_grants() -> tuple[Grant, ...]:
    """Read-mostly: every machine's data and every edge's status; write only the edges' acknowledgments and
    the alert notifications."""
    return (Grant(DATA_SUBSCRIPTION, "read"), Grant(STATUS_SUBSCRIPTION, "read"), Grant(ACK_SUBSCRIPTION, "write"),
            Grant(ALERTS_SUBSCRIPTION, "write"))


def edge_grants(plant: Plant, edge_id: str) -> tuple[Grant, ...]:
    """The data topics of the machines the plant file assigns to the edge and its status topic, to write;
    its acknowledgment topic, to read."""
    machines = tuple(Grant(data_topic(*machine.path), "write") for machine in plant.machines_of(edge_id))
    return (*machines, Grant(status_topic(edge_id), "write"), Grant(ack_topic(edge_id), "read"))


ALL_ACCESS = (Grant("#", "read"), Grant("#", "write"))


def read_password(source: PasswordSource, who: str) -> str | None:
    """The password a source names; None when it names none. A source that names a missing variable or
    an unreadable file is a configuration error, said with what to fix."""
    if source.password_env:
        value = os.environ.get(source.password_env)
        if not value:
            raise ValueError(f"MQTT password of {who}: environment variable {source.password_env} is not set")
        return value
    if source.password_file:
        try:
            first_line = source.password_file.read_text(encoding="utf-8").splitlines()[:1]
        except OSError as error:
            raise ValueError(f"MQTT password of {who}: cannot read {source.password_file}: {error.strerror}") from None
        if not first_line or not first_line[0]:
            raise ValueError(f"MQTT password of {who}: {source.password_file} is empty")
        return first_line[0]
    return None


def client_credentials(plant: Plant, edge_id: str | None = None) -> tuple[str, str | None]:
    """(username, password or None) of the core (`edge_id` None) or of one edge, from the plant file."""
    if edge_id is None:
        return plant.mqtt.core.username, read_password(plant.mqtt.core, "the core")
    for identity in plant.edge_identities():
        if identity.id == edge_id:
            return identity.login, read_password(identity, f"edge {edge_id}")
    return edge_id, None


DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1883"


def mqtt_client_url(settings: Settings, plant: Plant, edge_id: str | None = None) -> str:
    """The URL the core (`edge_id` None) or an edge connects with: MES_MQTT_URL (or the default),
    completed with that identity's credentials from the plant file, unless the URL names its own, and
    with the MES_MQTT_*_FILE TLS files. An identity with no password source connects without one."""
    username, password = client_credentials(plant, edge_id)
    return with_options(settings.mqtt_url or DEFAULT_MQTT_URL, username=username if password else None, password=password,
                        **{name: str(path) for name, path in (("ca_file", settings.mqtt_ca_file),
                                                              ("cert_file", settings.mqtt_cert_file),
                                                              ("key_file", settings.mqtt_key_file)) if path})


def plant_grants(plant: Plant) -> dict[str, tuple[Grant, ...]]:
    """Every username of the plant (the core's, then each edge's) with its grants."""
    return {plant.mqtt.core.username: core_grants(),
            **{identity.login: edge_grants(plant, identity.id) for identity in plant.edge_identities()}}


def _configured_passwords(plant: Plant) -> dict[str, str | None]:
    """Each broker username of the plant with the password its source names (None: no source)."""
    sources = {plant.mqtt.core.username: (plant.mqtt.core, "the core"),
               **{identity.login: (identity, f"edge {identity.id}") for identity in plant.edge_identities()}}
    return {username: read_password(*sources[username]) for username in plant_grants(plant)}


def plant_users(plant: Plant) -> tuple[BrokerUser, ...]:
    """The core's and every edge's broker user, with its password (generated when the file names no source)."""
    grants = plant_grants(plant)
    return tuple(BrokerUser(username, password or secrets.token_urlsafe(18), grants[username])
                 for username, password in _configured_passwords(plant).items())


def mosquitto_password_file(plant: Plant) -> str:
    """A Mosquitto password file (`password_file`) for the plant's own broker: every identity's password from its
    source. An identity without one is an error naming it: a made-up password would lock that process out."""
    passwords = _configured_passwords(plant)
    missing = sorted(username for username, password in passwords.items() if password is None)
    if missing:
        raise ValueError(f"no password source for the broker user(s) {', '.join(missing)}: give each a password_env or "
                         "password_file in the plant file's mqtt section (docs/security.md)")
    return "".join(f"{mosquitto_password_line(username, password)}\n" for username, password in passwords.items()
                   if password is not None)


def mosquitto_password_line(username: str, password: str, salt: bytes | None = None) -> str:
    """One line of a Mosquitto 2 password file, as `mosquitto_passwd` writes it."""
    salt = salt if salt is not None else secrets.token_bytes(MOSQUITTO_SALT_BYTES)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, MOSQUITTO_HASH_ITERATIONS)
    encode = base64.b64encode
    return f"{username}:$7${MOSQUITTO_HASH_ITERATIONS}${encode(salt).decode()}${encode(digest).decode()}"


def mosquitto_acl(grants: dict[str, tuple[Grant, ...]]) -> str:
    """A Mosquitto ACL file (`acl_file`): each user's grants; nothing for anyone else (anonymous is off anyway)."""
    blocks = ["\n".join([f"user {username}", *(f"topic {grant.access} {grant.topic}" for grant in user_grants)])
              for username, user_grants in grants.items()]
    return "\n\n".join(blocks) + "\n"


# Mosquitto's dynamic security names a read grant twice (may subscribe, may be sent) and a write grant once.
DYNSEC_ACL_TYPES = {"read": ("subscribePattern", "publishClientReceive"), "write": ("publishClientSend",)}


def dynsec_script(plant: Plant) -> str:
    """A shell script of `mosquitto_ctrl dynsec` commands giving a broker with the dynamic security plugin the
    plant's grants: one role per user, nothing received that no role allows. Its arguments are mosquitto_ctrl's
    connection options (broker, administrator, TLS). Each password is read where the plant file says, at run
    time and given on mosquitto_ctrl's command line (run it on the administrator's host); `createClient` asks
    for those it names no source for."""
    sources: dict[str, PasswordSource] = {plant.mqtt.core.username: plant.mqtt.core,
                                          **{identity.login: identity for identity in plant.edge_identities()}}
    lines = ["#!/bin/sh", "# sh THIS-FILE -h BROKER -p 8883 --cafile ca.crt -u admin -P ADMIN-PASSWORD", "set -e",
             'mosquitto_ctrl "$@" dynsec setDefaultACLAccess publishClientReceive deny']
    for username, user_grants in plant_grants(plant).items():
        lines.append(f'mosquitto_ctrl "$@" dynsec createRole {username}')
        lines += [f"mosquitto_ctrl \"$@\" dynsec addRoleACL {username} {acl_type} '{grant.topic}' allow"
                  for grant in user_grants for acl_type in DYNSEC_ACL_TYPES[grant.access]]
        source = sources[username]
        password = (f' -p "${{{source.password_env}}}"' if source.password_env else
                    f' -p "$(head -n 1 {shlex.quote(str(source.password_file))})"' if source.password_file else "")
        lines += [f'mosquitto_ctrl "$@" dynsec createClient {username}{password}',
                  f'mosquitto_ctrl "$@" dynsec addClientRole {username} {username}']
    return "\n".join(lines) + "\n"
