"""HL7 v2 over MLLP with the ``hl7`` package's client: ADT, ORM^O01, OMI^O23, and ACKs."""

from __future__ import annotations

import hl7
from fastapi.testclient import TestClient

from pacs.hl7_listener import Hl7Listener
from ris.services import Services
from tests.ris.conftest import send_hl7

MSH = "MSH|^~\\&|HIS|BV|PACS|BV|20250301080000||{type}|{id}|P|2.5||||||UNICODE UTF-8"
PID = "PID|1||{pid}^^^BV^MR||{name}||19750309|{sex}|||12 Lê Lợi^^Huế^^530000||0905123456"


def msg(kind: str, control_id: str, *segments: str) -> list[str]:
    return [MSH.format(type=kind, id=control_id), *segments]


def ack_of(text: str) -> hl7.Message:
    ack = hl7.parse(text)
    assert str(ack.segment("MSH")(9)(1)(1)) == "ACK"
    return ack


def code(ack: hl7.Message) -> str:
    return str(ack.segment("MSA")(1))


def test_adt_registers_and_updates_a_vietnamese_patient(
        hl7_listener: Hl7Listener, client: TestClient) -> None:
    reply = send_hl7(hl7_listener, *msg("ADT^A01", "M1", PID.format(
        pid="BN001", name="NGUYỄN^VĂN^AN", sex="M")))
    ack = ack_of(reply)
    assert code(ack) == "AA"
    assert str(ack.segment("MSA")(2)) == "M1"
    assert str(ack.segment("MSH")(18)) == "UNICODE UTF-8"
    patient = client.get("/api/patients/BN001").json()
    assert patient["name"] == "NGUYỄN^VĂN^AN"
    assert patient["birth_date"] == "19750309"
    assert patient["issuer"] == "BV"
    assert "Lê Lợi" in patient["address"]

    assert code(ack_of(send_hl7(hl7_listener, *msg("ADT^A08", "M2", PID.format(
        pid="BN001", name="NGUYỄN^VĂN^ANH", sex="M"))))) == "AA"
    assert client.get("/api/patients/BN001").json()["name"] == "NGUYỄN^VĂN^ANH"


def _orm(control: str, accession: str, *, modality: str = "CT", cid: str = "O1") -> list[str]:
    return msg("ORM^O01", cid, PID.format(pid="BN002", name="TRẦN^THỊ^BÍCH", sex="F"),
               "PV1|1|O|RAD^^^BV||||||||Chẩn đoán hình ảnh",
               f"ORC|{control}|PL1|||||^^^20250301093000^^S||20250301080000|||DR1^LÊ^MINH",
               f"OBR|1|PL1||CTCH^CT ngực^L||||||||||||DR1^LÊ^MINH||{accession}||||||{modality}")


def test_orm_new_change_and_cancel(hl7_listener: Hl7Listener, client: TestClient) -> None:
    ack = ack_of(send_hl7(hl7_listener, *_orm("NW", "ACC100")))
    assert code(ack) == "AA", ack
    order = client.get("/api/orders/ACC100").json()
    assert order["status"] == "scheduled"
    assert order["priority"] == "STAT"
    assert order["procedure_description"] == "CT ngực"
    assert order["referring_physician_name"] == "LÊ^MINH"
    assert order["patient"]["name"] == "TRẦN^THỊ^BÍCH"
    assert order["steps"][0]["start_date"] == "20250301"
    assert order["steps"][0]["start_time"] == "093000"

    assert code(ack_of(send_hl7(hl7_listener, *_orm("XO", "ACC100", modality="MR")))) == "AA"
    assert client.get("/api/orders/ACC100").json()["steps"][0]["modality"] == "MR"
    assert code(ack_of(send_hl7(hl7_listener, *_orm("CA", "ACC100")))) == "AA"
    assert client.get("/api/orders/ACC100").json()["status"] == "cancelled"

    # cancelling again is an invalid transition: AE with an ERR segment saying why
    reply = send_hl7(hl7_listener, *_orm("CA", "ACC100", cid="O9"))
    ack = ack_of(reply)
    assert code(ack) == "AE"
    err = ack.segment("ERR")
    assert str(err(3)(1)(1)) == "207"
    assert "cancelled" in str(err(8))
    assert client.get("/api/orders/ACC100").json()["status"] == "cancelled"


