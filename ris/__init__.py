"""Radiology information system: patients, orders, worklists, MPPS, HL7 v2; and the
service container."""

from ris.services import Services, build_services

__all__ = ["Services", "build_services"]
