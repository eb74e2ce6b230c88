"""Rendered previews and thumbnails: parameters, the pixel pipeline, and the cached service.

- :mod:`viewer_api.rendering.params`: PS3.18 8.3.5 / 9.1.2.2 parameters → :class:`RenderParams`;
- :mod:`viewer_api.rendering.pipeline`: a dataset → JPEG / PNG with pydicom's LUT functions;
- :mod:`viewer_api.rendering.service`: :class:`Renderer` (audited locate, disk cache, render).
"""

from viewer_api.rendering.params import MediaType, RenderParams, Viewport, Window
from viewer_api.rendering.pipeline import NotRenderable, render
from viewer_api.rendering.service import Rendered, Renderer

__all__ = ["MediaType", "NotRenderable", "RenderParams", "Rendered", "Renderer", "Viewport",
           "Window", "render"]
