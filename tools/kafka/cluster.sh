# shellcheck shell=bash
# A Kafka cluster of several KRaft nodes on one machine, for tests of what one broker
# cannot show: a partition leader dying with records in flight, a rolling restart, an ISR
# below min.insync.replicas. Sourced by tools/services for `--brokers N` (N >= 3) and for
# the *-broker commands; it uses that script's helpers (say, die, need, alive, pid_of,
# stop_pid, port_open, fetch_jars) and LIBS.
#
# Every node is a combined controller and broker (one JVM each), and the three first are
# the controller quorum, so the cluster keeps working with any one node down and stops
# electing leaders with two down, as a three-node production cluster does. Node i listens
# on 127.0.0.1, PLAINTEXT on KAFKA_CLUSTER_PORT + 2(i-1) and its controller on the port
# after it (19192..19197 by default), and keeps its state under .services/cluster/node<i>/.
# No SASL_SSL listener: the secured setup is the single broker's (see tools/services).
# Topics get replication factor 3 and min.insync.replicas=2, so a write acknowledged with
# acks=all is on two nodes at least and any single node may die without losing it.
#
# The single broker (.services/kafka/, KAFKA_PORT) and the cluster are separate: their
# own ports, data and lock, and no command of one stops, starts or deletes the other.

KAFKA_CLUSTER_PORT=${KAFKA_CLUSTER_PORT:-19192}
CDIR=$ROOT/.services/cluster
# Another fixed id than the single broker's, so a client pointed at the wrong one is told
# the cluster id does not match instead of mixing the two.
CLUSTER_CLUSTER_ID=V0m0RCEbQWG5PqkMJIwzYg
CLUSTER_RF=3
CLUSTER_MIN_ISR=2
# Small heaps: three JVMs share a developer machine with the pipeline they serve.
CLUSTER_HEAP=${KAFKA_CLUSTER_HEAP:-384m}

node_port() { echo $((KAFKA_CLUSTER_PORT + 2 * ($1 - 1))); }
node_controller_port() { echo $((KAFKA_CLUSTER_PORT + 2 * ($1 - 1) + 1)); }
node_dir() { echo "$CDIR/node$1"; }
node_pid() { pid_of "$(node_dir "$1")/kafka.pid" "kafka.Kafka $(node_dir "$1")/"; }

cluster_bootstrap() {
  local i out=()
  for ((i = 1; i <= BROKERS; i++)); do out+=("127.0.0.1:$(node_port "$i")"); done
  local IFS=,
  echo "${out[*]}"
}

# The cluster's metadata as kcat prints it, asked of any node that answers; empty when
# none does. kcat waits out its timeout on a closed port, so open ports are tried only.
cluster_metadata() {
  local i
  for ((i = 1; i <= BROKERS; i++)); do
    port_open "$(node_port "$i")" || continue
    kcat -b "127.0.0.1:$(node_port "$i")" -L -m 3 2>/dev/null && return 0
  done
  return 1
}

# Node i answers on its port and the cluster lists it as a live broker (registered with
# the controller and not fenced), so clients are sent to it.
node_serving() {
  local port
  port=$(node_port "$1")
  port_open "$port" &&
    kcat -b "127.0.0.1:$port" -L -m 3 2>/dev/null | grep -q "^  broker $1 at "
}

# The size a data folder was formatted for: its quorum is fixed then, so a cluster of
# another size needs `clean --brokers N` first.
check_size() {
  local had
  had=$(cat "$CDIR/brokers" 2>/dev/null) || return 0
  [[ $had == "$BROKERS" ]] ||
    die "the cluster in $CDIR/ was made with $had brokers, not $BROKERS; use --brokers $had," \
      "or 'tools/services clean --brokers $had' to delete it and start over"
}

