#!/usr/bin/env bash
# Local single-node Apache Kafka 3.9.1 (KRaft: combined broker + controller) on loopback,
# from Maven Central jars — no Docker needed.
#
#   deploy/kafka/kafka.sh fetch       resolve the jars once into the cache
#   deploy/kafka/kafka.sh start       start (idempotent) and wait until the broker answers
#   deploy/kafka/kafka.sh status      exit 0 if up, 3 if down
#   deploy/kafka/kafka.sh stop        stop exactly the process we started (pid file)
#   deploy/kafka/kafka.sh reset       stop and delete the data
#   deploy/kafka/kafka.sh bootstrap   print host:port
#
# Environment:
#   EARLYWARN_KAFKA_CACHE            jar cache (default ~/.cache/earlywarn/kafka-3.9.1), outside the clone
#   EARLYWARN_KAFKA_DIR              runtime dir: config, data, logs, pid (default <repo>/.kafka)
#   EARLYWARN_KAFKA_PORT             broker port (default 19092)
#   EARLYWARN_KAFKA_CONTROLLER_PORT  controller port (default 19093)
#   EARLYWARN_KAFKA_START_TIMEOUT    seconds to wait for readiness (default 90)
#   EARLYWARN_KAFKA_HEAP             JVM heap (default 768m)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="${EARLYWARN_KAFKA_CACHE:-$HOME/.cache/earlywarn/kafka-3.9.1}"
LIB="$CACHE/lib"
RUN="${EARLYWARN_KAFKA_DIR:-$REPO/.kafka}"
PORT="${EARLYWARN_KAFKA_PORT:-19092}"
CPORT="${EARLYWARN_KAFKA_CONTROLLER_PORT:-19093}"
TIMEOUT="${EARLYWARN_KAFKA_START_TIMEOUT:-90}"
HEAP="${EARLYWARN_KAFKA_HEAP:-768m}"
PIDFILE="$RUN/kafka.pid"

answers() {
  # The broker answers the Kafka protocol (an ApiVersions round trip), not just an open port.
  # Uses the broker's own jars, so it needs nothing but Java.
  timeout 20 java -Dlog4j.configuration="file:$RUN/log4j-tools.properties" -cp "$LIB/*" \
    kafka.admin.BrokerApiVersionsCommand --bootstrap-server "127.0.0.1:$PORT" >/dev/null 2>&1
}

fetch() {
  if [ -f "$LIB/.complete" ]; then return 0; fi
  command -v mvn >/dev/null || { echo "kafka: mvn not found (apt-get install maven)" >&2; exit 1; }
  echo "kafka: resolving jars into $LIB (once)"
  mkdir -p "$LIB"
  mvn -q -B -f "$HERE/pom.xml" dependency:copy-dependencies -Dkafka.lib.dir="$LIB"
  ls "$LIB"/kafka_2.13-*.jar >/dev/null
  touch "$LIB/.complete"
}

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid
  pid="$(cat "$PIDFILE")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  # make sure the pid is still our broker, not a recycled pid
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $RUN/server.properties" || return 1
  echo "$pid"
}

write_config() {
  mkdir -p "$RUN/data"
  cat >"$RUN/server.properties" <<PROPS
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
  cat >"$RUN/log4j.properties" <<PROPS
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$RUN/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
PROPS
  printf 'log4j.rootLogger=ERROR, stderr\nlog4j.appender.stderr=org.apache.log4j.ConsoleAppender\nlog4j.appender.stderr.Target=System.err\nlog4j.appender.stderr.layout=org.apache.log4j.PatternLayout\n' >"$RUN/log4j-tools.properties"
}

start() {
  local pid
  if pid="$(running_pid)"; then
    echo "kafka: already running at 127.0.0.1:$PORT (pid $pid)"
    return 0
  fi
  command -v java >/dev/null || { echo "kafka: java not found (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
  fetch
  write_config
  if [ ! -f "$RUN/cluster.id" ]; then
    java -cp "$LIB/*" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 >"$RUN/cluster.id"
  fi
  java -Dlog4j.configuration="file:$RUN/log4j.properties" -cp "$LIB/*" kafka.tools.StorageTool format \
    -t "$(cat "$RUN/cluster.id")" -c "$RUN/server.properties" --ignore-formatted >"$RUN/format.out" 2>&1
  nohup java -Xms256m -Xmx"$HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$RUN/log4j.properties" -cp "$LIB/*" \
    kafka.Kafka "$RUN/server.properties" >"$RUN/kafka.out" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  local waited=0
  while ! answers; do
    if ! kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "kafka: broker exited during start-up; last log lines:" >&2
      tail -n 30 "$RUN/server.log" "$RUN/kafka.out" >&2 || true
      rm -f "$PIDFILE"
      exit 1
    fi
    if [ "$waited" -ge "$TIMEOUT" ]; then
      echo "kafka: not answering after ${TIMEOUT}s; last log lines:" >&2
      tail -n 30 "$RUN/server.log" >&2 || true
      stop
      exit 1
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "kafka: up at 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), ${waited}s)"
}

status() {
  local pid
  if pid="$(running_pid)" && answers; then
    echo "kafka: up at 127.0.0.1:$PORT (pid $pid)"
    return 0
  fi
  echo "kafka: down"
  return 3
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PIDFILE"
    echo "kafka: not running"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 1 30); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "kafka: still running after 30s, sending SIGKILL" >&2
    kill -KILL "$pid" || true
  fi
  rm -f "$PIDFILE"
  echo "kafka: stopped (pid $pid)"
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  status) status ;;
  stop) stop ;;
  reset) stop; rm -rf "$RUN" ; echo "kafka: data removed ($RUN)" ;;
  bootstrap) echo "127.0.0.1:$PORT" ;;
  *) echo "usage: $0 {fetch|start|status|stop|reset|bootstrap}" >&2; exit 2 ;;
esac
