"""``earlywarn`` command line: run the whole pipeline, or one service per process."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from schemas.warning import WarningMessage
from services.common.bus.base import Emit
from services.common.bus.kafka import KafkaBus
from services.common.clock import VirtualClock
from services.common.geo.cli import registry_app
from services.common.geo.registry import default_registry
from services.common.logging import configure_logging
from services.common.metrics import Metrics
from services.common.ops import serve_ops
from services.common.settings import load_settings
from services.console.tail import tail_app
from services.console.testing import DEFAULT_PASSWORD, DEFAULT_USERS
from services.dispatch.log_channel import format_warning
from services.embedded import DispatchSummary, EmbeddedSession, console_attachment, dispatch_attachment
from services.ingest.feeds.registry_lookup import registry_lookup
from services.ingest.simulate.advisories import storm_advisories
from services.ingest.simulate.cli import scenario_app
from services.ingest.simulate.rainband import RainbandScenario, gauges_by_township
from services.ingest.simulate.scenario import Scenario, ScenarioError, find_scenario, load_scenario
from services.ingest.simulate.truth import GroundTruth
from services.pipeline import IngestCounts, collect_warnings
from services.replay import replay_ticks, world_batches
from services.rules.processors import rules_processors
from services.scenario_run import (
    Attachment,
    RuleSet,
    RunResult,
    ScenarioRun,
    TickProgress,
    load_rule_set,
    scenario_processors,
    ticks_in,
    trim,
)

app = typer.Typer(help="earlywarn: sensor feeds -> hazard rules -> warnings -> channels.", no_args_is_help=True)
console = Console(stderr=False)
app.add_typer(registry_app, name="registry")
app.add_typer(scenario_app, name="scenario")
app.add_typer(tail_app, name="tail")

SpeedOpt = Annotated[float, typer.Option(help="replay speed: N x real time; 0 = as fast as possible")]
BrokerOpt = Annotated[str, typer.Option(help="memory:// or kafka://host:port", envvar="EARLYWARN_BROKER")]
NamespaceOpt = Annotated[str, typer.Option(help="topic/group prefix (isolates pipelines on one broker)")]
PartitionsOpt = Annotated[int, typer.Option(help="partitions per topic")]
MetricsPortOpt = Annotated[int, typer.Option(help="serve /metrics and /healthz on 127.0.0.1:PORT (0 = off)")]


def _speed(value: float) -> float | None:
    return None if value <= 0 else value


ScenarioArg = Annotated[str, typer.Argument(help="scenario name, file stem or .toml path (earlywarn scenario list)")]
LogLevel = Literal["debug", "info", "warning", "error"]
LogLevelOpt = Annotated[LogLevel, typer.Option(help="service log level on the terminal")]
HoursOpt = Annotated[float | None, typer.Option(help="replay only the first H simulated hours")]


def _scenario_or_exit(name: str, hours: float | None) -> Scenario:
    try:
        return trim(load_scenario(find_scenario(name, None)), hours)
    except (ScenarioError, ValueError) as error:
        console.print(str(error), style="red", markup=False)
        raise typer.Exit(code=2) from None


def _replay(
    scenario: Scenario,
    speed: float | None,
    *,
    console_port: int = 0,
    with_dispatch: bool = False,
    show_warnings: bool = True,
    truth_json: Path | None = None,
    linger: bool = False,
    log_level: LogLevel = "warning",
) -> RunResult:
    """Replay ``scenario`` through the whole pipeline with a progress bar and per-feed counts."""
    settings = load_settings()
    configure_logging(log_level, "console")
    registry = default_registry()
    metrics = Metrics()
    rule_set = RuleSet.from_settings(settings.rules)
    dispatch_summary = DispatchSummary()
    pace = "as fast as possible (lockstep)" if speed is None else f"{speed:g}x real time"
    console.print(
        f"[bold]earlywarn[/] memory:// replay of [bold]{scenario.name}[/] "
        f"({scenario.start:%Y-%m-%d %H:%M}Z, {scenario.span_hours:g} h, seed {scenario.seed}) at {pace}"
    )
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[feeds]}"),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("replay", total=ticks_in(scenario), feeds="")

        def on_tick(p: TickProgress) -> None:
            kinds = " ".join(f"{k} {n:,}" for k, n in sorted(p.counts.accepted_by_kind.items()))
            behind = f" [yellow]behind {p.lag_s:.0f}s[/]" if p.lag_s > 1 else ""
            bar.update(
                task,
                completed=min(p.index, p.total),
                description=f"{p.at:%m-%d %H:%M}Z",
                feeds=f"{kinds} | rejected {p.counts.rejected:,} | warnings {p.warnings:,}{behind}",
            )

        def on_warning(msg: WarningMessage) -> None:
            if show_warnings:
                bar.console.print(format_warning(msg), soft_wrap=True)

        def on_console_replay(name: str, outcome: RunResult | BaseException) -> None:
            if isinstance(outcome, BaseException):
                bar.console.print(f"console replay of {name} failed: {outcome}", markup=False)
            else:
                _print_run_summary(outcome, None)

        async def main() -> RunResult:
            session = EmbeddedSession(
                registry,
                lambda: scenario_processors(registry, metrics, rule_set),
                on_warning=on_warning,
                on_replay=on_console_replay,
            )
            attachments: list[Attachment] = []
            if with_dispatch:
                attachments.append(dispatch_attachment(registry, dispatch_summary))
            if console_port:
                attachments.append(console_attachment(registry, port=console_port, start_replay=session.start_replay))
                bar.console.print(
                    f"console: http://127.0.0.1:{console_port}/  users {', '.join(DEFAULT_USERS)}; "
                    f"password {DEFAULT_PASSWORD!r}",
                    markup=False,
                )
            await session.start(attachments)
            try:
                result = await session.replay(scenario, speed, on_tick)
                if linger and console_port:
                    bar.stop()
                    _print_run_summary(result, dispatch_summary if with_dispatch else None)
                    console.print("replay finished; the console keeps serving (start more replays there); Ctrl-C stops")
                    stop = asyncio.Event()
                    loop = asyncio.get_running_loop()
                    for sig in (signal.SIGTERM, signal.SIGINT):
                        loop.add_signal_handler(sig, stop.set)
                    await stop.wait()
                return result
            finally:
                await session.close()

        result = asyncio.run(main())
    if not (linger and console_port):
        _print_run_summary(result, dispatch_summary if with_dispatch else None)
    if truth_json is not None:
        result.truth.to_json(truth_json)
        console.print(f"ground truth written to {truth_json}")
    return result


def _print_run_summary(result: RunResult, dispatch_summary: DispatchSummary | None) -> None:
    counts = result.counts
    table = Table(title=f"{result.scenario.name}: {result.ticks} ticks in {result.wall_s:.1f} s wall", show_header=True)
    table.add_column("feed")
    table.add_column("accepted", justify="right")
    for kind, n in sorted(counts.accepted_by_kind.items()):
        table.add_row(kind, f"{n:,}")
    table.add_row("[bold]all[/]", f"{counts.accepted:,}")
    console.print(table)
    reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(counts.by_reason.items())) or "none"
    console.print(
        f"received {counts.received:,} = accepted {counts.accepted:,} + rejected {counts.rejected:,} ({reasons})",
        markup=False,
    )
    by_hazard = Counter(m.hazard for m in result.messages if m.msg_type == "Alert")
    console.print(
        f"warning messages {len(result.messages):,}; new warnings by hazard: "
        + (", ".join(f"{h} {n}" for h, n in sorted(by_hazard.items())) or "none"),
        markup=False,
    )
    speedup = result.simulated_s / result.wall_s if result.wall_s else float("inf")
    p50, p99 = result.latency_percentile(0.5), result.latency_percentile(0.99)
    latency = "n/a" if p50 is None or p99 is None else f"p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    console.print(f"speed {speedup:,.0f}x real time; observation->warning latency {latency}", markup=False)
    if dispatch_summary is not None and dispatch_summary.stats:
        shown = ("warnings_admitted", "handoffs", "send_batches", "receipts_published", "callbacks_applied")
        console.print(
            "dispatch: " + ", ".join(f"{k} {dispatch_summary.stats.get(k, 0):,}" for k in shown), markup=False
        )


@app.command()
def run(
    scenario: Annotated[str, typer.Option(help="scenario to replay (earlywarn scenario list)")] = "lekima-2019",
    speed: SpeedOpt = 600.0,
    hours: HoursOpt = None,
    console_port: Annotated[int, typer.Option(help="serve the console on 127.0.0.1:PORT (0 = off)")] = 8780,
    dispatch: Annotated[bool, typer.Option(help="dispatch through the local gateway simulators")] = True,
    linger: Annotated[bool, typer.Option(help="keep the console up after the replay until Ctrl-C")] = True,
    log_level: LogLevelOpt = "warning",
) -> None:
    """The whole pipeline in one process on memory://: a simulated typhoon, rules, dispatch, console."""
    _replay(
        _scenario_or_exit(scenario, hours),
        _speed(speed),
        console_port=console_port,
        with_dispatch=dispatch,
        linger=linger,
        log_level=log_level,
    )


