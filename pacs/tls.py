"""TLS for the DICOM listener (PS3.15 B.1, the Basic TLS Secure Transport Connection Profile).

pynetdicom wraps each accepted socket with the ``ssl_context`` given to its server. With a
CA bundle the peer must present a certificate that chains to it (mutual TLS, as the BCP 195
profile of PS3.15 B.9 allows); without one, any client may connect over TLS.
"""

from __future__ import annotations

import ssl
from pathlib import Path


def server_context(cert: Path, key: Path, ca: Path | None = None) -> ssl.SSLContext:
    """A server-side context: TLS 1.2 or later, client certificates required if ``ca``.

    Raises
    ------
    FileNotFoundError, ssl.SSLError
        A file is missing or is not a PEM certificate/key (reported at start-up).
    """
    for path in (cert, key, ca):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"TLS file not found: {path}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    if ca is not None:
        context.load_verify_locations(cafile=str(ca))
        context.verify_mode = ssl.CERT_REQUIRED
    return context
