"""HL7 v2 messages for the RIS: parsing and business rules (the MLLP socket is in pacs/)."""

from ris.hl7.handler import Hl7Handler, decode

__all__ = ["Hl7Handler", "decode"]
