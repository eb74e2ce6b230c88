"""DICOM access: unknown calling AEs refused when configured (and the refusal audited), TLS."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pynetdicom import AE
from pynetdicom import sop_class as sc

from pacs.ae import DicomSettings, start_dicom
from ris.services import Services
from tests.conftest import Listener
from tests.support.net import free_port


def _listen(services: Services, **settings: object) -> Iterator[Listener]:
    port = free_port()
    server = start_dicom(services, DicomSettings(ae_title="PACS", host="127.0.0.1", port=port,
                                                 **settings))  # type: ignore[arg-type]
    yield Listener("127.0.0.1", port, "PACS", services)
    server.shutdown()
    server.server_close()


@pytest.fixture
def strict(sqlite_services: Services) -> Iterator[Listener]:
    """A listener with PACS_DICOM_ALLOW_UNKNOWN_AE=false."""
    yield from _listen(sqlite_services, allow_unknown_ae=False)


def _associate(listener: Listener, calling: str, tls: ssl.SSLContext | None = None) -> object:
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.network_timeout = 10
    ae.add_requested_context(sc.Verification)
    kwargs = {"tls_args": (tls, "127.0.0.1")} if tls is not None else {}
    return ae.associate(listener.host, listener.port, ae_title="PACS", **kwargs)


def test_unknown_calling_ae_is_rejected_and_audited(strict: Listener) -> None:
    assoc = _associate(strict, "STRANGER")
    assert assoc.is_rejected  # type: ignore[attr-defined]
    rsp = assoc.acceptor.primitive  # type: ignore[attr-defined]
    # PS3.8 Table 9-21: rejected-permanent, DUL service-user, calling AE not recognised.
    assert (rsp.result, rsp.result_source, rsp.diagnostic) == (0x01, 0x01, 0x03)
    strict.services.audit.flush()
    (event,) = strict.services.audit.events(action="associate")
    assert (event.outcome, event.calling_ae, event.channel) == ("refused", "STRANGER", "dimse")
    assert event.address.startswith("127.0.0.1:")


def test_known_calling_ae_is_accepted(strict: Listener) -> None:
    strict.services.aes.add("CT1", "127.0.0.1", 104)
    assoc = _associate(strict, "CT1")
    assert assoc.is_established  # type: ignore[attr-defined]
    assert assoc.send_c_echo().Status == 0x0000  # type: ignore[attr-defined]
    assoc.release()  # type: ignore[attr-defined]


def test_unknown_calling_aes_are_accepted_by_default(sqlite_listener: Listener) -> None:
    assoc = _associate(sqlite_listener, "ANYONE")
    assert assoc.is_established  # type: ignore[attr-defined]
    assoc.release()  # type: ignore[attr-defined]


def self_signed(directory: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_dicom_over_tls(sqlite_services: Services, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    for listener in _listen(sqlite_services, tls_cert=cert, tls_key=key):
        client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
        assoc = _associate(listener, "TLSSCU", client)
        assert assoc.is_established  # type: ignore[attr-defined]
        assert assoc.send_c_echo().Status == 0x0000  # type: ignore[attr-defined]
        assoc.release()  # type: ignore[attr-defined]
        plain = _associate(listener, "PLAINSCU")  # no TLS: the handshake fails
        assert not plain.is_established  # type: ignore[attr-defined]


def test_dicom_tls_with_client_certificates(sqlite_services: Services, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "localhost")
    client_cert, client_key = self_signed(tmp_path, "modality")
    for listener in _listen(sqlite_services, tls_cert=cert, tls_key=key, tls_ca=client_cert):
        anonymous = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
        assert not _associate(listener, "NOCERT", anonymous).is_established  # type: ignore[attr-defined]
        known = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
        known.load_cert_chain(str(client_cert), str(client_key))
        assoc = _associate(listener, "WITHCERT", known)
        assert assoc.is_established  # type: ignore[attr-defined]
        assoc.release()  # type: ignore[attr-defined]
