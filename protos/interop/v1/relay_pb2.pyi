from protos.interop.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VerdictKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_KIND_UNSPECIFIED: _ClassVar[VerdictKind]
    VERDICT_KIND_ACCEPTED: _ClassVar[VerdictKind]
    VERDICT_KIND_REJECTED: _ClassVar[VerdictKind]
    VERDICT_KIND_RETRY: _ClassVar[VerdictKind]
VERDICT_KIND_UNSPECIFIED: VerdictKind
VERDICT_KIND_ACCEPTED: VerdictKind
VERDICT_KIND_REJECTED: VerdictKind
VERDICT_KIND_RETRY: VerdictKind

class ForwardItem(_message.Message):
    __slots__ = ("id", "message", "evidence")
    ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    message: _common_pb2.Message
    evidence: _common_pb2.Evidence
    def __init__(self, id: _Optional[bytes] = ..., message: _Optional[_Union[_common_pb2.Message, _Mapping]] = ..., evidence: _Optional[_Union[_common_pb2.Evidence, _Mapping]] = ...) -> None: ...

class ForwardRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[ForwardItem]
    def __init__(self, items: _Optional[_Iterable[_Union[ForwardItem, _Mapping]]] = ...) -> None: ...

class AckItem(_message.Message):
    __slots__ = ("id", "result", "evidence")
    ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    result: _common_pb2.DeliveryResult
    evidence: _common_pb2.Evidence
    def __init__(self, id: _Optional[bytes] = ..., result: _Optional[_Union[_common_pb2.DeliveryResult, _Mapping]] = ..., evidence: _Optional[_Union[_common_pb2.Evidence, _Mapping]] = ...) -> None: ...

class AcknowledgeRequest(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[AckItem]
    def __init__(self, items: _Optional[_Iterable[_Union[AckItem, _Mapping]]] = ...) -> None: ...

class Verdict(_message.Message):
    __slots__ = ("id", "kind", "reason", "check")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    kind: VerdictKind
    reason: str
    check: str
    def __init__(self, id: _Optional[bytes] = ..., kind: _Optional[_Union[VerdictKind, str]] = ..., reason: _Optional[str] = ..., check: _Optional[str] = ...) -> None: ...

class ForwardResponse(_message.Message):
    __slots__ = ("verdicts",)
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    verdicts: _containers.RepeatedCompositeFieldContainer[Verdict]
    def __init__(self, verdicts: _Optional[_Iterable[_Union[Verdict, _Mapping]]] = ...) -> None: ...

class AcknowledgeResponse(_message.Message):
    __slots__ = ("verdicts",)
    VERDICTS_FIELD_NUMBER: _ClassVar[int]
    verdicts: _containers.RepeatedCompositeFieldContainer[Verdict]
    def __init__(self, verdicts: _Optional[_Iterable[_Union[Verdict, _Mapping]]] = ...) -> None: ...
