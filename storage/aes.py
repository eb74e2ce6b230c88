"""Known DICOM peers: the C-MOVE destinations (``pacs ae``, ``/api/aes``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select

from storage.audit import utcnow
from storage.errors import Conflict, InvalidQuery, NotFound
from storage.index.database import Database
from storage.index.models import RemoteAE


@dataclass(frozen=True)
class KnownAE:
    ae_title: str
    host: str
    port: int
    description: str = ""


def _valid_title(title: str) -> str:
    title = title.strip()
    if not title or len(title) > 16 or "\\" in title or not title.isprintable():
        raise InvalidQuery("an AE title is 1 to 16 printable characters without '\\'")
    return title


class AeRegistry:
    """Add, list, find and remove known AEs."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, ae_title: str, host: str, port: int, description: str = "") -> KnownAE:
        title = _valid_title(ae_title)
        if not 0 < port < 65536:
            raise InvalidQuery("port must be between 1 and 65535")
        if not host.strip():
            raise InvalidQuery("host is required")
        with self._db.write() as s:
            if s.scalar(select(RemoteAE.id).where(RemoteAE.ae_title == title)) is not None:
                raise Conflict(f"AE {title} is already registered")
            s.add(RemoteAE(ae_title=title, host=host.strip(), port=port,
                           description=description, created_at=utcnow()))
        return KnownAE(title, host.strip(), port, description)

    def list(self) -> list[KnownAE]:
        with self._db.read() as s:
            rows = s.scalars(select(RemoteAE).order_by(RemoteAE.ae_title))
            return [KnownAE(r.ae_title, r.host, r.port, r.description) for r in rows]

    def get(self, ae_title: str) -> KnownAE:
        with self._db.read() as s:
            r = s.scalar(select(RemoteAE).where(RemoteAE.ae_title == ae_title.strip()))
            if r is None:
                raise NotFound(f"AE {ae_title.strip()} is not known")
            return KnownAE(r.ae_title, r.host, r.port, r.description)

    def remove(self, ae_title: str) -> None:
        with self._db.write() as s:
            n = s.execute(delete(RemoteAE).where(RemoteAE.ae_title == ae_title.strip()))
            if n.rowcount == 0:
                raise NotFound(f"AE {ae_title.strip()} is not known")
