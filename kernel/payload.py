"""What travels over MQTT between the edge agents and the core: topics and JSON payloads.

Data topic, one per machine (ISA-95 path):
    mes/v1/<site>/<area>/<line>/<machine>/data
Edge status topic, retained, also the edge's Last Will:
    mes/v1/edge/<edge_id>/status
Acknowledgment topic, retained, published by the core to one edge:
    mes/v1/edge/<edge_id>/ack

A data message carries many samples of one machine. Counter samples carry the cumulative value the
PLC shows (never a delta): the core derives deltas, so a lost or repeated message cannot change a
total. `(edge_id, epoch, seq)` identifies a message for ever: `epoch` grows at every edge start and is
kept on the edge's disk, `seq` grows with every message within an epoch.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

import msgspec
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

from kernel.signals import ORDER, ORDER_ID_MAX_LENGTH, Signal

TOPIC_ROOT = "mes/v1"
DATA_SUBSCRIPTION = f"{TOPIC_ROOT}/+/+/+/+/data"
STATUS_SUBSCRIPTION = f"{TOPIC_ROOT}/edge/+/status"
ACK_SUBSCRIPTION = f"{TOPIC_ROOT}/edge/+/ack"  # the core's acknowledgments, one retained topic per edge
ALERTS_SUBSCRIPTION = f"{TOPIC_ROOT}/alerts/#"  # the core's alert notifications (mes.services.notifications)

NonNegativeInt = Annotated[StrictInt, Field(ge=0, le=2**63 - 1)]
# Printable ASCII without spaces at either end; "" means the PLC reports no order.
ORDER_ID = re.compile(r"(|[!-~]|[!-~][ -~]*[!-~])")


def is_order_id(text: str) -> bool:
    return len(text) <= ORDER_ID_MAX_LENGTH and ORDER_ID.fullmatch(text) is not None
PositiveInt = Annotated[StrictInt, Field(ge=1, le=2**63 - 1)]


def data_topic(site: str, area: str, line: str, machine: str) -> str:
    return f"{TOPIC_ROOT}/{site}/{area}/{line}/{machine}/data"


def status_topic(edge_id: str) -> str:
    return f"{TOPIC_ROOT}/edge/{edge_id}/status"


def ack_topic(edge_id: str) -> str:
    return f"{TOPIC_ROOT}/edge/{edge_id}/ack"


def parse_data_topic(topic: str) -> tuple[str, str, str, str] | None:
    """(site, area, line, machine) of a data topic, or None when the topic is not one."""
    parts = topic.split("/")
    if len(parts) != 7 or "/".join(parts[:2]) != TOPIC_ROOT or parts[6] != "data":
        return None
    return parts[2], parts[3], parts[4], parts[5]


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    ts: AwareDatetime = Field(description="source timestamp (OPC UA SourceTimestamp, or the edge's read time)")
    signal: Signal
    value: NonNegativeInt | StrictStr = Field(description="a number; text only for the order signal")

    @model_validator(mode="after")
    def _text_only_for_the_order(self) -> Sample:
        refusal = _sample_refusal(self.signal, self.value)
        if refusal is not None:
            raise ValueError(refusal)
        return self


def _sample_refusal(signal: str, value: int | str) -> str | None:
    """Why a sample's value cannot be its signal's: text only for the order, and an order id's form."""
    if (signal == ORDER) != isinstance(value, str):
        return f"signal {signal!r} carries {'text' if signal == ORDER else 'a number'}, not {value!r}"
    if signal == ORDER and isinstance(value, str) and not is_order_id(value):
        return (f"order id {value!r} must be at most {ORDER_ID_MAX_LENGTH} printable ASCII "
                "characters without spaces at either end")
    return None


