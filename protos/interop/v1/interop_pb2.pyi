import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from protos.interop.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MessageState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_STATE_UNSPECIFIED: _ClassVar[MessageState]
    MESSAGE_STATE_OBSERVED: _ClassVar[MessageState]
    MESSAGE_STATE_VERIFIED: _ClassVar[MessageState]
    MESSAGE_STATE_REJECTED: _ClassVar[MessageState]
    MESSAGE_STATE_FORWARDED: _ClassVar[MessageState]
    MESSAGE_STATE_RESULT_VERIFIED: _ClassVar[MessageState]
    MESSAGE_STATE_ACK_SUBMITTED: _ClassVar[MessageState]
    MESSAGE_STATE_ACKNOWLEDGED: _ClassVar[MessageState]
    MESSAGE_STATE_DELIVERY_SUBMITTED: _ClassVar[MessageState]
    MESSAGE_STATE_DELIVERED: _ClassVar[MessageState]
    MESSAGE_STATE_EXPIRED: _ClassVar[MessageState]
    MESSAGE_STATE_RESULT_FORWARDED: _ClassVar[MessageState]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_SOURCE: _ClassVar[Role]
    ROLE_DESTINATION: _ClassVar[Role]
MESSAGE_STATE_UNSPECIFIED: MessageState
MESSAGE_STATE_OBSERVED: MessageState
MESSAGE_STATE_VERIFIED: MessageState
MESSAGE_STATE_REJECTED: MessageState
MESSAGE_STATE_FORWARDED: MessageState
MESSAGE_STATE_RESULT_VERIFIED: MessageState
MESSAGE_STATE_ACK_SUBMITTED: MessageState
MESSAGE_STATE_ACKNOWLEDGED: MessageState
MESSAGE_STATE_DELIVERY_SUBMITTED: MessageState
MESSAGE_STATE_DELIVERED: MessageState
MESSAGE_STATE_EXPIRED: MessageState
MESSAGE_STATE_RESULT_FORWARDED: MessageState
ROLE_UNSPECIFIED: Role
ROLE_SOURCE: Role
ROLE_DESTINATION: Role

class SendMessageRequest(_message.Message):
    __slots__ = ("src_chain", "dst_chain", "receiver", "payload", "timeout_seconds")
    SRC_CHAIN_FIELD_NUMBER: _ClassVar[int]
    DST_CHAIN_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    src_chain: str
    dst_chain: str
    receiver: bytes
    payload: bytes
    timeout_seconds: int
    def __init__(self, src_chain: _Optional[str] = ..., dst_chain: _Optional[str] = ..., receiver: _Optional[bytes] = ..., payload: _Optional[bytes] = ..., timeout_seconds: _Optional[int] = ...) -> None: ...

class SendMessageResponse(_message.Message):
    __slots__ = ("id", "message", "tx_hash", "height")
    ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    message: _common_pb2.Message
    tx_hash: bytes
    height: int
    def __init__(self, id: _Optional[bytes] = ..., message: _Optional[_Union[_common_pb2.Message, _Mapping]] = ..., tx_hash: _Optional[bytes] = ..., height: _Optional[int] = ...) -> None: ...

class GetMessageRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    def __init__(self, id: _Optional[bytes] = ...) -> None: ...

