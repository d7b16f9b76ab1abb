"""Dispatch: warnings → targeted, rendered, paced hand-offs to channels, with a ledger account.

- ``processor``: the intake (``warnings`` → ``dispatch.work`` keyed by warning id) and the
  internal record formats;
- ``orchestrator``: ``Dispatcher`` — dedup, holds, cancel/expiry, fan-out, retries,
  fail-over, escalation, coverage, durable ledger state;
- ``service``: the runtimes (``run_dispatch`` on the memory bus, ``run_dispatch_kafka``),
  the provider callback endpoint and ``python -m services.dispatch.service``;
- building blocks: ``targeting``, ``render``, ``channels``, ``ledger``, ``gateways``.

See ``docs/dispatch.md``.
"""