@app.command()
def replay(
    name: ScenarioArg,
    speed: SpeedOpt = 0.0,
    hours: HoursOpt = None,
    console_port: Annotated[int, typer.Option(help="serve the console on 127.0.0.1:PORT (0 = off)")] = 0,
    dispatch: Annotated[bool, typer.Option(help="dispatch through the local gateway simulators")] = False,
    quiet: Annotated[bool, typer.Option(help="do not print each warning")] = False,
    truth_json: Annotated[Path | None, typer.Option("--truth-json", help="write the ground truth here")] = None,
    log_level: LogLevelOpt = "warning",
) -> None:
    """Replay a scenario through ingest, rules and (optionally) dispatch and the console."""
    _replay(
        _scenario_or_exit(name, hours),
        _speed(speed),
        console_port=console_port,
        with_dispatch=dispatch,
        show_warnings=not quiet,
        truth_json=truth_json,
        log_level=log_level,
    )


@app.command()
def verify(
    name: ScenarioArg,
    hours: HoursOpt = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="write the scorecard(s) as JSON")] = None,
    markdown_path: Annotated[Path | None, typer.Option("--markdown", help="write the scorecard(s) as Markdown")] = None,
    candidate: Annotated[
        list[Path] | None, typer.Option(help="a candidate rule set (TOML) to run in shadow; repeatable")
    ] = None,
    strict: Annotated[bool, typer.Option(help="exit 1 when a skill target is missed")] = False,
) -> None:
    """Replay a scenario as fast as the virtual clock allows and score the warnings against its truth."""
    from services.skill import check_targets, checks_markdown, comparison_markdown, scorecard_for, write_reports

    scenario = _scenario_or_exit(name, hours)
    settings = load_settings()
    configure_logging("warning", "console")
    registry = default_registry()
    try:
        candidates = [load_rule_set(path) for path in candidate or []]
    except ValueError as error:
        console.print(str(error), style="red", markup=False)
        raise typer.Exit(code=2) from None
    active = RuleSet.from_settings(settings.rules)
    shadow = {rs.name: scenario_processors(registry, Metrics(), rs) for rs in candidates}
    if active.name in shadow or len(shadow) != len(candidates):
        console.print("candidate rule sets need distinct names other than 'active'", style="red")
        raise typer.Exit(code=2)
    run = ScenarioRun(scenario, registry, scenario_processors(registry, Metrics(), active), shadow=shadow)
    with console.status(f"replaying {scenario.name} ({scenario.span_hours:g} h) in lockstep…"):
        result = asyncio.run(run.run())
    cards = [scorecard_for(result)]
    cards += [scorecard_for(result, msgs, rule_set=rs) for rs, msgs in result.shadow_messages.items()]
    checks = check_targets(cards[0], result.messages, len(result.truth.scoring_episodes()))
    console.print(
        f"{scenario.name}: {result.simulated_s / 3600:g} h replayed in {result.wall_s:.1f} s; "
        f"{result.counts.accepted:,} observations accepted, {result.counts.rejected:,} rejected; "
        f"{len(result.truth.scoring_episodes())} truth events; {len(result.messages)} warning messages",
        markup=False,
    )
    for card in cards:
        console.print(Markdown(card.to_markdown()))
    console.print(Markdown("### Targets\n\n" + checks_markdown(checks)))
    for card in cards[1:]:
        console.print(Markdown(comparison_markdown(cards[0], card)))
    write_reports(result, cards, checks, json_path, markdown_path)
    for path in (json_path, markdown_path):
        if path is not None:
            console.print(f"written: {path}")
    if strict and not all(c.ok for c in checks):
        raise typer.Exit(code=1)


