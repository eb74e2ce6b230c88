"""Object storage backends, chosen by URL scheme (``file://``, ``s3://``)."""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlparse

from storage.objects.base import ObjectStore

_BACKENDS = {
    "file": "storage.objects.filesystem:FilesystemStore",
    "s3": "storage.objects.s3:S3Store",
}


def open_store(url: str, **options: Any) -> ObjectStore:
    """Open the backend for ``url``.

    ``file://PATH`` (relative paths allowed: ``file://./pacs-data/objects``) or
    ``s3://BUCKET/PREFIX``. Options: ``fsync`` (file), ``endpoint_url`` (s3).
    """
    parsed = urlparse(url)
    target = _BACKENDS.get(parsed.scheme)
    if target is None:
        raise ValueError(f"unsupported storage URL scheme {parsed.scheme!r} in {url!r}")
    module_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    if parsed.scheme == "file":
        path = url[len("file://"):]
        return cls(path, fsync=options.get("fsync", True))  # type: ignore[no-any-return]
    return cls(  # type: ignore[no-any-return]
        bucket=parsed.netloc,
        prefix=parsed.path.lstrip("/"),
        endpoint_url=options.get("endpoint_url"),
    )


__all__ = ["ObjectStore", "open_store"]
