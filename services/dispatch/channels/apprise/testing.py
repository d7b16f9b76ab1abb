"""Test helpers: Apprise targets that post to a loopback receiver (``json://``)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from pydantic import SecretStr

from services.dispatch.channels.apprise.config import AppriseConfig


def json_targets(receiver_url: str, target_ids: Mapping[str, str]) -> AppriseConfig:
    """An ``AppriseConfig`` whose targets are ``json://`` URLs on a loopback receiver.

    ``target_ids`` maps target id → path on the receiver. Pair with
    ``services.dispatch.gateways.create_receipt_sink()`` to see what arrived.
    """
    netloc = urlsplit(receiver_url).netloc
    return AppriseConfig(
        targets={tid: SecretStr(f"json://{netloc}/{path.lstrip('/')}") for tid, path in target_ids.items()}
    )