write_node_config() {
  local i=$1 d voters="" v
  d=$(node_dir "$i")
  mkdir -p "$d/data" "$d/logs"
  for ((v = 1; v <= BROKERS && v <= 3; v++)); do
    voters+="${voters:+,}$v@127.0.0.1:$(node_controller_port "$v")"
  done
  # The first three nodes are the quorum; a fourth and later are brokers only.
  local roles=broker,controller listeners
  listeners="PLAINTEXT://127.0.0.1:$(node_port "$i")"
  if ((i <= 3)); then
    listeners+=",CONTROLLER://127.0.0.1:$(node_controller_port "$i")"
  else
    roles=broker
  fi
  # Written on every start so port overrides take effect; the data folder keeps the
  # cluster id and the node id, so rewriting this loses nothing.
  cat >"$d/server.properties" <<EOF
process.roles=$roles
node.id=$i
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=PLAINTEXT://127.0.0.1:$(node_port "$i")
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$d/data
# Every topic, the internal ones too, on three nodes, and a write acknowledged with
# acks=all on two of them at least: one node may die without losing anything, two
# make writes stop (NOT_ENOUGH_REPLICAS) rather than accept what a third death would lose.
default.replication.factor=$CLUSTER_RF
min.insync.replicas=$CLUSTER_MIN_ISR
offsets.topic.replication.factor=$CLUSTER_RF
transaction.state.log.replication.factor=$CLUSTER_RF
transaction.state.log.min.isr=$CLUSTER_MIN_ISR
# A replica that was not in the ISR never becomes leader: it could lack acknowledged writes.
unclean.leader.election.enable=false
offsets.topic.num.partitions=10
transaction.state.log.num.partitions=10
num.partitions=$TOPIC_PARTITIONS
auto.create.topics.enable=true
group.initial.rebalance.delay.ms=0
# After a node comes back its partitions keep the leaders they failed over to until the
# controller moves leadership back to the preferred replicas: every 30 s here, not 5 min,
# so a rolling restart ends balanced soon (and clients see those leader moves too).
leader.imbalance.check.interval.seconds=30
# A node killed with -9 is fenced (its partitions get new leaders and it leaves the ISRs)
# when the controller misses its heartbeats for this long; 9 s by default.
broker.session.timeout.ms=6000
# Two cores for three nodes and the pipeline: few threads each.
num.network.threads=2
num.io.threads=2
num.replica.fetchers=1
background.threads=2
log.cleaner.threads=1
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=67108864
EOF
  cat >"$d/log4j.properties" <<EOF
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File=$d/logs/server.log
log4j.appender.file.MaxFileSize=20MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
EOF
}

