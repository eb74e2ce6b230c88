"""The hand-encoded C-STORE-RSP command set is byte for byte what pynetdicom encodes."""

from __future__ import annotations

import pytest
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode

from pacs.scp.responses import store_success


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