@app.command()
def ingest(
    scenario: Annotated[str, typer.Option(help="scenario whose world is replayed (earlywarn scenario list)")] = (
        "lekima-2019"
    ),
    broker: BrokerOpt = "kafka://127.0.0.1:19092",
    namespace: NamespaceOpt = "",
    speed: SpeedOpt = 0.0,
    partitions: PartitionsOpt = 4,
    hours: HoursOpt = None,
) -> None:
    """Replay a scenario's simulated sensor network through the ingest gate onto Kafka."""
    sc = _scenario_or_exit(scenario, hours)
    settings = load_settings(broker=broker)
    configure_logging(settings.log_level, settings.log_format)
    registry = default_registry()

    async def main() -> IngestCounts:
        from schemas import topics

        bus = KafkaBus(settings.kafka_bootstrap, namespace=namespace)
        await bus.start()
        try:
            await bus.ensure_topics(topics.ALL_TOPICS, partitions)
            await bus.publish_many(
                [Emit(topics.ADVISORIES, a.storm_id, a.model_dump_json().encode()) for a in storm_advisories(sc)]
            )
            counts = IngestCounts()
            clock = VirtualClock(sc.start, _speed(speed))
            ticks = world_batches(sc, registry, GroundTruth())
            await replay_ticks(bus, ticks, registry_lookup(registry), clock, counts, source="simulator")
            return counts
        finally:
            await bus.stop()

    counts = asyncio.run(main())
    reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(counts.by_reason.items())) or "none"
    console.print(
        f"ingest {sc.name}: received={counts.received} accepted={counts.accepted} rejected={counts.rejected} "
        f"({reasons})",
        markup=False,
    )