# Starts node i unless it runs; does not wait for it (see wait_nodes).
launch_node() {
  local i=$1 d
  d=$(node_dir "$i")
  node_pid "$i" >/dev/null && return 0
  write_node_config "$i"
  if [[ ! -f $d/data/meta.properties ]]; then
    java -Xmx256m -XX:TieredStopAtLevel=1 -cp "$LIBS/*" \
      -Dlog4j.configuration="file:$d/log4j.properties" \
      kafka.tools.StorageTool format -t "$CLUSTER_CLUSTER_ID" -c "$d/server.properties" \
      >"$d/logs/format.log" 2>&1 || die "formatting node $i failed; see $d/logs/format.log"
  fi
  rm -f "$d/kafka.pid"
  # Detached from the caller's session, as the single broker is (see start_kafka).
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$d/kafka.pid" \
    java -Xms128m -Xmx"$CLUSTER_HEAP" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -XX:ParallelGCThreads=1 -XX:ConcGCThreads=1 -XX:CICompilerCount=2 \
    -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true \
    -Dlog4j.configuration="file:$d/log4j.properties" \
    -cp "$LIBS/*" kafka.Kafka "$d/server.properties" \
    </dev/null >"$d/logs/stdout.log" 2>&1 9>&- &
  local n
  for ((n = 0; n < 100; n++)); do [[ -s $d/kafka.pid ]] && break; sleep 0.05; done
  say "kafka node $i: starting on 127.0.0.1:$(node_port "$i") (logs in $d/logs/)"
}

# Waits until every node named serves; a node that exits meanwhile stops the wait with
# its last errors.
wait_nodes() {
  local deadline=$((SECONDS + KAFKA_TIMEOUT)) i left
  while :; do
    left=()
    for i in "$@"; do
      node_serving "$i" && continue
      if ! node_pid "$i" >/dev/null; then
        local d
        d=$(node_dir "$i")
        { grep -E '^\[.*\] (ERROR|FATAL)' "$d/logs/server.log" | tail -n 5
          tail -n 10 "$d/logs/stdout.log"; } >&2 || true
        die "kafka node $i exited during startup; read $d/logs/server.log"
      fi
      left+=("$i")
    done
    ((${#left[@]})) || return 0
    ((SECONDS < deadline)) ||
      die "kafka node(s) ${left[*]} not serving within ${KAFKA_TIMEOUT}s (still running;" \
        "'tools/services down --brokers $BROKERS' stops them); read $CDIR/node${left[0]}/logs/server.log"
    sleep 0.5
  done
}

cluster_create_topic() { # NAME [key=value ...]
  local t=$1 configs=(--config "min.insync.replicas=$CLUSTER_MIN_ISR") c
  shift
  for c in "$@"; do configs+=(--config "$c"); done
  java -Xmx256m -XX:TieredStopAtLevel=1 -cp "$LIBS/*" \
    -Dlog4j.configuration="file:$CDIR/node1/log4j.properties" \
    org.apache.kafka.tools.TopicCommand --bootstrap-server "$(cluster_bootstrap)" \
    --create --if-not-exists --topic "$t" "${configs[@]}" \
    --partitions "$TOPIC_PARTITIONS" --replication-factor "$CLUSTER_RF" >/dev/null ||
    die "could not create topic $t on the cluster; read $CDIR/node1/logs/server.log"
  say "kafka cluster: created topic $t ($TOPIC_PARTITIONS partitions, replication factor" \
    "$CLUSTER_RF, min.insync.replicas=$CLUSTER_MIN_ISR${*:+, $*})"
}

cluster_create_topics() {
  local have t
  have=$(cluster_metadata | sed -n 's/^ *topic "\([^"]*\)".*/\1/p')
  for t in "${TOPICS[@]}"; do
    # shellcheck disable=SC2086 # split on purpose: the topic's "key=value key=value"
    grep -qx "$t" <<<"$have" || cluster_create_topic "$t" ${TOPIC_CONFIG[$t]:-}
  done
}

cluster_up() {
  need java default-jre-headless
  check_size
  fetch_jars
  mkdir -p "$CDIR"
  echo "$BROKERS" >"$CDIR/brokers"
  local i all=()
  # All at once: the controllers elect a leader only when a majority of them runs.
  for ((i = 1; i <= BROKERS; i++)); do launch_node "$i"; all+=("$i"); done
  wait_nodes "${all[@]}"
  cluster_create_topics
  say "kafka cluster: $BROKERS nodes up, bootstrap $(cluster_bootstrap)"
}