class TimelineEntry(_message.Message):
    __slots__ = ("state", "time", "kind", "detail_json", "height", "tx_hash", "error")
    STATE_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DETAIL_JSON_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    TX_HASH_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    state: MessageState
    time: _timestamp_pb2.Timestamp
    kind: str
    detail_json: str
    height: int
    tx_hash: bytes
    error: str
    def __init__(self, state: _Optional[_Union[MessageState, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[str] = ..., detail_json: _Optional[str] = ..., height: _Optional[int] = ..., tx_hash: _Optional[bytes] = ..., error: _Optional[str] = ...) -> None: ...

class MessageStatus(_message.Message):
    __slots__ = ("id", "role", "src_chain", "dst_chain", "state", "message", "result", "timeline", "attempts", "last_error", "age", "stuck", "created", "next_attempt")
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SRC_CHAIN_FIELD_NUMBER: _ClassVar[int]
    DST_CHAIN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    TIMELINE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    AGE_FIELD_NUMBER: _ClassVar[int]
    STUCK_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    role: Role
    src_chain: str
    dst_chain: str
    state: MessageState
    message: _common_pb2.Message
    result: _common_pb2.DeliveryResult
    timeline: _containers.RepeatedCompositeFieldContainer[TimelineEntry]
    attempts: int
    last_error: str
    age: _duration_pb2.Duration
    stuck: bool
    created: _timestamp_pb2.Timestamp
    next_attempt: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[bytes] = ..., role: _Optional[_Union[Role, str]] = ..., src_chain: _Optional[str] = ..., dst_chain: _Optional[str] = ..., state: _Optional[_Union[MessageState, str]] = ..., message: _Optional[_Union[_common_pb2.Message, _Mapping]] = ..., result: _Optional[_Union[_common_pb2.DeliveryResult, _Mapping]] = ..., timeline: _Optional[_Iterable[_Union[TimelineEntry, _Mapping]]] = ..., attempts: _Optional[int] = ..., last_error: _Optional[str] = ..., age: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., stuck: _Optional[bool] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_attempt: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListMessagesRequest(_message.Message):
    __slots__ = ("src_chain", "dst_chain", "state", "since", "until", "page_size", "page_token", "role", "stuck_only")
    SRC_CHAIN_FIELD_NUMBER: _ClassVar[int]
    DST_CHAIN_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    STUCK_ONLY_FIELD_NUMBER: _ClassVar[int]
    src_chain: str
    dst_chain: str
    state: MessageState
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    role: Role
    stuck_only: bool
    def __init__(self, src_chain: _Optional[str] = ..., dst_chain: _Optional[str] = ..., state: _Optional[_Union[MessageState, str]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., role: _Optional[_Union[Role, str]] = ..., stuck_only: _Optional[bool] = ...) -> None: ...

class ListMessagesResponse(_message.Message):
    __slots__ = ("items", "next_page_token")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[MessageStatus]
    next_page_token: str
    def __init__(self, items: _Optional[_Iterable[_Union[MessageStatus, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchMessagesRequest(_message.Message):
    __slots__ = ("from_sequence", "src_chain", "dst_chain")
    FROM_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    SRC_CHAIN_FIELD_NUMBER: _ClassVar[int]
    DST_CHAIN_FIELD_NUMBER: _ClassVar[int]
    from_sequence: int
    src_chain: str
    dst_chain: str
    def __init__(self, from_sequence: _Optional[int] = ..., src_chain: _Optional[str] = ..., dst_chain: _Optional[str] = ...) -> None: ...

class StatusChange(_message.Message):
    __slots__ = ("sequence", "id", "role", "state", "src_chain", "dst_chain", "entry")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SRC_CHAIN_FIELD_NUMBER: _ClassVar[int]
    DST_CHAIN_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    id: bytes
    role: Role
    state: MessageState
    src_chain: str
    dst_chain: str
    entry: TimelineEntry
    def __init__(self, sequence: _Optional[int] = ..., id: _Optional[bytes] = ..., role: _Optional[_Union[Role, str]] = ..., state: _Optional[_Union[MessageState, str]] = ..., src_chain: _Optional[str] = ..., dst_chain: _Optional[str] = ..., entry: _Optional[_Union[TimelineEntry, _Mapping]] = ...) -> None: ...

class GetEvidenceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    def __init__(self, id: _Optional[bytes] = ...) -> None: ...

class HopEvidence(_message.Message):
    __slots__ = ("hop", "chain", "evidence", "stored")
    HOP_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    hop: str
    chain: str
    evidence: _common_pb2.Evidence
    stored: _timestamp_pb2.Timestamp
    def __init__(self, hop: _Optional[str] = ..., chain: _Optional[str] = ..., evidence: _Optional[_Union[_common_pb2.Evidence, _Mapping]] = ..., stored: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetEvidenceResponse(_message.Message):
    __slots__ = ("id", "hops")
    ID_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    hops: _containers.RepeatedCompositeFieldContainer[HopEvidence]
    def __init__(self, id: _Optional[bytes] = ..., hops: _Optional[_Iterable[_Union[HopEvidence, _Mapping]]] = ...) -> None: ...

class VerifyEvidenceRequest(_message.Message):
    __slots__ = ("bundle_json", "chain")
    BUNDLE_JSON_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    bundle_json: bytes
    chain: str
    def __init__(self, bundle_json: _Optional[bytes] = ..., chain: _Optional[str] = ...) -> None: ...

class VerifyEvidenceResponse(_message.Message):
    __slots__ = ("valid", "check", "reason", "chain", "family", "block_number", "block_hash", "receipt_status", "log_index", "event_json")
    VALID_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    BLOCK_NUMBER_FIELD_NUMBER: _ClassVar[int]
    BLOCK_HASH_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_STATUS_FIELD_NUMBER: _ClassVar[int]
    LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    EVENT_JSON_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    check: str
    reason: str
    chain: str
    family: str
    block_number: int
    block_hash: bytes
    receipt_status: int
    log_index: int
    event_json: str
    def __init__(self, valid: _Optional[bool] = ..., check: _Optional[str] = ..., reason: _Optional[str] = ..., chain: _Optional[str] = ..., family: _Optional[str] = ..., block_number: _Optional[int] = ..., block_hash: _Optional[bytes] = ..., receipt_status: _Optional[int] = ..., log_index: _Optional[int] = ..., event_json: _Optional[str] = ...) -> None: ...

class ListChainsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListChainsResponse(_message.Message):
    __slots__ = ("chains",)
    CHAINS_FIELD_NUMBER: _ClassVar[int]
    chains: _containers.RepeatedCompositeFieldContainer[ChainStatus]
    def __init__(self, chains: _Optional[_Iterable[_Union[ChainStatus, _Mapping]]] = ...) -> None: ...

class GetChainStatusRequest(_message.Message):
    __slots__ = ("chain",)
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    chain: str
    def __init__(self, chain: _Optional[str] = ...) -> None: ...

class EndpointHealth(_message.Message):
    __slots__ = ("endpoint", "healthy", "last_error")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    HEALTHY_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    healthy: bool
    last_error: str
    def __init__(self, endpoint: _Optional[str] = ..., healthy: _Optional[bool] = ..., last_error: _Optional[str] = ...) -> None: ...

class ChainStatus(_message.Message):
    __slots__ = ("chain", "family", "local", "head", "final_head", "lag", "head_time", "endpoints", "error")
    CHAIN_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    FINAL_HEAD_FIELD_NUMBER: _ClassVar[int]
    LAG_FIELD_NUMBER: _ClassVar[int]
    HEAD_TIME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    chain: str
    family: str
    local: bool
    head: int
    final_head: int
    lag: int
    head_time: _timestamp_pb2.Timestamp
    endpoints: _containers.RepeatedCompositeFieldContainer[EndpointHealth]
    error: str
    def __init__(self, chain: _Optional[str] = ..., family: _Optional[str] = ..., local: _Optional[bool] = ..., head: _Optional[int] = ..., final_head: _Optional[int] = ..., lag: _Optional[int] = ..., head_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., endpoints: _Optional[_Iterable[_Union[EndpointHealth, _Mapping]]] = ..., error: _Optional[str] = ...) -> None: ...
