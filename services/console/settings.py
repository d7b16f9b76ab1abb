"""Console settings (defaults stated here; the secret is a ``SecretStr``)."""

from __future__ import annotations

import uuid
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class ConsoleSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    users_file: Path | None = Field(default=None, description="TOML users file (see services.console.auth)")
    audit_file: Path = Field(default=Path(".earlywarn/console-audit.jsonl"), description="append-only JSON lines")
    session_secret: SecretStr = Field(description="HMAC key for session cookies and CSRF tokens (≥ 16 bytes)")
    session_ttl_s: int = Field(default=8 * 3600, ge=60, description="a duty shift; sign in again after")
    cookie_secure: bool = Field(default=False, description="set True behind TLS")
    instance_id: str = Field(
        default_factory=lambda: uuid.uuid4().hex[:8],
        pattern=r"^[A-Za-z0-9_.-]{1,40}$",
        description="consumer groups are console-<instance_id>-…: every instance reads every record",
    )
    stream_buffer_events: int = Field(default=10_000, ge=10, description="ring buffer for Last-Event-ID resume")
    stream_ping_s: float = Field(default=15.0, gt=0, description="SSE keep-alive comment interval")
    tick_interval_s: float = Field(default=2.0, gt=0, description="expiry, pruning and health refresh")
    keep_inactive_s: int = Field(default=24 * 3600, ge=0, description="event-time age at which ended warnings go")
    watch_observations: bool = Field(
        default=True, description="read obs.* (stale stations) and hazard.assessments (faulty sensors)"
    )
    consumer_batch_records: int = Field(default=1000, ge=1, le=100_000)
    login_max_failures: int = Field(default=5, ge=1, description="failures per user name before a lockout")
    login_lockout_s: int = Field(default=300, ge=0)
    replay_scenarios: tuple[str, ...] = Field(default=("rainband",), description="names offered in the replay form")
    compose_channels: tuple[str, ...] = Field(default=("sms", "broadcast", "app"), description="checked when composing")
    audit_fsync: bool = Field(default=False, description="fsync each audit line (slower, survives power loss)")
