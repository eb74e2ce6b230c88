"""The one settings object: environment variables (``PACS_*``) and an optional TOML file.

The environment wins over the file, the file over the defaults (SPEC.md "Listeners and
defaults"). Components receive typed slices (:class:`storage.StorageSettings`, ...), never
this object, so nothing below the composition root reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ris.reports import ReportSettings
from ris.savings import CostModel
from storage import StorageSettings
from storage.accounts import AuthSettings
from storage.cache import CacheSettings


class Settings(BaseSettings):
    """Every knob of a Filmless PACS node. Field ``x`` is the variable ``PACS_X``."""

    model_config = SettingsConfigDict(env_prefix="PACS_", extra="ignore",
                                      env_nested_delimiter="__")

    ae_title: str = Field("PACS", max_length=16)
    dicom_host: str = ""
    dicom_port: int = Field(11112, ge=1, le=65535)
    dicom_workers: int = Field(0, ge=0, description="DICOM receiving processes; 0 = two per core")
    dicom_allow_unknown_ae: bool = True
    dicom_max_pdu: int = 262_144
    dicom_max_associations: int = 64
    http_host: str = "127.0.0.1"
    http_port: int = Field(8080, ge=1, le=65535)
    hl7_port: int = Field(2575, ge=1, le=65535)
    data_dir: Path = Path("./pacs-data")
    database_url: str = ""
    storage_url: str = ""
    s3_endpoint_url: str | None = None
    fsync: bool = True
    sqlite_synchronous: str = "FULL"
    find_limit: int = Field(10_000, ge=1, description="C-FIND and QIDO-RS answer at most this many matches")
    render_cache_dir: Path | None = Field(
        None, description="rendered previews and thumbnails; default <data_dir>/cache/rendered")
    render_cache_max_mb: int = Field(1024, ge=0, description="render cache size cap; 0 = off")
    # -- security (docs/security.md) ------------------------------------------------------
    auth: bool = Field(True, description="HTTP authentication; PACS_AUTH=off for a closed lab")
    admin_password: str | None = Field(None, repr=False,
                                       description="password of the first user, admin")
    token_ttl: int = Field(8 * 3600, ge=60, description="bearer token lifetime, seconds")
    login_max_failures: int = Field(5, ge=1)
    login_failure_window: int = Field(300, ge=1, description="seconds")
    metrics_token: str | None = Field(None, repr=False,
                                      description="bearer token that may read /metrics only")
    dicom_tls_cert: Path | None = None
    dicom_tls_key: Path | None = None
    dicom_tls_ca: Path | None = Field(None, description="CA bundle; set = client certs required")
    http_tls_cert: Path | None = None
    http_tls_key: Path | None = None

    @model_validator(mode="after")
    def _tls_pairs(self) -> Settings:
        """A certificate needs its key and the reverse; a CA needs a certificate."""
        for kind in ("dicom", "http"):
            cert, key = getattr(self, f"{kind}_tls_cert"), getattr(self, f"{kind}_tls_key")
            if (cert is None) != (key is None):
                raise ValueError(f"PACS_{kind.upper()}_TLS_CERT and PACS_{kind.upper()}_TLS_KEY "
                                 "go together")
        if self.dicom_tls_ca is not None and self.dicom_tls_cert is None:
            raise ValueError("PACS_DICOM_TLS_CA needs PACS_DICOM_TLS_CERT and _KEY")
        return self
    report_signing_key: Path | None = Field(
        None, description="Ed25519 key signing reports; default DATA_DIR/keys/report-signing.key")
    report_institution: str = ""
    report_font: Path | None = Field(None, description="TrueType font of report PDFs (Vietnamese)")
    hl7_oru_host: str = Field("", description="ORU^R01 receiver; no ORU is sent when empty")
    hl7_oru_port: int | None = Field(None, ge=1, le=65535)
    hl7_oru_attempts: int = Field(5, ge=1)
    savings: CostModel = Field(default_factory=CostModel,
                               description="cost model of the savings report: TOML table "
                               "[savings], or PACS_SAVINGS__FIELD (docs/savings.md)")

    @classmethod
    def load(cls, config: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from ``overrides``, then the environment, then ``config`` (TOML)."""
        toml = config

        class _WithToml(cls):  # type: ignore[valid-type,misc]
            @classmethod
            def settings_customise_sources(
                cls,
                settings_cls: type[BaseSettings],
                init_settings: PydanticBaseSettingsSource,
                env_settings: PydanticBaseSettingsSource,
                dotenv_settings: PydanticBaseSettingsSource,
                file_secret_settings: PydanticBaseSettingsSource,
            ) -> tuple[PydanticBaseSettingsSource, ...]:
                sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
                if toml is not None:
                    sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
                return tuple(sources)

        if config is not None and not Path(config).is_file():
            raise FileNotFoundError(f"configuration file not found: {config}")
        return cls.model_validate(_WithToml(**overrides).model_dump())

    # -- typed slices ---------------------------------------------------------------------
    def storage(self) -> StorageSettings:
        data = self.data_dir
        return StorageSettings(
            database_url=self.database_url or f"sqlite:///{data / 'index.db'}",
            storage_url=self.storage_url or f"file://{data / 'objects'}",
            s3_endpoint_url=self.s3_endpoint_url,
            fsync=self.fsync,
            find_limit=self.find_limit,
            sqlite_synchronous=self.sqlite_synchronous,
        )

    def render_cache(self) -> CacheSettings:
        """The rendered-image cache slice (``viewer_api.rendering``)."""
        return CacheSettings(
            directory=self.render_cache_dir or self.data_dir / "cache" / "rendered",
            max_bytes=self.render_cache_max_mb * 1024 * 1024,
        )

    def auth_settings(self) -> AuthSettings:
        return AuthSettings(enabled=self.auth, token_ttl=self.token_ttl,
                            max_failures=self.login_max_failures,
                            failure_window=self.login_failure_window,
                            metrics_token=self.metrics_token or None)

    def reports(self) -> ReportSettings:
        # With authentication on, the signer is the authenticated user and nobody else.
        return ReportSettings(
            signing_key_path=self.report_signing_key
            or self.data_dir / "keys" / "report-signing.key",
            hl7_oru_host=self.hl7_oru_host,
            hl7_oru_port=self.hl7_oru_port,
            hl7_oru_attempts=self.hl7_oru_attempts,
            institution=self.report_institution,
            font_path=self.report_font,
            allow_body_signer=not self.auth,
        )
    def cost_model(self) -> CostModel:
        return self.savings

    def metrics_dir(self) -> Path:
        """Where the DICOM and HTTP processes share their Prometheus metrics."""
        return self.data_dir / "metrics"

    def worker_count(self) -> int:
        """DICOM receiving processes. An association spends much of its time waiting (on
        fsync, on pynetdicom's polling), so two processes per core keep the cores busy:
        measured here, 4 processes ingest ~1.2-1.8x faster than 2 with 4 associations."""
        return self.dicom_workers if self.dicom_workers > 0 else 2 * max(1, os.cpu_count() or 1)
