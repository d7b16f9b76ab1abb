"""The vendored OASIS CAP 1.2 XML schema (see ``README.md`` in this folder).

``CAP_XSD_PATH`` is the file :func:`services.dispatch.render.cap.validate_cap` loads; it
ships as package data (``*.xsd``) so an installed wheel validates the same way as a checkout.
"""

from __future__ import annotations

from pathlib import Path

CAP_XSD_PATH: Path = Path(__file__).resolve().parent / "CAP-v1.2.xsd"
CAP_NAMESPACE = "urn:oasis:names:tc:emergency:cap:1.2"

__all__ = ["CAP_NAMESPACE", "CAP_XSD_PATH"]
