"""The render service: locate (audited) → cache → read and render → cache.

Routes call one method of :class:`Renderer`; it asks the archive service which object to
render (which writes the audit record, PS3.15 A.5 "every read of patient data"), looks the
rendering up in the disk cache under the object's key plus the normalised parameters, and
only on a miss reads the object and runs the pipeline. An object key names one revision
of an instance (a revised instance is stored under a new key), so a new revision can
never be answered from an older rendering.
"""

from __future__ import annotations

from dataclasses import dataclass

from storage.archive import Archive, InstanceRef
from storage.cache import DiskCache, cache_key
from storage.errors import NotFound
from storage.index.query import Level, Query
from storage.origin import Origin
from viewer_api.rendering.params import MediaType, RenderParams
from viewer_api.rendering.pipeline import render

PIPELINE_VERSION = "render/2"
"""Part of every cache key: bump it when the pipeline's output changes."""

_INSTANCE_KEYS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


@dataclass(frozen=True)
class Rendered:
    """A rendered image and how to label it."""

    content: bytes
    media: MediaType
    cached: bool


class Renderer:
    """Rendered previews and thumbnails of archived instances, cached on disk."""

    def __init__(self, archive: Archive, cache: DiskCache | None = None) -> None:
        self.archive = archive
        self.cache = cache

    def instance(self, query: Query, params: RenderParams, origin: Origin) -> Rendered:
        """Render the one instance ``query`` names (an IMAGE-level query).

        Raises
        ------
        NotFound
            No such instance, or no such frame (404).
        NotRenderable
            The object has no renderable pixel data (400).
        """
        uids = [query.filters.get(k, "") for k in _INSTANCE_KEYS]
        if query.level == Level.IMAGE and all(uids) and len(query.filters) == 3:
            ref = self.archive.locate_instance(*uids, origin, action="render")
        else:
            refs = self.archive.locate(query, origin, action="render")
            ref = refs[0] if refs else None
        if ref is None:
            raise NotFound("no instance with these UIDs")
        return self.render(ref, params)

    def representative(self, query: Query, params: RenderParams, origin: Origin) -> Rendered:
        """Render the instance that stands for a study or series
        (:meth:`Archive.representative`, PS3.18 10.4.1.1.3)."""
        ref = self.archive.representative(query, origin, action="render")
        if ref is None:
            raise NotFound(f"no {query.level.value.lower()} with these UIDs")
        return self.render(ref, params)

    def render(self, ref: InstanceRef, params: RenderParams) -> Rendered:
        """The rendering of ``ref`` for ``params``, from the cache when it is there."""
        key = cache_key(PIPELINE_VERSION, ref.object_key, params.key())
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return Rendered(hit, params.media, cached=True)
        content = render(self.archive.read_dataset(ref), params)
        if self.cache is not None:
            self.cache.put(key, content)
        return Rendered(content, params.media, cached=False)
