import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from protos.interop.v1 import interop_pb2 as _interop_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AuditKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIT_KIND_UNSPECIFIED: _ClassVar[AuditKind]
    AUDIT_KIND_FACT_OBSERVED: _ClassVar[AuditKind]
    AUDIT_KIND_EVIDENCE_VERIFIED: _ClassVar[AuditKind]
    AUDIT_KIND_EVIDENCE_REJECTED: _ClassVar[AuditKind]
    AUDIT_KIND_FORWARDED: _ClassVar[AuditKind]
    AUDIT_KIND_RESULT_VERIFIED: _ClassVar[AuditKind]
    AUDIT_KIND_ACK_SUBMITTED: _ClassVar[AuditKind]
    AUDIT_KIND_ACK_REQUEUED: _ClassVar[AuditKind]
    AUDIT_KIND_ACKNOWLEDGED: _ClassVar[AuditKind]
    AUDIT_KIND_ACCEPTED_FROM_PEER: _ClassVar[AuditKind]
    AUDIT_KIND_DELIVERY_SUBMITTED: _ClassVar[AuditKind]
    AUDIT_KIND_DELIVERY_REQUEUED: _ClassVar[AuditKind]
    AUDIT_KIND_DELIVERED: _ClassVar[AuditKind]
    AUDIT_KIND_EXPIRED: _ClassVar[AuditKind]
    AUDIT_KIND_RESULT_FORWARDED: _ClassVar[AuditKind]
    AUDIT_KIND_ATTEMPT_REJECTED: _ClassVar[AuditKind]
AUDIT_KIND_UNSPECIFIED: AuditKind
AUDIT_KIND_FACT_OBSERVED: AuditKind
AUDIT_KIND_EVIDENCE_VERIFIED: AuditKind
AUDIT_KIND_EVIDENCE_REJECTED: AuditKind
AUDIT_KIND_FORWARDED: AuditKind
AUDIT_KIND_RESULT_VERIFIED: AuditKind
AUDIT_KIND_ACK_SUBMITTED: AuditKind
AUDIT_KIND_ACK_REQUEUED: AuditKind
AUDIT_KIND_ACKNOWLEDGED: AuditKind
AUDIT_KIND_ACCEPTED_FROM_PEER: AuditKind
AUDIT_KIND_DELIVERY_SUBMITTED: AuditKind
AUDIT_KIND_DELIVERY_REQUEUED: AuditKind
AUDIT_KIND_DELIVERED: AuditKind
AUDIT_KIND_EXPIRED: AuditKind
AUDIT_KIND_RESULT_FORWARDED: AuditKind
AUDIT_KIND_ATTEMPT_REJECTED: AuditKind

