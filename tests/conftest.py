"""Shared fixtures. The Kafka broker: KAFKA_BOOTSTRAP_SERVERS, else testcontainers, else skip.

``EARLYWARN_REQUIRE_KAFKA=1`` (set by ``.ci/run``) turns the skip into a failure, so CI
can never go green with its Kafka tests silently skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest


def _docker_engine_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
    except Exception:  # any failure means "no engine here"
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        yield env
        return
    if _docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    reason = (
        "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS (e.g. `bash deploy/kafka/kafka.sh start` "
        "then KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092) or run a Docker engine for testcontainers"
    )
    if os.environ.get("EARLYWARN_REQUIRE_KAFKA") == "1":
        pytest.fail(f"EARLYWARN_REQUIRE_KAFKA=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def namespace() -> str:
    """A fresh topic/group prefix so tests sharing one broker never see each other."""
    return f"t{uuid.uuid4().hex[:10]}."
