"""HTTP: REST API, DICOMweb and the web UI."""

from viewer_api.app import create_app

__all__ = ["create_app"]
