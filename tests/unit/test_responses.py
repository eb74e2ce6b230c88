"""The hand-encoded C-STORE-RSP, C-FIND-RSP and C-ECHO-RSP command sets are byte for byte what
pynetdicom encodes."""

from __future__ import annotations

from io import BytesIO

import pytest
from pynetdicom.dimse_messages import C_ECHO_RSP, C_FIND_RSP, C_STORE_RSP
from pynetdicom.dimse_primitives import C_ECHO, C_FIND, C_STORE
from pynetdicom.dsutils import encode

from pacs.scp.responses import echo_success, find_response, store_success


@pytest.mark.parametrize("sop_class, sop_instance, message_id", [
    ("1.2.840.10008.5.1.4.1.1.2", "1.2.826.0.1.3680043.8.498.1234567890123456789", 7),
    ("1.2.840.10008.5.1.4.1.1.4", "1.2.3.4", 65535),  # odd-length UID: padded with NUL
])
def test_store_success_matches_pynetdicom(sop_class: str, sop_instance: str,
                                          message_id: int) -> None:
    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.Status = 0x0000
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    assert store_success(sop_class, message_id, sop_instance) == encode(
        message.command_set, True, True)


@pytest.mark.parametrize("status, identifier", [(0xFF00, True), (0xFF01, True), (0x0000, False)])
def test_find_response_matches_pynetdicom(status: int, identifier: bool) -> None:
    primitive = C_FIND()
    primitive.MessageIDBeingRespondedTo = 12
    primitive.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.1"
    primitive.Status = status
    if identifier:
        primitive.Identifier = BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
    message = C_FIND_RSP()
    message.primitive_to_message(primitive)
    assert find_response("1.2.840.10008.5.1.4.1.2.2.1", 12, status) == encode(
        message.command_set, True, True)


@pytest.mark.parametrize("message_id", [1, 65535])
def test_echo_success_matches_pynetdicom(message_id: int) -> None:
    primitive = C_ECHO()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = "1.2.840.10008.1.1"  # odd length: padded with NUL
    primitive.Status = 0x0000
    message = C_ECHO_RSP()
    message.primitive_to_message(primitive)
    assert echo_success("1.2.840.10008.1.1", message_id) == encode(
        message.command_set, True, True)
