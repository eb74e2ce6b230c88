"""The DUL's C-STORE receiver encodes and decodes exactly as pynetdicom does.

The receiver (pacs/scp/store_receiver.py) writes the File Meta Information and the
C-STORE-RSP command set by hand, and decodes the C-STORE-RQ command set by hand; each is
compared here with pynetdicom's own encoding of the same message, so a file stored by
either receive path, and a response sent by either, is the same bytes.
"""

from __future__ import annotations

import struct
from io import BytesIO

import pytest
from pydicom.filewriter import write_file_meta_info
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
)
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ, C_STORE_RSP
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.dsutils import create_file_meta
from pynetdicom.pdu import P_DATA_TF

from pacs.scp import responses
from pacs.scp.store_receiver import StoreRequest, decode_store_request, file_meta, split_pdvs

ODD = "1.2.3.4.5"      # odd lengths are padded (UI with NUL, SH/LO with a space)
EVEN = "1.2.3.4.56"


@pytest.mark.parametrize("instance", [ODD, EVEN])
@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian,
                                    JPEG2000Lossless])
@pytest.mark.parametrize("sop_class", [CTImageStorage, MRImageStorage])
def test_file_meta_is_pynetdicoms(sop_class: str, syntax: str, instance: str) -> None:
    expected = BytesIO()
    expected.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(expected, create_file_meta(  # type: ignore[arg-type]
        sop_class_uid=sop_class, sop_instance_uid=instance, transfer_syntax=syntax))
    assert file_meta(sop_class, instance, syntax) == expected.getvalue()


def _pynetdicom_command(message: object) -> bytes:
    pdata = next(iter(message.encode_msg(1, 0)))  # type: ignore[attr-defined]
    ((_, data),) = pdata.presentation_data_value_list
    assert data[0] == 0x03, "expected the whole command set in one fragment"
    return bytes(data[1:])


@pytest.mark.parametrize(("status", "comment"), [
    (0x0000, None), (0xB007, None), (0xA900, "dataset does not match"),
    (0xC000, "odd length!"), (0xA700, None)])
def test_store_response_is_pynetdicoms(status: int, comment: str | None) -> None:
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = 7
    rsp.AffectedSOPClassUID = CTImageStorage
    rsp.AffectedSOPInstanceUID = ODD
    rsp.Status = status
    if comment is not None:
        rsp.ErrorComment = comment
    message = C_STORE_RSP()
    message.primitive_to_message(rsp)
    assert responses.store_response(CTImageStorage, 7, ODD, status, comment) == \
        _pynetdicom_command(message)


def _store_rq(**extra: object) -> bytes:
    rq = C_STORE()
    rq.MessageID = 12
    rq.AffectedSOPClassUID = CTImageStorage
    rq.AffectedSOPInstanceUID = EVEN
    rq.Priority = 2
    for key, value in extra.items():
        setattr(rq, key, value)
    rq.DataSet = BytesIO(b"\x08\x00\x16\x00\x00\x00\x00\x00")
    message = C_STORE_RQ()
    message.primitive_to_message(rq)
    return _pynetdicom_command(message)


def test_a_store_request_is_decoded() -> None:
    assert decode_store_request(_store_rq()) == StoreRequest(12, CTImageStorage, EVEN)
    moved = _store_rq(MoveOriginatorApplicationEntityTitle="MOVER",
                      MoveOriginatorMessageID=3)
    assert decode_store_request(moved) == StoreRequest(12, CTImageStorage, EVEN)


def _replace(command: bytes, element: int, value: bytes) -> bytes:
    """``command`` with one element's value replaced (group length left as it was)."""
    out, offset = b"", 0
    while offset < len(command):
        group, elem, length = struct.unpack_from("<HHI", command, offset)
        data = command[offset + 8:offset + 8 + length]
        if elem == element:
            data = value
        out += struct.pack("<HHI", group, elem, len(data)) + data
        offset += 8 + length
    return out


def test_what_pynetdicom_should_judge_is_left_to_it() -> None:
    echo = C_ECHO()
    echo.MessageID = 1
    echo.AffectedSOPClassUID = "1.2.840.10008.1.1"
    message = C_ECHO_RQ()
    message.primitive_to_message(echo)
    command = _store_rq()
    assert decode_store_request(_pynetdicom_command(message)) is None          # not a store
    assert decode_store_request(command[:-3]) is None                           # truncated
    assert decode_store_request(_replace(command, 0x0800, b"\x01\x01")) is None  # no data set
    assert decode_store_request(_replace(command, 0x0700, b"\x07\x00")) is None  # priority
    assert decode_store_request(_replace(command, 0x1000, b"1" * 66)) is None    # UID > 64
    assert decode_store_request(_replace(command, 0x1000, b"")) is None          # no UID
    bad_mover = _store_rq(MoveOriginatorApplicationEntityTitle="MOVER",
                          MoveOriginatorMessageID=3)
    assert decode_store_request(_replace(bad_mover, 0x1030, b"A\\B ")) is None


def test_pdvs_are_split_like_pynetdicom_and_malformed_ones_refused() -> None:
    pdvs = ((1, 0x03, b"command"), (1, 0x02, b"data set"), (3, 0x00, b""))
    body = b"".join(struct.pack(">IBB", len(d) + 2, cx, h) + d for cx, h, d in pdvs)
    pdu = P_DATA_TF()
    pdu.decode(struct.pack(">BBI", 4, 0, len(body)) + body)
    ours = [(cx, h, bytes(d)) for cx, h, d in split_pdvs(memoryview(body)) or []]
    theirs = [(cx, data[0], data[1:]) for cx, data in pdu.to_primitive()
              .presentation_data_value_list]
    assert ours == theirs == list(pdvs)
    assert split_pdvs(memoryview(body[:-1])) is None               # item runs past the end
    assert split_pdvs(memoryview(body + b"\0\0\0")) is None         # a partial item header
    assert split_pdvs(memoryview(struct.pack(">IBB", 1, 1, 3))) is None  # length < 2