@app.command("ingest-api")
def ingest_api(
    keys: Annotated[Path, typer.Option(help="integrator keys file (TOML; see docs/integrators.md)")],
    broker: BrokerOpt = "kafka://127.0.0.1:19092",
    namespace: NamespaceOpt = "",
    partitions: PartitionsOpt = 4,
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="listen port")] = 8700,
) -> None:
    """Serve the integrators' HTTP push API (OpenAPI at /docs) onto Kafka."""
    import uvicorn

    from schemas import topics
    from services.common.clock import SystemClock
    from services.ingest.api import create_app as create_ingest_app
    from services.ingest.gate import IngestGate
    from services.ingest.keys import KeyFileError, KeyStore

    settings = load_settings(broker=broker)
    configure_logging(settings.log_level, settings.log_format)
    try:
        store = KeyStore.from_file(keys)
    except (KeyFileError, OSError) as error:
        console.print(f"{keys}: {error}", style="red", markup=False)
        raise typer.Exit(code=2) from None
    registry = default_registry()

    async def main() -> None:
        bus = KafkaBus(settings.kafka_bootstrap, namespace=namespace)
        await bus.start()
        try:
            await bus.ensure_topics(topics.ALL_TOPICS, partitions)
            gate = IngestGate(registry_lookup(registry), SystemClock().now)
            api = create_ingest_app(bus, gate, store, Metrics())
            server = uvicorn.Server(uvicorn.Config(api, host=host, port=port, log_level="warning"))
            console.print(f"ingest API on http://{host}:{port}/ (OpenAPI: /docs)")
            await server.serve()
        finally:
            await bus.stop()

    asyncio.run(main())


@app.command()
def rules(
    broker: BrokerOpt = "kafka://127.0.0.1:19092",
    namespace: NamespaceOpt = "",
    partitions: PartitionsOpt = 4,
    engine: Annotated[str, typer.Option(help="native (aiokafka + changelog) or faust")] = "native",
    data_dir: Annotated[Path, typer.Option(help="faust worker data directory")] = Path(".earlywarn/rules"),
    allowed_lateness_s: Annotated[
        int | None, typer.Option(help="event-time lateness bound (default: the settings' rules.allowed_lateness_s)")
    ] = None,
    metrics_port: MetricsPortOpt = 0,
    network: Annotated[
        str, typer.Option(help="station network: 'registry' (Wenzhou) or 'rainband' (the test storm's gauges)")
    ] = "registry",
    rule_set_file: Annotated[
        Path | None,
        typer.Option("--rule-set", help="rule-set TOML (as `verify --candidate`) instead of the settings' rules"),
    ] = None,
) -> None:
    """Run the rules processors as a Kafka worker (scale out: start more with the same namespace)."""
    settings = load_settings(broker=broker)
    configure_logging(settings.log_level, settings.log_format)
    metrics = Metrics()
    try:
        rule_set = RuleSet.from_settings(settings.rules) if rule_set_file is None else load_rule_set(rule_set_file)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--rule-set") from None
    if allowed_lateness_s is not None:
        rule_set = rule_set.model_copy(update={"allowed_lateness_s": allowed_lateness_s})
    if network == "registry":
        processors = scenario_processors(default_registry(), metrics, rule_set)
    elif network == "rainband":
        processors = rules_processors(metrics, rule_set.allowed_lateness_s, gauges_by_township(RainbandScenario()))
    else:
        raise typer.BadParameter("network must be 'registry' or 'rainband'")
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
