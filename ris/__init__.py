"""Radiology information system: orders, worklist, reports; and the service container."""

from ris.services import Services, build_services

__all__ = ["Services", "build_services"]