def test_omi_o23_with_ipc_and_status_change(hl7_listener: Hl7Listener,
                                            client: TestClient) -> None:
    segments = msg("OMI^O23", "O2", PID.format(pid="BN003", name="PHẠM^QUỐC", sex="M"),
                   "ORC|NW|PL9",
                   "TQ1|1||||||20250302140000||R",
                   "OBR|1|PL9||MRBR^MRI sọ não^L",
                   "IPC|ACC200|RP200|1.2.3.4.5|SPS200|MR||MRSTATION||MR1")
    assert code(ack_of(send_hl7(hl7_listener, *segments))) == "AA"
    order = client.get("/api/orders/ACC200").json()
    assert order["steps"][0]["station_ae"] == "MR1"
    assert order["steps"][0]["modality"] == "MR"
    assert order["priority"] == "ROUTINE"
    status = msg("ORM^O01", "O3", PID.format(pid="BN003", name="PHẠM^QUỐC", sex="M"),
                 "ORC|SC|PL9|||IP", "OBR|1|PL9||MRBR^MRI sọ não^L" + "|" * 14 + "ACC200")
    assert code(ack_of(send_hl7(hl7_listener, *status))) == "AA"
    assert client.get("/api/orders/ACC200").json()["status"] == "in_progress"


def test_adt_a40_merges(hl7_listener: Hl7Listener, client: TestClient) -> None:
    send_hl7(hl7_listener, *_orm("NW", "ACC300"))  # order for BN002
    reply = send_hl7(hl7_listener, *msg("ADT^A40", "M3", PID.format(
        pid="BN010", name="TRẦN^THỊ^BÍCH", sex="F"), "MRG|BN002^^^BV^MR"))
    assert code(ack_of(reply)) == "AA"
    assert client.get("/api/orders/ACC300").json()["patient"]["patient_id"] == "BN010"
    assert client.get("/api/patients/BN002").json()["merged_into"] == "BN010"


def test_refusals_say_why(hl7_listener: Hl7Listener, services: Services,
                          client: TestClient) -> None:
    ack = ack_of(send_hl7(hl7_listener, *msg("ADT^A01", "E1", "PID|1||||NOBODY")))
    assert code(ack) == "AE"
    assert str(ack.segment("ERR")(3)(1)(1)) == "101"
    ack = ack_of(send_hl7(hl7_listener, *msg("SIU^S12", "E2")))
    assert code(ack) == "AR"
    assert str(ack.segment("ERR")(3)(1)(1)) == "200"
    ack = ack_of(send_hl7(hl7_listener, *_orm("NW", "ACC400", modality="")))
    assert code(ack) == "AE"
    ack = ack_of(send_hl7(hl7_listener, *_orm("CA", "UNKNOWN")))
    assert code(ack) == "AE"
    assert str(ack.segment("ERR")(3)(1)(1)) == "204"
    assert client.get("/api/orders").json() == []
    # not HL7 at all: rejected, and the listener keeps serving
    assert "MSA|AR" in send_hl7(hl7_listener, "hello")
    assert code(ack_of(send_hl7(hl7_listener, *_orm("NW", "ACC401")))) == "AA"
    services.audit.flush()
    assert any(e.channel == "hl7" for e in services.audit.events(action="order-create"))


def test_latin1_sender_is_decoded_by_msh18(hl7_listener: Hl7Listener,
                                           client: TestClient) -> None:
    text = "\r".join([MSH.format(type="ADT^A04", id="L1").replace("UNICODE UTF-8", "8859/1"),
                      PID.format(pid="BN020", name="MÜLLER^JOSÉ", sex="M").replace(
                          "12 Lê Lợi^^Huế^^530000", "")]) + "\r"
    from hl7.client import MLLPClient

    with MLLPClient("127.0.0.1", hl7_listener.port, encoding="latin-1") as peer:
        reply = peer.send_message(text)
    assert b"MSA|AA" in reply
    assert client.get("/api/patients/BN020").json()["name"] == "MÜLLER^JOSÉ"
