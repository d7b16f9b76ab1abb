"""Helpers for reading vendor formats: Beijing-time timestamps, missing-value markers, CSV rows.

Chinese station networks export local time (BJT, UTC+8, no daylight saving) without an
offset, mark missing values with CMA codes (``999999`` and neighbours) or dashes, and often
write a UTF-8 byte-order mark or GB18030 text. These helpers turn that into values the
canonical models accept, or a ``DecodeError`` that names the column and the problem.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from services.ingest.feeds.base import DecodeError

BJT = timezone(timedelta(hours=8), "BJT")
MISSING_MARKERS = frozenset({"", "-", "--", "/", "na", "n/a", "null", "none", "nan"})
CMA_MISSING_FROM = 999_990.0
"""CMA surface data codes 999990-999999 mean missing or special: treated as missing."""


class FieldError(ValueError):
    """A vendor value that cannot be read; carries the column it came from."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"{column}: {message}")
        self.column = column


def parse_bjt(text: str, column: str) -> datetime:
    """A vendor timestamp in Beijing time → aware UTC.

    Accepts ``2019-08-09 20:00[:00]``, ``2019/08/09 20:00:00``, ``2019-08-09T20:00:00``,
    ``201908092000[00]``; an explicit offset (``+08:00``, ``Z``) is honoured.
    """
    value = text.strip()
    if value.isdigit() and len(value) in (12, 14):
        fmt = "%Y%m%d%H%M%S" if len(value) == 14 else "%Y%m%d%H%M"
        try:
            parsed = datetime.strptime(value, fmt)  # naive on purpose: it is BJT
        except ValueError as exc:
            raise FieldError(column, f"{text!r} is not a valid time ({exc})") from exc
    else:
        try:
            parsed = datetime.fromisoformat(value.replace("/", "-"))
        except ValueError as exc:
            raise FieldError(column, f"{text!r} is not a time like 2019-08-09 20:00:00 (BJT)") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=BJT)
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise FieldError(column, f"{text!r} is out of range") from exc


def epoch_ms_to_utc(value: int, column: str) -> datetime:
    """Milliseconds since the Unix epoch → aware UTC."""
    try:
        return datetime.fromtimestamp(value / 1000.0, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise FieldError(column, f"{value!r} is not a plausible epoch time in milliseconds") from exc


def parse_number(text: str, column: str) -> float | None:
    """A vendor number; ``None`` for a missing-value marker. Non-finite values are errors."""
    value = text.strip()
    if value.lower() in MISSING_MARKERS:
        return None
    try:
        number = float(value)
    except ValueError as exc:
        raise FieldError(column, f"{text!r} is not a number") from exc
    if not math.isfinite(number):
        raise FieldError(column, f"{text!r} is not a finite number")
    if number >= CMA_MISSING_FROM:
        return None
    return number


def required(value: float | None, column: str) -> float:
    if value is None:
        raise FieldError(column, "value is missing")
    return value


def decode_text(line: bytes) -> str:
    """One line of vendor text: UTF-8, else GB18030 (what Excel on a Chinese desktop writes)."""
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("gb18030")


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One data line: its fields by (normalised) column name and the line as received."""

    values: Mapping[str, str]
    raw: bytes


def normalise_column(name: str) -> str:
    """``Time(BJT)`` → ``time``: lower case, no unit or zone suffix in brackets, no spaces."""
    head = name.strip().lower().split("(", 1)[0].split("（", 1)[0]
    return head.strip().replace(" ", "_")


def iter_csv(
    payload: bytes, columns: Mapping[str, Sequence[str]], required_columns: Sequence[str]
) -> Iterator[CsvRow | DecodeError]:
    """Split a vendor CSV into rows keyed by canonical column names.

    ``columns`` maps our name to the vendor header names that mean it (normalised, see
    ``normalise_column``). The first non-blank line is the header; it must name every
    column in ``required_columns`` (else one fatal error). Every later non-blank line is one
    record: a ``CsvRow``, or a ``DecodeError`` when it cannot be read (bad encoding, wrong
    number of fields). Lines are records: quoted fields may not contain line breaks.
    """
    lines = payload.split(b"\n")
    header: dict[str, int] | None = None
    width = 0
    for number, line in enumerate(lines, start=1):
        raw = line.rstrip(b"\r")
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            text = decode_text(raw)
            fields = next(csv.reader([text]))
        except (UnicodeDecodeError, csv.Error, StopIteration) as exc:
            if header is None:
                yield DecodeError("schema", f"line {number}: header is unreadable: {exc}", "header", payload, True)
                return
            yield DecodeError("schema", f"line {number}: unreadable CSV line: {exc}", None, raw)
            continue
        if header is None:
            header = _header(fields, columns)
            missing = [name for name in required_columns if name not in header]
            if missing:
                wanted = ", ".join(f"{name} ({'/'.join(columns[name])})" for name in missing)
                yield DecodeError(
                    "schema", f"line {number}: header {fields!r} lacks column(s) {wanted}", "header", payload, True
                )
                return
            width = len(fields)
            continue
        if len(fields) != width:
            yield DecodeError("schema", f"line {number}: {len(fields)} fields, header has {width}", None, raw)
            continue
        yield CsvRow({name: fields[index] for name, index in header.items()}, raw)


def _header(fields: Sequence[str], columns: Mapping[str, Sequence[str]]) -> dict[str, int]:
    by_vendor = {normalise_column(field): index for index, field in enumerate(fields)}
    found: dict[str, int] = {}
    for ours, vendor_names in columns.items():
        for vendor in vendor_names:
            if vendor in by_vendor:
                found[ours] = by_vendor[vendor]
                break
    return found