class Position(BaseModel):
    """A message's place in its edge's sequence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epoch: PositiveInt
    seq: PositiveInt


class DataMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    edge_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
    epoch: PositiveInt
    seq: PositiveInt
    machine: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
    historical: StrictBool = Field(default=False, description="true when replayed from the edge's disk queue")
    prev: Position | None = Field(default=None, description="the message this one follows in the edge's publication: "
                                  "the core ingests it only once it has that one (absent: no such check)")
    samples: Annotated[list[Sample], Field(min_length=1)]

    def content(self) -> bytes:
        """What the message says, whatever its bytes and however it travelled (`historical`, `prev`)."""
        return self.model_dump_json(exclude={"historical", "prev"}).encode()


# --- the core's decoding of data messages --------------------------------------------------------
# DataMessage's schema again, in msgspec: the core decodes every sample of the plant, and msgspec does it
# several times faster than pydantic. `decode_data` takes from it only what DataMessage takes as well, and
# asks DataMessage about everything else, so a refused message has DataMessage's reasons and the few forms
# only pydantic reads (a time without seconds, a decimal comma, a Unix time in a string) still pass.
# tests/kernel/test_payload_decoding.py holds the two to the same values and the same content bytes.

# The Structs are left out of the cyclic garbage collector (gc=False): they hold no reference cycle, and a batch
# keeps thousands of them alive, which would make every young-generation collection walk them.
_Slug = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}\Z")]  # \Z: no newline after it, as pydantic
_Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_Positive = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class DecodedSample(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    ts: Annotated[datetime, msgspec.Meta(tz=True)]
    signal: Signal
    value: _Count | str


class DecodedPosition(msgspec.Struct, frozen=True, forbid_unknown_fields=True, gc=False):
    epoch: _Positive
    seq: _Positive


class DecodedMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, gc=False):
    """A data message as `decode_data` returns it: DataMessage's fields, their values as DataMessage has them."""

    v: Literal[1] = 1
    edge_id: _Slug
    epoch: _Positive
    seq: _Positive
    machine: _Slug
    historical: bool = False
    prev: DecodedPosition | None = None
    samples: Annotated[list[DecodedSample], msgspec.Meta(min_length=1)]

    def content(self) -> bytes:
        """What the message says, the very bytes of `DataMessage.content()`."""
        return _ENCODER.encode(_Content(self.v, self.edge_id, self.epoch, self.seq, self.machine, self.samples))


class _Content(msgspec.Struct):
    """DataMessage's fields but `historical` and `prev`, in its order."""

    v: int
    edge_id: str
    epoch: int
    seq: int
    machine: str
    samples: list[DecodedSample]


_DECODER = msgspec.json.Decoder(DecodedMessage)
_ENCODER = msgspec.json.Encoder()
# A fraction finer than microseconds: pydantic truncates it, msgspec rounds it; DataMessage reads such a payload.
_FINER_THAN_MICROSECONDS = re.compile(rb"\.[0-9]{7}")


def decode_data(payload: bytes) -> DecodedMessage:
    """A data message from its JSON, validated as DataMessage validates it; raises DataMessage's
    pydantic.ValidationError when it is not one."""
    if _FINER_THAN_MICROSECONDS.search(payload) is None:
        try:
            message = _DECODER.decode(payload)
        except msgspec.MsgspecError:
            pass
        else:
            if all(_sample_refusal(sample.signal, sample.value) is None for sample in message.samples):
                return message
    return msgspec.convert(DataMessage.model_validate_json(payload).model_dump(), DecodedMessage)


ConnectionStatus = Literal["ok", "unreachable", "bad_config", "stale"]


class MachineConnection(BaseModel):
    """How the edge reaches one machine: `ok`; `unreachable` (no connection, or the device does not
    answer); `bad_config` (a node or register of the plant file is refused, `detail` names it and the
    status code); `stale` (connected, but the values are not current). `unusable` counts the readings
    the edge could not send on, per reason, since the edge started."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    status: ConnectionStatus
    detail: str = ""
    since: AwareDatetime | None = None
    unusable: dict[str, NonNegativeInt] = {}


class EdgeStatus(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    edge_id: str
    online: StrictBool
    epoch: PositiveInt | None = None
    ts: datetime | None = None
    machines: list[str] = []
    # Optional: the status of an edge from before it parses as it did.
    connections: dict[str, MachineConnection] = {}
    disk_full: StrictBool = Field(default=False, description="the edge's disk refuses writes: its backlog waits in memory")


class EdgeAck(BaseModel):
    """The core to one edge: every message of the edge up to (epoch, seq) is committed (ingested, or a
    duplicate or dead letter of record); `resend`: a message that followed one the core does not have
    was set aside, so publish again everything after (epoch, seq)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    edge_id: str
    epoch: PositiveInt
    seq: PositiveInt
    resend: StrictBool = False


def parse_status_topic(topic: str) -> str | None:
    """The edge id of an edge status topic, or None when the topic is not one."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:3]) != f"{TOPIC_ROOT}/edge" or parts[4] != "status":
        return None
    return parts[3]
