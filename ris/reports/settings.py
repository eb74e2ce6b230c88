"""The slice of the settings that the report service needs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ReportSettings:
    """Signing key, outbound HL7 and presentation of reports.

    Attributes
    ----------
    signing_key_path : the Ed25519 private key file (created on first use, mode 0600).
    allow_body_signer : whether a request without an authenticated user may name its
        signer in the body. True only while HTTP authentication is off (the integrator
        sets it from ``PACS_AUTH``); with authentication on, the signer is always the
        authenticated user.
    hl7_oru_host, hl7_oru_port : the ORU^R01 receiver; no ORU is sent when unset.
    hl7_oru_attempts, hl7_oru_retry_delay : delivery attempts and first back-off delay (s).
    institution : printed on the PDF and set as Verifying Organization in the SR.
    font_path : a TrueType font with Vietnamese glyphs for the PDF (default DejaVu Sans).
    """

    signing_key_path: Path = Path("pacs-data/keys/report-signing.key")
    allow_body_signer: bool = True
    hl7_oru_host: str = ""
    hl7_oru_port: int | None = None
    hl7_oru_attempts: int = 5
    hl7_oru_retry_delay: float = 2.0
    institution: str = ""
    font_path: Path | None = None