# Stops the nodes named, all at once: one by one, the last of a quorum would wait for a
# controller to approve its shutdown that is no longer there.
stop_nodes() { # how(TERM|KILL) node...
  local how=$1 i pid pids=() n
  shift
  for i in "$@"; do
    pid=$(node_pid "$i") || { rm -f "$(node_dir "$i")/kafka.pid"; continue; }
    say "kafka node $i: $([[ $how == KILL ]] && echo "killing (-9)" || echo stopping) (pid $pid)"
    kill -"$how" "$pid" 2>/dev/null || true
    pids+=("$i:$pid")
  done
  for n in "${pids[@]}"; do
    i=${n%%:*} pid=${n##*:}
    if [[ $how == KILL ]]; then
      while alive "$pid"; do sleep 0.05; done
    else
      stop_pid "kafka node $i" "$pid" # waits; SIGKILL after 30 s
    fi
    rm -f "$(node_dir "$i")/kafka.pid"
  done
}

cluster_down() {
  local i all=()
  for ((i = 1; i <= BROKERS; i++)); do all+=("$i"); done
  stop_nodes TERM "${all[@]}"
}

# One line per node, then the partitions: leaders per node, and those whose ISR is short
# of their replicas (under-replicated) or below min.insync.replicas (refusing writes).
# Exit 0 only when every node serves.
cluster_status() {
  local i rc=0 pid meta
  for ((i = 1; i <= BROKERS; i++)); do
    if node_serving "$i"; then
      pid=$(node_pid "$i") || pid="not ours"
      say "kafka node $i: up on 127.0.0.1:$(node_port "$i") (pid $pid)"
    elif pid=$(node_pid "$i"); then
      say "kafka node $i: running (pid $pid) but not serving on 127.0.0.1:$(node_port "$i")"
      rc=1
    else
      say "kafka node $i: down"
      rc=1
    fi
  done
  if meta=$(cluster_metadata); then
    awk -v minisr="$CLUSTER_MIN_ISR" '
      /^ +partition / {
        n++; leader = $4; sub(",", "", leader); lead[leader]++
        reps = $6; isrs = $8; sub(",", "", reps)
        nr = split(reps, a, ","); ni = split(isrs, b, ",")
        if (ni < nr) under++
        if (ni < minisr || leader == "-1") short++
      }
      END {
        s = ""; for (l = -1; l <= 9; l++) if (l in lead) s = s sprintf(" node %s: %d", l, lead[l])
        printf "services: kafka cluster: %d partitions, leaders by node:%s; %d under-replicated, %d below min.insync.replicas or leaderless\n", n, s, under + 0, short + 0
      }' <<<"$meta"
    say "kafka cluster: bootstrap $(cluster_bootstrap)"
  else
    say "kafka cluster: no node answers"
  fi
  return $rc
}

node_args() { # the N... of kill-broker N... etc., checked
  local n
  [[ -f $CDIR/brokers ]] ||
    die "no cluster in $CDIR/; start one with 'tools/services up --brokers 3'"
  (($#)) || die "usage: tools/services $CMD N... [--brokers $BROKERS], N from 1 to $BROKERS"
  for n in "$@"; do
    # shellcheck disable=SC2015 # die when either test fails
    [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= BROKERS)) ||
      die "usage: tools/services $CMD N... [--brokers $BROKERS], N from 1 to $BROKERS; got '$n'"
  done
}

start_brokers() {
  local i
  fetch_jars
  # Launched together, so two nodes that must both be back for a quorum are.
  for i in "$@"; do launch_node "$i"; done
  wait_nodes "$@"
  say "kafka node(s) $*: serving"
}

cluster_main() {
  need java default-jre-headless
  check_size
  case $CMD in
    up) cluster_up ;;
    down) cluster_down ;;
    status) cluster_status ;;
    clean) cluster_down; rm -rf "$CDIR"; say "kafka cluster: data removed" ;;
    kill-broker) node_args "${ARGS[@]}"; stop_nodes KILL "${ARGS[@]}" ;;
    stop-broker) node_args "${ARGS[@]}"; stop_nodes TERM "${ARGS[@]}" ;;
    start-broker) node_args "${ARGS[@]}"; start_brokers "${ARGS[@]}" ;;
    create-topic) [[ -n ${ARGS[0]:-} ]] ||
        die "usage: tools/services create-topic NAME [key=value ...] --brokers $BROKERS"
      fetch_jars; cluster_create_topic "${ARGS[@]}" ;;
    *) die "'$CMD' is not a cluster command; with --brokers N: up, down, status, clean," \
        "kill-broker N..., stop-broker N..., start-broker N..., create-topic NAME [key=value ...]" ;;
  esac
}
