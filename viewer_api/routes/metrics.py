"""``/metrics``: Prometheus text exposition (SPEC.md "HTTP")."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from viewer_api.deps import ServicesDep
from viewer_api.metrics import exposition

router = APIRouter(tags=["metrics"])


@router.get("/metrics", include_in_schema=False)
def metrics(services: ServicesDep) -> Response:
    return Response(exposition(services.savings.operations.storage_used),
                    media_type=CONTENT_TYPE_LATEST)
