#!/usr/bin/env bash
# Local single-node Apache Kafka 3.9.1 in KRaft mode (broker + controller in one JVM) on
# loopback, built from Maven Central jars and run with the machine's Java 17 — no Docker.
#
# Usage (from any directory):
#   deploy/kafka/kafka.sh fetch       resolve the broker jars once into the cache (needs mvn)
#   deploy/kafka/kafka.sh start       fetch if needed, write config, format storage, start in the
#                                     background and wait until the broker answers the Kafka
#                                     protocol; idempotent (exit 0 if our broker already runs)
#   deploy/kafka/kafka.sh status      exit 0 if up (pid alive and protocol answers), 3 if down
#   deploy/kafka/kafka.sh stop        SIGTERM exactly the pid in the pid file (SIGKILL after 30 s)
#   deploy/kafka/kafka.sh reset       stop, then delete the runtime dir's data, config and logs
#   deploy/kafka/kafka.sh bootstrap   print the bootstrap address (127.0.0.1:<port>)
#
#   KAFKA_BOOTSTRAP_SERVERS=$(deploy/kafka/kafka.sh bootstrap) make test
#
# Environment:
#   EARLYWARN_KAFKA_CACHE            jar cache, outside the clone (default ~/.cache/earlywarn/kafka-3.9.1);
#                                    jars go to <cache>/lib, Maven's own repo stays at ~/.m2
#   EARLYWARN_KAFKA_DIR              runtime dir: config, data, logs, pid (default <repo>/.kafka, git-ignored)
#   EARLYWARN_KAFKA_PORT             broker (PLAINTEXT) port (default 19092)
#   EARLYWARN_KAFKA_CONTROLLER_PORT  KRaft controller port (default 19093)
#   EARLYWARN_KAFKA_START_TIMEOUT    seconds to wait for readiness (default 90)
#   EARLYWARN_KAFKA_HEAP             max JVM heap (default 768m)
#
# Readiness = kafka.admin.BrokerApiVersionsCommand (shipped in the broker jar) gets a Metadata
# answer and the broker's ApiVersions from 127.0.0.1:<port>: a real protocol round trip, not just
# an open port, and it needs nothing but Java.
set -euo pipefail

KAFKA_VERSION=3.9.1
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${EARLYWARN_KAFKA_CACHE:-$HOME/.cache/earlywarn/kafka-$KAFKA_VERSION}"
LIB="$CACHE/lib"
MARKER="$LIB/.complete"          # written only after a successful copy; holds the pom's sha256
RUN="${EARLYWARN_KAFKA_DIR:-$REPO/.kafka}"
PORT="${EARLYWARN_KAFKA_PORT:-19092}"
CPORT="${EARLYWARN_KAFKA_CONTROLLER_PORT:-19093}"
TIMEOUT="${EARLYWARN_KAFKA_START_TIMEOUT:-90}"
HEAP="${EARLYWARN_KAFKA_HEAP:-768m}"
PIDFILE="$RUN/kafka.pid"
LOG="$RUN/server.log"
BOOTSTRAP="127.0.0.1:$PORT"

say() { echo "kafka: $*"; }
die() { echo "kafka: $*" >&2; exit 1; }
need() { command -v "$1" >/dev/null || die "$1 not found ($2)"; }

# --- jars -------------------------------------------------------------------------------

fetch() {
  local want
  want="$(sha256sum "$HERE/pom.xml" | cut -d' ' -f1)"
  if [ -f "$MARKER" ]; then
    # Never rewrite a complete lib dir in place: a running broker may be using it.
    [ "$(cat "$MARKER")" = "$want" ] || [ ! -s "$MARKER" ] ||
      say "note: pom.xml changed since $LIB was fetched; delete $CACHE to refetch" >&2
    return 0
  fi
  need mvn "apt-get install maven"
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.fetch.lock"
  flock 9                                   # two concurrent fetches: the second waits, then skips
  if [ -f "$MARKER" ]; then exec 9>&-; return 0; fi
  say "resolving Kafka $KAFKA_VERSION jars from Maven Central into $LIB (once)"
  local tmp="$CACHE/lib.partial"
  rm -rf "$tmp" "$LIB"                      # no marker: leftovers of an interrupted fetch
  # mvn's own output goes to a log (Maven 3.8 -q still prints stray ANSI resets), shown on failure
  mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies -Dkafka.lib.dir="$tmp" >"$CACHE/fetch.log" 2>&1 ||
    { tail -n 40 "$CACHE/fetch.log" >&2; die "mvn could not resolve the jars (network to Maven Central?)"; }
  [ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ] || die "kafka_2.13-$KAFKA_VERSION.jar missing after mvn"
  echo "$want" >"$tmp/.complete"
  mv -T "$tmp" "$LIB"
  exec 9>&-
  say "$(find "$LIB" -name '*.jar' | wc -l) jars cached in $LIB"
}

# --- process and protocol checks --------------------------------------------------------