class AuditRecord(_message.Message):
    __slots__ = ("seq", "time", "gateway", "kind", "message_id", "role", "src_chain", "dst_chain", "state", "height", "tx_hash", "hop", "endpoint", "peer", "evidence_digest", "trust_digest", "trust_json", "check", "reason", "prev_hash", "hash", "record_json")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SRC_CHAIN_FIELD_NUMBER: _ClassVar[int]
    DST_CHAIN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    HOP_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    PEER_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    TRUST_DIGEST_FIELD_NUMBER: _ClassVar[int]
    TRUST_JSON_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    PREV_HASH_FIELD_NUMBER: _ClassVar[int]
    HASH_FIELD_NUMBER: _ClassVar[int]
    RECORD_JSON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    time: _timestamp_pb2.Timestamp
    gateway: str
    kind: AuditKind
    message_id: bytes
    role: _interop_pb2.Role
    src_chain: str
    dst_chain: str
    state: _interop_pb2.MessageState
    height: int
    tx_hash: str
    hop: str
    endpoint: str
    peer: str
    evidence_digest: bytes
    trust_digest: bytes
    trust_json: str
    check: str
    reason: str
    prev_hash: bytes
    hash: bytes
    record_json: str
    def __init__(self, seq: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., gateway: _Optional[str] = ..., kind: _Optional[_Union[AuditKind, str]] = ..., message_id: _Optional[bytes] = ..., role: _Optional[_Union[_interop_pb2.Role, str]] = ..., src_chain: _Optional[str] = ..., dst_chain: _Optional[str] = ..., state: _Optional[_Union[_interop_pb2.MessageState, str]] = ..., height: _Optional[int] = ..., tx_hash: _Optional[str] = ..., hop: _Optional[str] = ..., endpoint: _Optional[str] = ..., peer: _Optional[str] = ..., evidence_digest: _Optional[bytes] = ..., trust_digest: _Optional[bytes] = ..., trust_json: _Optional[str] = ..., check: _Optional[str] = ..., reason: _Optional[str] = ..., prev_hash: _Optional[bytes] = ..., hash: _Optional[bytes] = ..., record_json: _Optional[str] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("gateway", "seq", "head_hash", "time", "signature", "public_key", "checkpoint_json")
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    HEAD_HASH_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_JSON_FIELD_NUMBER: _ClassVar[int]
    gateway: str
    seq: int
    head_hash: bytes
    time: _timestamp_pb2.Timestamp
    signature: bytes
    public_key: bytes
    checkpoint_json: str
    def __init__(self, gateway: _Optional[str] = ..., seq: _Optional[int] = ..., head_hash: _Optional[bytes] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., signature: _Optional[bytes] = ..., public_key: _Optional[bytes] = ..., checkpoint_json: _Optional[str] = ...) -> None: ...

class QueryRecordsRequest(_message.Message):
    __slots__ = ("message_id", "chain", "kind", "state", "since", "until", "page_size", "page_token", "role")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    message_id: bytes
    chain: str
    kind: AuditKind
    state: _interop_pb2.MessageState
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    role: _interop_pb2.Role
    def __init__(self, message_id: _Optional[bytes] = ..., chain: _Optional[str] = ..., kind: _Optional[_Union[AuditKind, str]] = ..., state: _Optional[_Union[_interop_pb2.MessageState, str]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., role: _Optional[_Union[_interop_pb2.Role, str]] = ...) -> None: ...

class QueryRecordsResponse(_message.Message):
    __slots__ = ("records", "next_page_token", "checkpoint")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[AuditRecord]
    next_page_token: str
    checkpoint: Checkpoint
    def __init__(self, records: _Optional[_Iterable[_Union[AuditRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ...) -> None: ...

class FollowRecordsRequest(_message.Message):
    __slots__ = ("from_seq",)
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    from_seq: int
    def __init__(self, from_seq: _Optional[int] = ...) -> None: ...

class GetCheckpointRequest(_message.Message):
    __slots__ = ("seq",)
    SEQ_FIELD_NUMBER: _ClassVar[int]
    seq: int
    def __init__(self, seq: _Optional[int] = ...) -> None: ...

class ExportRecordsRequest(_message.Message):
    __slots__ = ("from_seq",)
    FROM_SEQ_FIELD_NUMBER: _ClassVar[int]
    from_seq: int
    def __init__(self, from_seq: _Optional[int] = ...) -> None: ...

class ExportLine(_message.Message):
    __slots__ = ("line",)
    LINE_FIELD_NUMBER: _ClassVar[int]
    line: str
    def __init__(self, line: _Optional[str] = ...) -> None: ...

class TraceMessageRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    def __init__(self, id: _Optional[bytes] = ...) -> None: ...

class GatewayTrace(_message.Message):
    __slots__ = ("gateway", "public_key", "local", "records", "segment_json", "checkpoint", "verified", "problem", "truncated")
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_JSON_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    gateway: str
    public_key: bytes
    local: bool
    records: _containers.RepeatedCompositeFieldContainer[AuditRecord]
    segment_json: _containers.RepeatedScalarFieldContainer[str]
    checkpoint: Checkpoint
    verified: bool
    problem: str
    truncated: bool
    def __init__(self, gateway: _Optional[str] = ..., public_key: _Optional[bytes] = ..., local: _Optional[bool] = ..., records: _Optional[_Iterable[_Union[AuditRecord, _Mapping]]] = ..., segment_json: _Optional[_Iterable[str]] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., verified: _Optional[bool] = ..., problem: _Optional[str] = ..., truncated: _Optional[bool] = ...) -> None: ...

class TraceMessageResponse(_message.Message):
    __slots__ = ("id", "parts")
    ID_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    parts: _containers.RepeatedCompositeFieldContainer[GatewayTrace]
    def __init__(self, id: _Optional[bytes] = ..., parts: _Optional[_Iterable[_Union[GatewayTrace, _Mapping]]] = ...) -> None: ...
