"""Verification SCP (PS3.4 A)."""

from __future__ import annotations

from pynetdicom.events import Event

from pacs.scp import responses


def handle_echo(event: Event) -> int:
    responses.install(event.assoc)  # the Success response is encoded without pydicom
    return 0x0000
