"""The one settings object: environment variables (``PACS_*``) and an optional TOML file.

The environment wins over the file, the file over the defaults (SPEC.md "Listeners and
defaults"). Components receive typed slices (:class:`storage.StorageSettings`, ...), never
this object, so nothing below the composition root reads the environment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ris.savings import CostModel
from storage import StorageSettings


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
