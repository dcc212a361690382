from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeliveryStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATUS_UNSPECIFIED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_SUCCESS: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_FAILED: _ClassVar[DeliveryStatus]
    DELIVERY_STATUS_EXPIRED: _ClassVar[DeliveryStatus]
DELIVERY_STATUS_UNSPECIFIED: DeliveryStatus
DELIVERY_STATUS_SUCCESS: DeliveryStatus
DELIVERY_STATUS_FAILED: DeliveryStatus
DELIVERY_STATUS_EXPIRED: DeliveryStatus

class Message(_message.Message):
    __slots__ = ("src_chain", "src_gateway", "dst_chain", "nonce", "sender", "receiver", "payload", "timeout")
    SRC_CHAIN_FIELD_NUMBER: _ClassVar[int]
    SRC_GATEWAY_FIELD_NUMBER: _ClassVar[int]
    DST_CHAIN_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    RECEIVER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    src_chain: str
    src_gateway: bytes
    dst_chain: str
    nonce: int
    sender: bytes
    receiver: bytes
    payload: bytes
    timeout: int
    def __init__(self, src_chain: _Optional[str] = ..., src_gateway: _Optional[bytes] = ..., dst_chain: _Optional[str] = ..., nonce: _Optional[int] = ..., sender: _Optional[bytes] = ..., receiver: _Optional[bytes] = ..., payload: _Optional[bytes] = ..., timeout: _Optional[int] = ...) -> None: ...

class DeliveryResult(_message.Message):
    __slots__ = ("id", "dst_chain", "dst_gateway", "status", "result")
    ID_FIELD_NUMBER: _ClassVar[int]
    DST_CHAIN_FIELD_NUMBER: _ClassVar[int]
    DST_GATEWAY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    dst_chain: str
    dst_gateway: bytes
    status: DeliveryStatus
    result: bytes
    def __init__(self, id: _Optional[bytes] = ..., dst_chain: _Optional[str] = ..., dst_gateway: _Optional[bytes] = ..., status: _Optional[_Union[DeliveryStatus, str]] = ..., result: _Optional[bytes] = ...) -> None: ...

class Evidence(_message.Message):
    __slots__ = ("bundle_json", "endpoint")
    BUNDLE_JSON_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    bundle_json: bytes
    endpoint: str
    def __init__(self, bundle_json: _Optional[bytes] = ..., endpoint: _Optional[str] = ...) -> None: ...
