"""``canonical``: observations already in our own schema (``schemas/json/observation.schema.json``).

Accepted shapes, told apart by the first non-blank byte and one parse:

1. one JSON object                     → one item (the payload itself)
2. a JSON array of objects             → one item per element, in order
3. NDJSON: one JSON object per line    → one item per non-blank line

Each item is handed to the gate as canonical JSON bytes, so the reasons an integrator sees
(``malformed_json``, ``schema`` with the field, ``implausible_value`` …) are the gate's own,
the same as for ``POST /v1/observations``. A payload that is none of these (an array that
does not parse) is one fatal ``malformed_json`` error; a broken NDJSON line is rejected on
its own and the other lines go on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import ClassVar

from services.ingest.feeds.base import DecodedItem, DecodeError, FeedAdapter

SAMPLE_PAYLOAD = (
    b'{"kind":"rain","station_id":"RAIN-A0001","observed_at":"2019-08-09T11:55:00Z","rain_mm":2.5,"interval_s":300}\n'
    b'{"kind":"water_level","station_id":"WL-OU-01","observed_at":"2019-08-09T11:55:00Z","level_m":4.12}\n'
)


class CanonicalFeed(FeedAdapter):
    name: ClassVar[str] = "canonical"
    content_types: ClassVar[tuple[str, ...]] = ("application/json", "application/x-ndjson", "application/jsonl")
    max_payload_bytes: ClassVar[int] = 8 * 1024 * 1024
    observation_kinds: ClassVar[frozenset[str]] = frozenset({"rain", "radar", "geohazard", "water_level"})
    description: ClassVar[str] = "Our own observation schema: one object, a JSON array, or NDJSON."

    def decode(self, payload: bytes) -> Iterator[DecodedItem]:
        body = payload.strip()
        if not body:
            detail = "empty payload: expected a JSON object, an array or NDJSON"
            yield DecodeError("malformed_json", detail, None, payload, fatal=True)
            return
        if body[:1] == b"[":
            yield from _array(body)
            return
        if b"\n" not in body:
            yield body
            return
        try:
            whole = json.loads(body)
        except ValueError:
            whole = None  # not one document: read it as NDJSON below
        except RecursionError:
            whole = None
        if isinstance(whole, dict):  # one pretty-printed object
            yield body
            return
        for line in body.split(b"\n"):
            item = line.strip()
            if item:
                yield item


_JSON_WHITESPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


def _array(body: bytes) -> Iterator[DecodedItem]:
    """One item per element: the element's own bytes as sent (not re-encoded).

    The whole array is parsed before the first item is yielded, so a syntax error anywhere
    refuses the payload as a whole (one fatal ``malformed_json``) instead of accepting a prefix.
    """
    try:
        text = body.decode("utf-8")
        elements = _element_spans(text)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        yield DecodeError("malformed_json", f"payload is not a JSON array: {exc}", None, body, fatal=True)
        return
    for begin, end in elements:
        yield text[begin:end].encode("utf-8")


def _element_spans(text: str) -> list[tuple[int, int]]:
    """(begin, end) of each element of the JSON array ``text``; raises ``ValueError`` if it is not one."""
    spans: list[tuple[int, int]] = []
    index = _skip_whitespace(text, 1)
    if text[index : index + 1] == "]":
        index += 1
    else:
        while True:
            _, end = _DECODER.raw_decode(text, index)
            spans.append((index, end))
            index = _skip_whitespace(text, end)
            separator = text[index : index + 1]
            if separator == "]":
                index += 1
                break
            if separator != ",":
                msg = f"expected ',' or ']' at position {index}"
                raise ValueError(msg)
            index = _skip_whitespace(text, index + 1)
    if text[index:].strip(" \t\n\r"):
        msg = f"extra data after the array at position {index}"
        raise ValueError(msg)
    return spans


def _skip_whitespace(text: str, index: int) -> int:
    match = _JSON_WHITESPACE.match(text, index)
    return match.end() if match else index
