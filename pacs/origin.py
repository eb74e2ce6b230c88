"""The :class:`~storage.origin.Origin` of a DIMSE request."""

from __future__ import annotations

from pynetdicom.association import Association

from storage.origin import Origin


def origin_of(assoc: Association) -> Origin:
    requestor = assoc.requestor
    return Origin(
        channel="dimse",
        calling_ae=str(requestor.ae_title).strip(),
        called_ae=str(assoc.acceptor.ae_title).strip(),
        address=f"{requestor.address}:{requestor.port}",
    )
