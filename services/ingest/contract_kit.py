"""Contract checks a feed plug-in's author runs from their own pytest suite.

::

    from services.ingest.contract_kit import check_adapter

    SAMPLE = b"..."  # a real payload from the vendor, anonymised

    def test_my_feed_honours_the_contract():
        check_adapter(MyFeed, samples=[SAMPLE])

Needs ``hypothesis`` (the ``dev`` extra): import it from tests only.

``check_adapter`` runs every check below; each is also callable on its own. A check raises
``AdapterContractError`` (an ``AssertionError``, so pytest shows it as a failure) listing
every breach it found at once; the hypothesis-based ones show the falsifying payload.

1. ``check_adapter_class``       capabilities are declared as class attributes and sane.
2. ``check_samples``             every sample decodes, with no errors, to observations that
                                 are valid canonical observations of the declared kinds.
3. ``check_deterministic``       the same payload decodes to the same items, every time.
4. ``check_oversized_refused``   a payload over ``max_payload_bytes`` is refused as
                                 ``oversized`` before ``decode`` runs.
5. ``check_garbage_never_raises`` (hypothesis) arbitrary bytes, text, JSON and mutations
                                 of the samples never make ``decode`` raise; every item is an
                                 observation, canonical bytes or a ``DecodeError`` whose
                                 reason is a ``RejectReason`` and whose detail is not empty.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.observations import OBSERVATION_ADAPTER, ObservationBase
from services.ingest.feeds.base import (
    REJECT_REASONS,
    DecodedItem,
    DecodeError,
    FeedAdapter,
    check_class,
    decode_payload,
)


class AdapterContractError(AssertionError):
    """The adapter breaks the feed contract; the message lists every breach found."""


def _fail_if(problems: Sequence[str], cls: type[FeedAdapter], what: str) -> None:
    if problems:
        name = getattr(cls, "name", cls.__name__)
        listing = "\n  - ".join(problems)
        msg = f"feed {name!r} ({cls.__module__}.{cls.__qualname__}) {what}:\n  - {listing}"
        raise AdapterContractError(msg)


def check_adapter_class(cls: type[FeedAdapter]) -> None:
    """Capabilities readable without an instance; no abstract methods left."""
    problems = check_class(cls)
    if getattr(cls, "__abstractmethods__", None):
        problems.append(f"abstract methods left: {sorted(cls.__abstractmethods__)}")
    _fail_if(problems, cls, "declares bad capabilities")


def item_problems(cls: type[FeedAdapter], item: object, where: str) -> list[str]:
    """What is wrong with one decoded item (empty: it honours the contract)."""
    if isinstance(item, DecodeError):
        problems = []
        if item.reason not in REJECT_REASONS:
            problems.append(f"{where}: reason {item.reason!r} is not a RejectReason")
        if not item.detail.strip():
            problems.append(f"{where}: DecodeError without a detail")
        return problems
    if isinstance(item, bytes | ObservationBase):
        return []
    return [f"{where}: yielded {type(item).__name__}; expected bytes, an ObservationBase or a DecodeError"]


def canonical_observation(item: bytes | ObservationBase) -> ObservationBase:
    """The canonical observation an item stands for (validated); raises ``ValidationError``."""
    if isinstance(item, bytes):
        return OBSERVATION_ADAPTER.validate_json(item)
    return OBSERVATION_ADAPTER.validate_json(item.model_dump_json())


def check_samples(cls: type[FeedAdapter], samples: Iterable[bytes]) -> list[ObservationBase]:
    """Every sample decodes to at least one observation and nothing else; returns them all.

    Each item must be a valid canonical observation (re-validated from its JSON, as a
    consumer of ``obs.*`` would read it) of a kind in ``cls.observation_kinds``.
    """
    adapter = cls()
    problems: list[str] = []
    observations: list[ObservationBase] = []
    listed = list(samples)
    if not listed:
        problems.append("no sample payloads given: pass at least one real payload")
    for number, sample in enumerate(listed):
        try:
            items = list(adapter.decode(sample))
        except Exception as exc:  # reported with the other breaches, not as a crash of the kit
            problems.append(f"sample {number}: decode raised {type(exc).__name__}: {exc}")
            continue
        if not items:
            problems.append(f"sample {number}: decoded to no items")
        for index, item in enumerate(items):
            where = f"sample {number} item {index}"
            problems.extend(item_problems(cls, item, where))
            if isinstance(item, DecodeError):
                problems.append(f"{where}: a sample must decode cleanly, got {item.reason}: {item.detail}")
                continue
            if not isinstance(item, bytes | ObservationBase):
                continue
            try:
                obs = canonical_observation(item)
            except ValidationError as exc:
                problems.append(f"{where}: not a valid canonical observation: {exc.errors(include_url=False)[:2]}")
                continue
            kind: str = obs.kind
            if kind not in cls.observation_kinds:
                problems.append(f"{where}: kind {kind!r} not in observation_kinds {sorted(cls.observation_kinds)}")
            observations.append(obs)
    _fail_if(problems, cls, "fails on its samples")
    return observations


def check_deterministic(cls: type[FeedAdapter], payloads: Iterable[bytes]) -> None:
    """Decoding a payload twice, with the same and with a fresh instance, gives equal items."""
    first, second = cls(), cls()
    problems = []
    for number, payload in enumerate(payloads):
        try:
            once = list(first.decode(payload))
            again = list(first.decode(payload))
            fresh = list(second.decode(payload))
        except Exception as exc:  # reported, not a crash of the kit
            problems.append(f"payload {number}: decode raised {type(exc).__name__}: {exc}")
            continue
        if once != again or once != fresh:
            problems.append(f"payload {number}: decode is not deterministic ({len(once)} vs {len(again)} items)")
    _fail_if(problems, cls, "is not deterministic")


def check_oversized_refused(cls: type[FeedAdapter]) -> None:
    """A payload of ``max_payload_bytes + 1`` is refused as ``oversized`` without decoding."""
    adapter = cls()
    payload = b" " * (cls.max_payload_bytes + 1)
    items = list(decode_payload(adapter, payload))
    problems = []
    if len(items) != 1 or not isinstance(items[0], DecodeError) or items[0].reason != "oversized":
        problems.append(f"expected exactly one 'oversized' DecodeError, got {[type(i).__name__ for i in items]}")
    elif not items[0].fatal or str(cls.max_payload_bytes) not in items[0].detail:
        problems.append(f"the oversized error must be fatal and name the limit, got {items[0]!r}")
    _fail_if(problems, cls, "does not refuse oversized payloads")


JSON_VALUES: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)


def _mutations(sample: bytes) -> st.SearchStrategy[bytes]:
    """Edits of a real payload: truncation, inserted or deleted bytes, a replaced JSON leaf or CSV cell."""
    size = len(sample)
    index = st.integers(min_value=0, max_value=size)
    edits: list[st.SearchStrategy[bytes]] = [
        index.map(lambda i: sample[:i]),
        st.tuples(index, st.binary(min_size=1, max_size=16)).map(lambda t: sample[: t[0]] + t[1] + sample[t[0] :]),
        st.tuples(index, st.integers(min_value=1, max_value=32)).map(lambda t: sample[: t[0]] + sample[t[0] + t[1] :]),
        st.tuples(index, st.sampled_from([b",", b"\n", b'"', b"{", b"]", b"\x00", b"\xff", b"-", b"999999"])).map(
            lambda t: sample[: t[0]] + t[1] + sample[t[0] :]
        ),
    ]
    try:
        document = json.loads(sample)
    except ValueError:
        document = None
    if document is not None:
        edits.append(
            st.tuples(st.randoms(use_true_random=False), JSON_VALUES).map(lambda t: _replace_leaf(document, *t))
        )
    elif b"," in sample:
        cell = st.text(max_size=12).filter(lambda s: "," not in s and "\n" not in s)
        edits.append(st.tuples(st.randoms(use_true_random=False), cell).map(lambda t: _replace_cell(sample, *t)))
    return st.one_of(edits)


def _replace_leaf(document: Any, rnd: Any, value: Any) -> bytes:
    """The document with one randomly chosen leaf (or container) replaced by ``value``."""
    copy = json.loads(json.dumps(document))
    node, steps = copy, 0
    while isinstance(node, dict | list) and node and steps < 10:
        keys = list(node.keys()) if isinstance(node, dict) else list(range(len(node)))
        key = rnd.choice(keys)
        child = node[key]
        if not isinstance(child, dict | list) or rnd.random() < 0.3:
            node[key] = value
            break
        node, steps = child, steps + 1
    return json.dumps(copy, allow_nan=True).encode()


def _replace_cell(sample: bytes, rnd: Any, value: str) -> bytes:
    lines = sample.split(b"\n")
    row = rnd.randrange(len(lines))
    cells = lines[row].split(b",")
    cells[rnd.randrange(len(cells))] = value.encode("utf-8", errors="replace")
    lines[row] = b",".join(cells)
    return b"\n".join(lines)


def garbage_payloads(samples: Sequence[bytes] = (), max_size: int = 2000) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, text, JSON documents, NDJSON and (given samples) mutations of them."""
    choices: list[st.SearchStrategy[bytes]] = [
        st.binary(max_size=max_size),
        st.text(max_size=max_size // 4).map(lambda s: s.encode("utf-8", errors="surrogatepass")),
        JSON_VALUES.map(lambda v: json.dumps(v, allow_nan=True).encode()),
        st.lists(JSON_VALUES, max_size=5).map(lambda vs: b"\n".join(json.dumps(v).encode() for v in vs)),
        st.lists(st.lists(st.text(max_size=10), max_size=6), max_size=6).map(
            lambda rows: "\n".join(",".join(r) for r in rows).encode("utf-8", errors="surrogatepass")
        ),
    ]
    choices.extend(_mutations(sample) for sample in samples)
    return st.one_of(choices)


def check_garbage_never_raises(cls: type[FeedAdapter], samples: Sequence[bytes] = (), max_examples: int = 200) -> None:
    """Hypothesis: ``decode`` never raises and every item honours the contract, for any payload."""
    adapter = cls()

    @settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(payload=garbage_payloads(samples))
    def decode_any(payload: bytes) -> None:
        try:
            items: list[DecodedItem] = list(adapter.decode(payload))
        except Exception as exc:
            msg = f"feed {cls.name!r}: decode raised {type(exc).__name__}: {exc} for payload {payload[:200]!r}"
            raise AdapterContractError(msg) from exc
        problems = [p for i, item in enumerate(items) for p in item_problems(cls, item, f"item {i}")]
        if list(adapter.decode(payload)) != items:
            problems.append("decoding the same payload twice gave different items")
        _fail_if(problems, cls, f"breaks the contract on payload {payload[:200]!r}")

    decode_any()


def check_adapter(cls: type[FeedAdapter], samples: Sequence[bytes], max_examples: int = 200) -> list[ObservationBase]:
    """All checks; returns the observations the samples decode to (for further asserts)."""
    check_adapter_class(cls)
    observations = check_samples(cls, samples)
    check_deterministic(cls, samples)
    check_oversized_refused(cls)
    check_garbage_never_raises(cls, samples, max_examples)
    return observations
