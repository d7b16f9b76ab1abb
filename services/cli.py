"""``earlywarn`` command line: run the whole pipeline, or one service per process."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from services.common.bus.kafka import KafkaBus
from services.common.clock import VirtualClock
from services.common.logging import configure_logging
from services.common.metrics import Metrics
from services.common.ops import serve_ops
from services.common.settings import load_settings
from services.dispatch.log_channel import format_warning
from services.ingest.gate import static_lookup
from services.ingest.simulate.rainband import RainbandScenario, gauges_by_township, observations, stations
from services.pipeline import IngestCounts, MemoryPipeline, collect_warnings
from services.replay import replay_ticks
from services.rules.processors import rules_processors

app = typer.Typer(help="earlywarn: sensor feeds -> hazard rules -> warnings -> channels.", no_args_is_help=True)
console = Console(stderr=False)

SpeedOpt = Annotated[float, typer.Option(help="replay speed: N x real time; 0 = as fast as possible")]
BrokerOpt = Annotated[str, typer.Option(help="memory:// or kafka://host:port", envvar="EARLYWARN_BROKER")]
NamespaceOpt = Annotated[str, typer.Option(help="topic/group prefix (isolates pipelines on one broker)")]
PartitionsOpt = Annotated[int, typer.Option(help="partitions per topic")]
MetricsPortOpt = Annotated[int, typer.Option(help="serve /metrics and /healthz on 127.0.0.1:PORT (0 = off)")]


def _speed(value: float) -> float | None:
    return None if value <= 0 else value


@app.command()
def run(
    speed: SpeedOpt = 3600.0,
    hours: Annotated[float, typer.Option(help="scenario length in hours")] = 12.0,
) -> None:
    """Run every stage in one process on the memory:// runtime with a simulated storm."""
    settings = load_settings()
    configure_logging(settings.log_level, "console")
    scenario = RainbandScenario(hours=hours)
    console.print(
        f"[bold]earlywarn[/] memory:// pipeline, scenario rainband seed={scenario.seed}, "
        f"speed={'max' if speed <= 0 else f'{speed:g}x'}"
    )

    async def main() -> IngestCounts:
        pipeline = MemoryPipeline(
            rules_processors(Metrics(), settings.rules.allowed_lateness_s, gauges_by_township(scenario))
        )
        await pipeline.start(lambda m: console.print(format_warning(m)))
        counts = IngestCounts()
        clock = VirtualClock(scenario.start, _speed(speed))
        await replay_ticks(pipeline.bus, observations(scenario), static_lookup(stations(scenario)), clock, counts)
        await pipeline.drain()
        await pipeline.close()
        return counts

    counts = asyncio.run(main())
    console.print(f"observations received={counts.received} accepted={counts.accepted} rejected={counts.rejected}")


@app.command()
def ingest(
    broker: BrokerOpt = "kafka://127.0.0.1:19092",
    namespace: NamespaceOpt = "",
    speed: SpeedOpt = 0.0,
    partitions: PartitionsOpt = 4,
    hours: Annotated[float, typer.Option(help="scenario length in hours")] = 12.0,
) -> None:
    """Replay the simulated feed through the ingest gate onto Kafka."""
    settings = load_settings(broker=broker)
    configure_logging(settings.log_level, settings.log_format)
    scenario = RainbandScenario(hours=hours)

    async def main() -> IngestCounts:
        bus = KafkaBus(settings.kafka_bootstrap, namespace=namespace)
        await bus.start()
        try:
            from schemas import topics

            await bus.ensure_topics(topics.ALL_TOPICS, partitions)
            counts = IngestCounts()
            clock = VirtualClock(scenario.start, _speed(speed))
            await replay_ticks(bus, observations(scenario), static_lookup(stations(scenario)), clock, counts)
            return counts
        finally:
            await bus.stop()

    counts = asyncio.run(main())
    console.print(f"ingest: received={counts.received} accepted={counts.accepted} rejected={counts.rejected}")


@app.command()
def rules(
    broker: BrokerOpt = "kafka://127.0.0.1:19092",
    namespace: NamespaceOpt = "",
    partitions: PartitionsOpt = 4,
    engine: Annotated[str, typer.Option(help="native (aiokafka + changelog) or faust")] = "native",
    data_dir: Annotated[Path, typer.Option(help="faust worker data directory")] = Path(".earlywarn/rules"),
    allowed_lateness_s: Annotated[int, typer.Option(help="event-time lateness bound")] = 600,
    metrics_port: MetricsPortOpt = 0,
) -> None:
    """Run the rules processors as a Kafka worker (scale out: start more with the same namespace)."""
    settings = load_settings(broker=broker)
    configure_logging(settings.log_level, settings.log_format)
    metrics = Metrics()
    processors = rules_processors(metrics, allowed_lateness_s, gauges_by_township(RainbandScenario()))
    if engine == "native":
        from services.common.bus.kafka_processor import run_processors

        async def worker(stop: asyncio.Event) -> None:
            await asyncio.gather(
                run_processors(settings.kafka_bootstrap, processors, partitions, namespace, stop),
                serve_ops(metrics, lambda: not stop.is_set(), "rules", metrics_port, stop),
            )

        asyncio.run(_run_until_signalled(worker))
        return
    if engine != "faust":
        raise typer.BadParameter("engine must be 'native' or 'faust'")
    import faust

    from services.common.bus.faust_runtime import build_app

    needed = sorted({t for p in processors for t in (*p.topics, *p.outputs)})
    asyncio.run(KafkaBus(settings.kafka_bootstrap, namespace=namespace).ensure_topics(needed, partitions))
    faust_app = build_app(
        service="rules",
        bootstrap=settings.kafka_bootstrap,
        processors=processors,
        partitions=partitions,
        data_dir=data_dir,
        namespace=namespace,
    )
    faust_worker = faust.Worker(faust_app, loglevel=settings.log_level.upper(), quiet=True)
    sys.argv = sys.argv[:1]
    faust_worker.execute_from_commandline()


async def _run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)``; SIGTERM/SIGINT set ``stop`` for a clean flush-and-commit exit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)


@app.command()
def dispatch(
    broker: BrokerOpt = "kafka://127.0.0.1:19092",
    namespace: NamespaceOpt = "",
    seconds: Annotated[float, typer.Option(help="stop after this long (0 = run until interrupted)")] = 0.0,
) -> None:
    """Consume warnings and hand each new message to the log channel."""
    settings = load_settings(broker=broker)
    configure_logging(settings.log_level, settings.log_format)

    async def main() -> None:
        bus = KafkaBus(settings.kafka_bootstrap, namespace=namespace)
        await bus.start()
        stop = asyncio.Event()
        if seconds > 0:
            asyncio.get_running_loop().call_later(seconds, stop.set)
        try:
            await collect_warnings(
                bus, "dispatch-log", stop, lambda m: console.print(format_warning(m), soft_wrap=True)
            )
        finally:
            await bus.stop()

    asyncio.run(main())


if __name__ == "__main__":
    app()
