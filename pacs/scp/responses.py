"""Cheaper DIMSE responses on the two hot paths: pending C-FIND and successful C-STORE.

pynetdicom builds and encodes every response command set with pydicom, twice (once to
learn its group length): about 0.7 ms of CPU per response, a sizeable share of a C-STORE
and half the CPU of a C-FIND with many matches.

- Every pending response of one C-FIND has the same command set (PS3.7 9.3.2.2), so its
  bytes are built once per request.
- A successful C-STORE-RSP (PS3.7 9.3.1.2) is seven fixed elements, encoded here directly
  in Implicit VR Little Endian as PS3.7 6.3.1 requires for command sets.

The P-DATA fragments are made exactly as pynetdicom makes them (PS3.8 E.2); every other
response goes through pynetdicom unchanged.
"""

from __future__ import annotations

import struct
from typing import Any

from pynetdicom.dimse_messages import C_FIND_RSP, DIMSEMessage
from pynetdicom.dimse_primitives import C_FIND, C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu_primitives import P_DATA

_PENDING = (0xFF00, 0xFF01)


def _element(group_element: int, value: bytes) -> bytes:
    return struct.pack("<HHI", group_element >> 16, group_element & 0xFFFF, len(value)) + value


def _uid(value: str) -> bytes:
    data = value.encode("ascii")
    return data + b"\0" if len(data) % 2 else data


def store_success(sop_class_uid: str, message_id: int, sop_instance_uid: str) -> bytes:
    """The command set of a C-STORE-RSP with Status 0x0000 (PS3.7 Table 9.3-2)."""
    body = b"".join([
        _element(0x00000002, _uid(sop_class_uid)),
        _element(0x00000100, struct.pack("<H", 0x8001)),
        _element(0x00000120, struct.pack("<H", message_id)),
        _element(0x00000800, struct.pack("<H", 0x0101)),
        _element(0x00000900, struct.pack("<H", 0x0000)),
        _element(0x00001000, _uid(sop_instance_uid)),
    ])
    return _element(0x00000000, struct.pack("<I", len(body))) + body


def _pdata(context_id: int, data: bytes, max_pdu: int, middle: bytes,
           last: bytes) -> list[P_DATA]:
    fragments = list(DIMSEMessage._generate_pdv_fragments(data, max_pdu))
    out = []
    for n, fragment in enumerate(fragments):
        pdata = P_DATA()
        header = last if n == len(fragments) - 1 else middle
        pdata.presentation_data_value_list.append((context_id, header + fragment))
        out.append(pdata)
    return out


def install(assoc: Any) -> None:
    """Route this association's hot-path responses through the encoders above."""
    dimse = assoc.dimse
    if getattr(dimse, "_pacs_fast_find", False):
        return
    original = dimse.send_msg
    cache: dict[tuple[Any, ...], bytes] = {}

    def send_msg(primitive: Any, context_id: int) -> None:
        max_pdu = dimse.maximum_pdu_size
        if (isinstance(primitive, C_STORE) and primitive.Status == 0x0000
                and primitive.MessageIDBeingRespondedTo is not None):
            command = store_success(primitive.AffectedSOPClassUID,
                                    primitive.MessageIDBeingRespondedTo,
                                    primitive.AffectedSOPInstanceUID)
            for pdata in _pdata(context_id, command, max_pdu, b"\x01", b"\x03"):
                dimse.dul.send_pdu(pdata)
            return
        if (not isinstance(primitive, C_FIND) or primitive.Status not in _PENDING
                or primitive.Identifier is None):
            original(primitive, context_id)
            return
        key = (primitive.MessageIDBeingRespondedTo, primitive.AffectedSOPClassUID,
               primitive.Status)
        command = cache.get(key)
        if command is None:
            cache.clear()  # one request at a time: keep only the current one
            message = C_FIND_RSP()
            message.primitive_to_message(primitive)
            command = cache[key] = bytes(encode(message.command_set, True, True) or b"")
        identifier = primitive.Identifier.getvalue()
        for pdata in _pdata(context_id, command, max_pdu, b"\x01", b"\x03") + _pdata(
                context_id, identifier, max_pdu, b"\x00", b"\x02"):
            dimse.dul.send_pdu(pdata)

    dimse.send_msg = send_msg
    dimse._pacs_fast_find = True
