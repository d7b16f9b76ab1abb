"""One settings model for every service: a TOML file plus ``EARLYWARN_*`` overrides.

Precedence (highest first): keyword arguments, environment (``EARLYWARN_BROKER``,
nested with ``__`` as in ``EARLYWARN_BUS__PARTITIONS=8``), the TOML file named by
``EARLYWARN_CONFIG`` (default ``earlywarn.toml`` in the working directory, if present),
then the defaults written here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class BusSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    partitions: int = Field(default=4, ge=1, le=256, description="partitions per topic")
    memory_retention_records: int = Field(
        default=200_000, ge=1_000, description="memory runtime: records kept per partition"
    )
    batch_max_records: int = Field(default=500, ge=1, le=100_000)
    linger_ms: int = Field(default=5, ge=0, le=1000)


class IngestSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_future_skew_s: int = Field(default=300, ge=0, description="reject obs this far ahead")
    max_age_s: int = Field(default=7 * 86400, ge=60, description="reject obs older than this")
    dedup_window_s: int = Field(default=6 * 3600, ge=60)


class RulesSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed_lateness_s: int = Field(default=600, ge=0)
    warning_validity_s: int = Field(default=6 * 3600, ge=600)
    all_clear_quiet_s: int = Field(default=3 * 3600, ge=0)
    deescalate_dwell_s: int = Field(default=3600, ge=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EARLYWARN_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
    )

    broker: str = Field(default="memory://", description="memory:// or kafka://host:port[,host:port]")
    service_name: str = "earlywarn"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "console"] = "json"
    data_dir: Path = Path(".earlywarn")
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0 = do not serve /metrics")
    bus: BusSettings = BusSettings()
    ingest: IngestSettings = IngestSettings()
    rules: RulesSettings = RulesSettings()
    integrator_keys_file: Path | None = None
    signing_secret: SecretStr = SecretStr("change-me-in-production")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = Path(os.environ.get("EARLYWARN_CONFIG", "earlywarn.toml"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @property
    def runtime(self) -> Literal["memory", "kafka"]:
        if self.broker.startswith("memory://"):
            return "memory"
        if self.broker.startswith("kafka://"):
            return "kafka"
        msg = f"broker {self.broker!r}: expected memory:// or kafka://host:port"
        raise ValueError(msg)

    @property
    def kafka_bootstrap(self) -> str:
        """``host:port[,host:port]`` from ``kafka://…``."""
        return self.broker.removeprefix("kafka://").rstrip("/")


def load_settings(**overrides: object) -> Settings:
    """Build settings; errors name the key and the reason (pydantic's ValidationError)."""
    return Settings(**overrides)  # type: ignore[arg-type]  # pydantic-settings accepts kwargs by field name