# Prints the pid if the pid file names a live process that is our broker (java running
# kafka.Kafka with this runtime dir's server.properties), not a recycled pid.
running_pid() {
  local pid
  [ -f "$PIDFILE" ] || return 1
  pid="$(cat "$PIDFILE")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $RUN/server.properties" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A Kafka protocol round trip: Metadata, then ApiVersions from every broker it lists.
answers() {
  local out
  out="$(timeout 20 java -Dlog4j.configuration="file:$RUN/log4j-tools.properties" \
    -cp "$LIB/*" kafka.admin.BrokerApiVersionsCommand --bootstrap-server "$BOOTSTRAP" 2>/dev/null)" || return 1
  grep -q -- '-> (' <<<"$out"
}

# --- config -----------------------------------------------------------------------------

write_config() {
  mkdir -p "$RUN/data"
  cat >"$RUN/server.properties" <<PROPS
# Written by deploy/kafka/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$RUN/data
num.partitions=4
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
min.insync.replicas=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
delete.topic.enable=true
log.retention.hours=24
log.segment.bytes=67108864
num.network.threads=2
num.io.threads=4
PROPS
  # Broker log: INFO to $LOG (rolled), per-partition chatter at WARN.
  cat >"$RUN/log4j.properties" <<PROPS
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$LOG
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.authorizer.logger=WARN
log4j.logger.kafka.log=WARN
log4j.logger.kafka.cluster.Partition=WARN
log4j.logger.kafka.server.ReplicaFetcherManager=WARN
log4j.logger.kafka.server.ReplicaAlterLogDirsManager=WARN
log4j.logger.kafka.server.metadata.DynamicConfigPublisher=WARN
log4j.logger.kafka.coordinator.group.GroupMetadata\$=WARN
log4j.logger.org.apache.kafka.storage.internals.log=WARN
log4j.logger.org.apache.kafka.controller.ReplicationControlManager=WARN
log4j.logger.org.apache.kafka.controller.ConfigurationControlManager=WARN
PROPS
  # Command-line tools (format, readiness check): errors only, to stderr.
  cat >"$RUN/log4j-tools.properties" <<PROPS
log4j.rootLogger=ERROR, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=%p %m (%c)%n
PROPS
}

# The KRaft cluster id: 22 chars of base64url (16 bytes), generated once per runtime dir.
cluster_id() {
  local f="$RUN/cluster.id" id
  if [ ! -s "$f" ]; then
    java -Dlog4j.configuration="file:$RUN/log4j-tools.properties" -cp "$LIB/*" \
      kafka.tools.StorageTool random-uuid | tail -n 1 >"$f.tmp"
    mv "$f.tmp" "$f"
  fi
  id="$(cat "$f")"
  [[ "$id" =~ ^[A-Za-z0-9_-]{22}$ ]] || die "bad cluster id '$id' in $f (delete it, or run reset)"
  echo "$id"
}

# --- commands ---------------------------------------------------------------------------

# Waits until the broker with this pid answers, or it dies, or the timeout passes.
# $2 = "ours": we just launched it, so stop it on timeout; "found": leave it alone.
wait_ready() {
  local pid="$1" how="$2" began=$SECONDS deadline=$((SECONDS + TIMEOUT))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "kafka: broker exited during start-up; last log lines:" >&2
      tail -n 30 "$LOG" "$RUN/kafka.out" >&2 2>/dev/null || true
      rm -f "$PIDFILE"
      exit 1
    fi
    # cheap test first; the protocol check costs a JVM start
    if port_open "$PORT" && answers; then break; fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "kafka: not answering at $BOOTSTRAP after ${TIMEOUT}s; last log lines:" >&2
      tail -n 30 "$LOG" >&2 2>/dev/null || true
      if [ "$how" = ours ]; then stop >&2; fi
      exit 1
    fi
    sleep 0.5
  done
  READY_AFTER=$((SECONDS - began))
}

start() {
  local pid id p
  if pid="$(running_pid)"; then
    say "already running (pid $pid)"
    wait_ready "$pid" found                 # returns at once unless a start is still under way
    say "up at $BOOTSTRAP (pid $pid)"
    return 0
  fi
  need java "apt-get install openjdk-17-jre-headless"
  for p in "$PORT" "$CPORT"; do
    port_open "$p" && die "127.0.0.1:$p is already in use by a process this runtime dir ($RUN) did not start"
  done
  fetch
  write_config
  id="$(cluster_id)"
  java -Dlog4j.configuration="file:$RUN/log4j-tools.properties" -cp "$LIB/*" kafka.tools.StorageTool \
    format -t "$id" -c "$RUN/server.properties" --ignore-formatted >"$RUN/format.out" 2>&1 ||
    { cat "$RUN/format.out" >&2; die "storage format failed (reset wipes the data dir)"; }

  nohup java -Xms256m -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$RUN/log4j.properties" -cp "$LIB/*" \
    kafka.Kafka "$RUN/server.properties" >"$RUN/kafka.out" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"
  wait_ready "$pid" ours
  say "up at $BOOTSTRAP (pid $pid)"
  say "answered ${READY_AFTER}s after launch; log: $LOG"
}

status() {
  local pid
  if ! pid="$(running_pid)"; then
    say "down (no live broker from $RUN)"
    return 3
  fi
  if answers; then
    say "up at $BOOTSTRAP (pid $pid)"
    return 0
  fi
  say "pid $pid is alive but $BOOTSTRAP does not answer (starting, or stuck: see $LOG)"
  return 3
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"                       # stale or recycled pid: never kill it
    say "not running"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka: pid $pid still running after 30s, sending SIGKILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
    sleep 1
  fi
  rm -f "$PIDFILE"
  say "stopped (pid $pid)"
}

reset() {
  stop
  # Only what this script creates: EARLYWARN_KAFKA_DIR may point somewhere shared.
  rm -rf "$RUN/data"
  rm -f "$RUN"/{cluster.id,cluster.id.tmp,server.properties,log4j.properties,log4j-tools.properties} \
    "$RUN"/{format.out,kafka.out,kafka.pid} "$LOG" "$LOG".[0-9]*
  rmdir "$RUN" 2>/dev/null || true
  say "data removed ($RUN)"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  status) status ;;
  stop) stop ;;
  reset) reset ;;
  bootstrap) echo "$BOOTSTRAP" ;;
  *) echo "usage: $0 {fetch|start|status|stop|reset|bootstrap}" >&2; exit 2 ;;
esac
