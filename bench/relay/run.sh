#!/usr/bin/env bash
# Ferry's relay benchmark: ferry-relay beside HAProxy (mode tcp, option splice-auto) and socat.
#
#   ./run bench-relay [--rounds N] [--duration S] [--warmup S] [--idle N] [--concurrency N]
#                     [--slow N] [--hold S] [--only ferry,haproxy,socat] [--no-pin]
#
# Run it through ./run (which checks for Rust); it must run as root (a network namespace, sysctls
# inside it, apt-get). It installs haproxy, socat, iperf3 and gcc from Debian if missing, builds
# ferry-relay (release; FERRY_RELAY_BIN overrides it), compiles its two small C tools, starts
# every server in a network namespace of its own, checks that each proxy forwards bytes
# exactly, measures in alternated rounds, and prints a Markdown report, also written to
# .bench/relay-results.md. Every process it starts is stopped on exit, whatever the exit.
#
# What is measured (BENCHMARKS.md, "ferry-relay", has the long form), the same way for each proxy
# and, where it means something, for a direct connection without any proxy:
#   throughput   iperf3, 1 and 8 streams, each direction; Gbit/s, and the proxy's CPU s per GB
#   rate         short connections/s: connect, 16 bytes echoed, close (bench/relay/tcpload.c)
#   latency      64-byte round trips on one connection, and connect + round trip + close
#   idle         memory per idle connection, with 10,000 open (fewer if `ulimit -n` forbids)
#   slow         the one-byte slow-client attack: 5,000 clients each send "P" (the first byte of
#                a PROXY signature) and stop; the proxy's CPU and descriptors over a --hold
#                window (ferry-relay and HAProxy, with the same checks and limits)
# Upstreams: one iperf3 server, and an epoll echo server in C (bench/relay/echo.c) that costs
# far less per connection than any proxy. Each proxy gets one thread. On a machine with 2 or more
# cores the proxies run on one core (PROXY_CPU) and everything else, load and upstreams, on
# another (LOAD_CPU); the per-core load is recorded so a run whose limit was the load side shows.
set -eEuo pipefail
shopt -s nullglob

ROOT=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
HERE=$ROOT/bench/relay
WORK=$ROOT/.bench/relay
RESULTS=$ROOT/.bench/relay-results.md
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh" # say, parse_args, start, stop_pids, the clean-up, wait_quiet, proctree, ...

ROUNDS=3
DURATION=5
WARMUP=2
IDLE=10000
SLOW=5000
HOLD=10
CONCURRENCY=64
RTT_COUNT=20000
CONNRTT_COUNT=2000
CHECK_BYTES=$((64 << 20))
PIN=1
SYSTEMS=(ferry haproxy socat)
PROXY_CPU=1
LOAD_CPU=0
LOAD_SIDE="load tools, iperf3 server and echo server"
USAGE_END=12
NUMBERS=(ROUNDS DURATION WARMUP IDLE SLOW HOLD CONCURRENCY)
POSITIVE=(ROUNDS DURATION CONCURRENCY HOLD)
SWITCHES=(PIN)
MAXPIPES=256
NS=ferry-bench-relay

# The namespace is ours alone, so fixed ports collide with nothing; ephemeral ports start above.
IPERF_PORT=5201
UPSTREAM_ECHO_PORT=6000
METRICS_PORT=7901
declare -A BULK_PORT=([direct]=$IPERF_PORT [ferry]=7001 [haproxy]=7002 [socat]=7003)
declare -A ECHO_PORT=([direct]=$UPSTREAM_ECHO_PORT [ferry]=7101 [haproxy]=7102 [socat]=7103)
declare -A SLOW_PORT=([ferry]=7201 [haproxy]=7202)
declare -A LABEL=([direct]="direct (no proxy)" [ferry]="ferry-relay" [haproxy]="HAProxy" [socat]="socat")

parse_args "$@"
((EUID == 0)) || die "run this as root: it creates a network namespace, sets sysctls in it and installs packages"

# ---------------------------------------------------------------------------------------------
# Clean-up (bench/lib.sh stops the processes recorded in PIDS, then calls on_exit). Whatever is
# left in the namespace (socat's children, a load tool cut off by Ctrl-C) was started by this
# script too, since nothing else runs there: it is stopped by id the same way, then the
# namespace goes.
NS_MADE=0
on_exit() {
  if ((NS_MADE)); then
    # shellcheck disable=SC2046
    stop_pids $(ip netns pids "$NS" 2>/dev/null || true)
    ip netns del "$NS" 2>/dev/null || true
  fi
}

# ---------------------------------------------------------------------------------------------
# Tools. Nothing is assumed to be installed: what is missing comes from Debian's packages.
need_tools() {
  need haproxy socat iperf3 gcc:gcc,libc6-dev python3 curl ip:iproute2 ss:iproute2 taskset:util-linux
}

build() {
  if [[ -n ${FERRY_RELAY_BIN:-} ]]; then
    [[ -x $FERRY_RELAY_BIN ]] || die "FERRY_RELAY_BIN=$FERRY_RELAY_BIN is not an executable file"
    RELAY=$FERRY_RELAY_BIN
  else
    say "building ferry-relay (release)"
    (cd "$ROOT" && cargo build --quiet --release -p ferry-relay)
    RELAY=$ROOT/target/release/ferry-relay
  fi
  mkdir -p "$WORK/bin"
  local tool
  for tool in echo tcpload; do
    if [[ ! -x $WORK/bin/$tool || $HERE/$tool.c -nt $WORK/bin/$tool || $HERE/common.h -nt $WORK/bin/$tool ]]; then
      say "compiling bench/relay/$tool.c"
      gcc -O2 -Wall -Wextra -o "$WORK/bin/$tool" "$HERE/$tool.c"
    fi
  done
}

# Descriptors. Each proxy holds two per idle connection (HAProxy also two per pipe), and
# RLIMIT_NOFILE cannot be raised past the hard limit without CAP_SYS_RESOURCE (containers often
# drop it), so the idle test opens as many connections as every proxy can hold, at most --idle.
raise_fd_limit() {
  ulimit -n 1048576 2>/dev/null || ulimit -n "$(ulimit -Hn)"
  FD_LIMIT=$(ulimit -n)
  local fits=$(((FD_LIMIT - 2 * MAXPIPES - 60) / 2 / 100 * 100))
  IDLE_WANTED=$IDLE
  if ((IDLE > fits)); then
    warn "ulimit -n is at most $FD_LIMIT here (hard limit; no CAP_SYS_RESOURCE to raise it): the idle test opens $fits connections, not $IDLE"
    IDLE=$fits
  fi
  SLOW_WANTED=$SLOW
  if ((SLOW > fits)); then
    warn "ulimit -n is at most $FD_LIMIT here: the slow-client attack opens $fits connections, not $SLOW"
    SLOW=$fits
  fi
  # The slow listener's max_connections (HAProxy: its frontend's maxconn): all that fits.
  SLOW_MAXCONN=$fits
  HAPROXY_MAXCONN=$((fits + 20))
}

# ---------------------------------------------------------------------------------------------
# The network namespace: its own loopback, its own sysctls, no port shared with anything else.
NSX=(ip netns exec "$NS")
make_namespace() {
  if ip netns list | grep -qw "$NS"; then
    [[ -z $(ip netns pids "$NS" 2>/dev/null) ]] ||
      die "network namespace $NS has processes: another relay benchmark is running (ip netns pids $NS)"
    ip netns del "$NS" # left over by a run that was killed with SIGKILL
  fi
  ip netns add "$NS" || die "cannot create a network namespace (ip netns add $NS)"
  NS_MADE=1
  "${NSX[@]}" ip link set lo up
  # Short connections: ephemeral ports from 10000 up (the servers listen below), and TIME_WAIT
  # ports reused on loopback (2, the kernel's default, stated so the report can show it).
  "${NSX[@]}" sysctl -qw net.ipv4.ip_local_port_range="10000 65535" net.ipv4.tcp_tw_reuse=2
}

# ---------------------------------------------------------------------------------------------
# Processes (start, alive, wait_until, stop_pids, forget: bench/lib.sh; start runs them in the
# namespace).

# Whether something listens on the port. Asked of the kernel, not by connecting: a test
# connection through a proxy would reach iperf3 as a broken control connection.
listening() { [[ -n $("${NSX[@]}" ss -Hltn "sport = :$1") ]]; }

wait_port() { wait_until "$1" 10 "listen on 127.0.0.1:$2" listening "$2"; } # wait_port NAME PORT

render() { # render TEMPLATE OUT: fill the @NAME@ placeholders
  sed -e "s|@MAXCONN@|$HAPROXY_MAXCONN|g" -e "s|@MAXPIPES@|$MAXPIPES|g" \
    -e "s|@METRICS_PORT@|$METRICS_PORT|g" -e "s|@IPERF_PORT@|$IPERF_PORT|g" \
    -e "s|@UPSTREAM_ECHO_PORT@|$UPSTREAM_ECHO_PORT|g" \
    -e "s|@SLOW_PORT@|${SLOW_PORT[$3]:-}|g" -e "s|@SLOW_MAXCONN@|$SLOW_MAXCONN|g" \
    -e "s|@BULK_PORT@|${BULK_PORT[$3]}|g" -e "s|@ECHO_PORT@|${ECHO_PORT[$3]}|g" "$1" >"$2"
}

start_iperf3() { start iperf3 "$LOAD_CPU" iperf3 --server --port "$IPERF_PORT"; wait_port iperf3 "$IPERF_PORT"; }

start_proxy() { # start_proxy NAME: one proxy process (ferry, haproxy, socat_bulk, socat_echo)
  case $1 in
    ferry)
      # One worker thread, like HAProxy's nbthread 1 (the relay also sizes its SO_REUSEPORT
      # sockets by the CPUs it may run on: one when pinned).
      start ferry "$PROXY_CPU" env TOKIO_WORKER_THREADS=1 "$RELAY" --config "$WORK/ferry-relay.toml"
      ;;
    haproxy) start haproxy "$PROXY_CPU" haproxy -db -f "$WORK/haproxy.cfg" ;;
    socat_bulk | socat_echo)
      # socat forks a child per connection; backlog raised from its default of 5, TCP_NODELAY
      # on both sides like the other two; its 8 KiB copy buffer is left at the default.
      local port=${BULK_PORT[socat]} upstream=$IPERF_PORT
      [[ $1 == socat_bulk ]] || { port=${ECHO_PORT[socat]}; upstream=$UPSTREAM_ECHO_PORT; }
      start "$1" "$PROXY_CPU" socat "TCP-LISTEN:$port,bind=127.0.0.1,reuseaddr,fork,backlog=4096,nodelay" \
        "TCP:127.0.0.1:$upstream,nodelay"
      ;;
  esac
  local s=${1%_*}
  [[ $1 == socat_echo ]] || wait_port "$1" "${BULK_PORT[$s]}"
  [[ $1 == socat_bulk ]] || wait_port "$1" "${ECHO_PORT[$s]}"
  [[ -z ${SLOW_PORT[$1]:-} ]] || wait_port "$1" "${SLOW_PORT[$1]}"
}

restart_proxy() { # restart_proxy NAME: a fresh process, for a measurement that needs one
  stop_pids "${PID[$1]}"
  wait "${PID[$1]}" 2>/dev/null || true
  forget "${PID[$1]}"
  start_proxy "$1"
}

start_all() {
  start_iperf3
  start echo "$LOAD_CPU" "$WORK/bin/echo" "127.0.0.1:$UPSTREAM_ECHO_PORT"
  wait_port echo "$UPSTREAM_ECHO_PORT"
  if has ferry; then
    render "$HERE/ferry-relay.toml" "$WORK/ferry-relay.toml" ferry
    "$RELAY" --config "$WORK/ferry-relay.toml" --check >/dev/null
    start_proxy ferry
  fi
  if has haproxy; then
    render "$HERE/haproxy.cfg" "$WORK/haproxy.cfg" haproxy
    haproxy -c -q -f "$WORK/haproxy.cfg" || die "haproxy -c rejects $WORK/haproxy.cfg"
    start_proxy haproxy
  fi
  if has socat; then
    start_proxy socat_bulk
    start_proxy socat_echo
  fi
}

proxy_name() { # proxy_name SYSTEM bulk|echo: the process that serves that listener
  case $1 in
    direct) echo "" ;;
    socat) echo "socat_$2" ;;
    *) echo "$1" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# Correctness, once per proxy, before any measurement: 64 MiB of pseudo-random bytes through the
# proxy to the echo server and back, then the client's FIN, which must come back as a FIN after
# the last byte (half-close both ways). Figures of a proxy that loses bytes are worthless.
check_all() {
  local s out failed=0
  for s in direct "${SYSTEMS[@]}"; do
    if out=$("${NSX[@]}" timeout 60 "$WORK/bin/tcpload" check "127.0.0.1:${ECHO_PORT[$s]}" "$CHECK_BYTES" 2>&1); then
      printf '    %-18s %s\n' "${LABEL[$s]}" "$out" >&2
    else
      warn "${LABEL[$s]}: $out"
      failed=1
    fi
  done
  ((failed == 0)) || die "a proxy did not return the bytes it was given (see above)"
}

# ---------------------------------------------------------------------------------------------
# Measurement.
TESTS=(up1 up8 down1 down8 rate rtt connrtt)

load_cmd() { # load_cmd TEST SYSTEM SECONDS: sets LOAD to the command line, LIMIT to its deadline
  local port=${BULK_PORT[$2]:-PORT} echo_port=${ECHO_PORT[$2]:-PORT}
  local iperf=(iperf3 --client 127.0.0.1 --connect-timeout 5000 --json)
  case $1 in
    up1) LOAD=("${iperf[@]}" --port "$port" --time "$3" --parallel 1) ;;
    up8) LOAD=("${iperf[@]}" --port "$port" --time "$3" --parallel 8) ;;
    down1) LOAD=("${iperf[@]}" --port "$port" --time "$3" --parallel 1 --reverse) ;;
    down8) LOAD=("${iperf[@]}" --port "$port" --time "$3" --parallel 8 --reverse) ;;
    rate) LOAD=("$WORK/bin/tcpload" rate "127.0.0.1:$echo_port" "$3" "$CONCURRENCY") ;;
    rtt) LOAD=("$WORK/bin/tcpload" rtt "127.0.0.1:$echo_port" "$RTT_COUNT") ;;
    connrtt) LOAD=("$WORK/bin/tcpload" connrtt "127.0.0.1:$echo_port" "$CONNRTT_COUNT") ;;
  esac
  if ((PIN)); then LOAD=(taskset -c "$LOAD_CPU" "${LOAD[@]}"); fi
  LIMIT=$(($3 + 60))
}

upstream_of() { case $1 in up* | down*) echo iperf3 ;; *) echo echo ;; esac; }

trees() { # trees SYSTEM TEST: "proxy ..." and "upstream ..." lines of proctree
  local p up
  p=$(proxy_name "$1" "$(case $2 in up* | down*) echo bulk ;; *) echo echo ;; esac)")
  up=$(upstream_of "$2")
  if [[ -n $p ]]; then
    proctree "proxy=${PID[$p]}" "upstream=${PID[$up]}"
  else
    echo "proxy 0 0 0 0 0 0 0"
    proctree "upstream=${PID[$up]}"
  fi
}

rotated() { # rotated N ITEMS...: the items starting at index N mod count
  local n=$1; shift
  local items=("$@") i
  for i in "${!items[@]}"; do echo "${items[(i + n) % ${#items[@]}]}"; done
}

run_one() { # run_one TEST SYSTEM ROUND: one measured run into runs/TEST/SYSTEM/ROUND.*
  local test=$1 s=$2 r=$3 out p TIMEFORMAT='load %R %U %S'
  out=$WORK/runs/$test/$s/$r
  mkdir -p "$(dirname "$out")"
  wait_quiet
  p=$(proxy_name "$s" "$(case $test in up* | down*) echo bulk ;; *) echo echo ;; esac)")
  [[ -z $p ]] || alive "$p"
  alive "$(upstream_of "$test")"
  load_cmd "$test" "$s" "$DURATION"
  echo "${LOAD[*]}" >"$out.cmd"
  trees "$s" "$test" >"$out.before"
  cores >>"$out.before"
  if ! { time "${NSX[@]}" timeout --foreground -k 5 "$LIMIT" "${LOAD[@]}" >"$out.out" 2>"$out.err"; } 2>"$out.time"; then
    warn "$test ${LABEL[$s]} round $r failed: $(head -c 300 "$out.err") $(grep -o '"error":.*' "$out.out" | head -c 300 || true)"
    touch "$out.failed"
    if [[ $test == up* || $test == down* ]]; then
      # iperf3's server can stay stuck on a test that broke half-way: give it a fresh start.
      stop_pids "${PID[iperf3]}"
      forget "${PID[iperf3]}"
      start_iperf3
    fi
  fi
  cores >"$out.after"
  sleep 0.3 # let the proxy finish closing (socat's children exit and are reaped)
  trees "$s" "$test" >>"$out.after"
  summary "$test" "$s" "$r" "$out"
}

one() { # one RUN: a line about one run, from report.py
  local pcpu=-
  ((PIN)) && pcpu=$PROXY_CPU
  python3 "$HERE/report.py" --one "$1" "$(getconf CLK_TCK)" "$pcpu" "$LOAD_CPU" 2>/dev/null ||
    echo "(no figure: report.py --one failed on .bench/relay/runs/${1#"$WORK"/runs/})"
}

summary() { # one progress line per run
  local figure
  figure=$(one "$4")
  printf '    %-8s round %d/%d  %-18s %s\n' "$1" "$3" "$ROUNDS" "${LABEL[$2]}" "$figure" >&2
}

ferry_metrics() { # ferry_metrics FILE: ferry-relay's counters, before the idle test restarts it
  has ferry || return 0
  "${NSX[@]}" curl -s --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" >"$1" ||
    warn "could not read ferry-relay's metrics"
}

measure() {
  local test s r
  for test in "${TESTS[@]}"; do
    say "$test: $(describe "$test")"
    if ((WARMUP > 0)) && [[ $test == up1 || $test == rate ]]; then
      for s in direct "${SYSTEMS[@]}"; do
        load_cmd "$( [[ $test == up1 ]] && echo up8 || echo rate)" "$s" "$WARMUP"
        "${NSX[@]}" timeout --foreground -k 5 "$LIMIT" "${LOAD[@]}" >/dev/null 2>&1 ||
          warn "warm-up through ${LABEL[$s]} failed"
      done
    fi
    for r in $(seq "$ROUNDS"); do
      # Alternated, and each round starts with the next system, so no system always runs first.
      for s in $(rotated "$((r - 1))" direct "${SYSTEMS[@]}"); do
        run_one "$test" "$s" "$r"
      done
    done
  done
}

describe() {
  case $1 in
    up1) echo "iperf3, 1 stream, client -> upstream, ${DURATION} s" ;;
    up8) echo "iperf3, 8 streams, client -> upstream, ${DURATION} s" ;;
    down1) echo "iperf3, 1 stream, upstream -> client (--reverse), ${DURATION} s" ;;
    down8) echo "iperf3, 8 streams, upstream -> client (--reverse), ${DURATION} s" ;;
    rate) echo "short connections, $CONCURRENCY in flight, ${DURATION} s" ;;
    rtt) echo "$RTT_COUNT round trips of 64 bytes on one connection" ;;
    connrtt) echo "$CONNRTT_COUNT new connections one at a time: connect, 64-byte round trip, close" ;;
  esac
}

# start_load MODE PORT N OUT WHAT: `tcpload MODE` with N connections to the proxy on PORT, in
# the background (on the load core when pinning), then up to 3 minutes for its `ready` line.
# Sets LOAD_PID and LOAD_READY (that line). If it does not come: warns "WHAT were not all open",
# stops the load, marks OUT failed and returns 1.
start_load() {
  local mode=$1 port=$2 n=$3 out=$4 what=$5 pin=()
  if ((PIN)); then pin=(taskset -c "$LOAD_CPU"); fi
  "${NSX[@]}" "${pin[@]}" "$WORK/bin/tcpload" "$mode" "127.0.0.1:$port" "$n" </dev/null >"$out.out" 2>"$out.err" &
  LOAD_PID=$!
  PIDS+=("$LOAD_PID")
  for _ in $(seq 1800); do
    grep -q '^ready' "$out.out" && break
    kill -0 "$LOAD_PID" 2>/dev/null || break
    sleep 0.1
  done
  LOAD_READY=$(grep '^ready' "$out.out" || true)
  if [[ -z $LOAD_READY ]]; then
    warn "$what were not all open within 3 minutes: $(cat "$out.err")"
    stop_pids "$LOAD_PID"
    forget "$LOAD_PID"
    touch "$out.failed"
    return 1
  fi
}


# Memory per idle connection: IDLE connections opened through the proxy (each echoes 16 bytes
# once, so the upstream side is surely connected), held, measured, closed; then the time until
# the proxy has closed them all, and whether any socket was left in CLOSE_WAIT. Each time with a
# fresh proxy process, warmed up by one connection: memory freed by earlier tests stays in a
# process's allocator, and a process would not grow again for connections it once held.
idle_one() { # idle_one SYSTEM ROUND
  local s=$1 r=$2 out p pid line procs sockets t0
  out=$WORK/runs/idle/$s/$r
  mkdir -p "$(dirname "$out")"
  p=$(proxy_name "$s" echo)
  restart_proxy "$p"
  "${NSX[@]}" "$WORK/bin/tcpload" check "127.0.0.1:${ECHO_PORT[$s]}" 65536 >/dev/null ||
    die "idle ${LABEL[$s]}: the restarted proxy does not forward"
  sleep 0.5
  proctree "proxy=${PID[$p]}" >"$out.before"
  read -r _ _ _ _ procs _ _ sockets <"$out.before"
  local before_procs=$procs before_sockets=$sockets
  start_load idle "${ECHO_PORT[$s]}" "$IDLE" "$out" "idle ${LABEL[$s]}: the connections" || return
  pid=$LOAD_PID line=$LOAD_READY
  sleep 2 # let the proxy settle (allocator, socat's last children)
  proctree "proxy=${PID[$p]}" >"$out.after"
  stop_pids "$pid" # tcpload counts its connections that are still open, then closes them all
  wait "$pid" 2>/dev/null || true
  forget "$pid"
  t0=$EPOCHREALTIME
  for _ in $(seq 600); do
    read -r _ _ _ _ procs _ _ sockets < <(proctree "proxy=${PID[$p]}")
    ((sockets > before_sockets + 4 || procs > before_procs)) || break
    sleep 0.1
  done
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f\n", b - a}' >"$out.drain"
  if ((sockets > before_sockets + 4 || procs > before_procs)); then
    echo "not drained after 60 s: $sockets sockets (before: $before_sockets), $procs processes" >>"$out.drain"
  fi
  "${NSX[@]}" ss -Htan state close-wait | wc -l >"$out.closewait"
  printf '    idle     round %d/%d  %-18s %s; %s\n' "$r" "$ROUNDS" "${LABEL[$s]}" \
    "$(one "$out")" "$line" >&2
}

measure_idle() {
  local r s
  say "idle: $IDLE connections held open through each proxy"
  for r in $(seq "$ROUNDS"); do
    for s in $(rotated "$((r - 1))" "${SYSTEMS[@]}"); do
      wait_quiet
      idle_one "$s" "$r"
    done
  done
}

# The one-byte slow-client attack: SLOW clients each send "P" and stop, against the `slow`
# listener of ferry-relay (first-byte check on: PROXY headers trusted only from a range none of
# them is in; max_connections, max_per_ip 256) and HAProxy's `slow` frontend with the same
# checks and limits (bench/relay/haproxy.cfg says how). Each round starts a fresh proxy process.
# Samples: before the clients, 1 s after all of them sent their byte (the cost of taking them),
# and HOLD seconds later (the cost of holding them, and what is held); then 200 honest
# connections one at a time (connect, 64-byte round trip, close) while the attack goes on.
slow_one() { # slow_one SYSTEM ROUND
  local s=$1 r=$2 out pid line procs sockets t0 pin=()
  out=$WORK/runs/slow/$s/$r
  mkdir -p "$(dirname "$out")"
  restart_proxy "$s"
  "${NSX[@]}" "$WORK/bin/tcpload" check "127.0.0.1:${SLOW_PORT[$s]}" 65536 >/dev/null ||
    die "slow ${LABEL[$s]}: the restarted proxy does not forward"
  sleep 0.5
  proctree "proxy=${PID[$s]}" >"$out.before"
  read -r _ _ _ _ procs _ _ sockets <"$out.before"
  local before_sockets=$sockets
  if ((PIN)); then pin=(taskset -c "$LOAD_CPU"); fi
  start_load slow "${SLOW_PORT[$s]}" "$SLOW" "$out" "slow ${LABEL[$s]}: the clients" || return
  pid=$LOAD_PID line=$LOAD_READY
  sleep 1
  { proctree "proxy=${PID[$s]}" "load=$pid" "upstream=${PID[echo]}"; cores; } >"$out.held"
  t0=$EPOCHREALTIME
  sleep "$HOLD"
  { proctree "proxy=${PID[$s]}" "load=$pid" "upstream=${PID[echo]}"; cores; } >"$out.after"
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.2f\n", b - a}' >"$out.hold"
  "${NSX[@]}" "${pin[@]}" "$WORK/bin/tcpload" connrtt "127.0.0.1:${SLOW_PORT[$s]}" 200 >"$out.honest" 2>&1 ||
    warn "slow ${LABEL[$s]}: an honest client failed during the attack: $(cat "$out.honest")"
  stop_pids "$pid" # tcpload counts what became of its clients, then closes them all
  wait "$pid" 2>/dev/null || true
  forget "$pid"
  t0=$EPOCHREALTIME
  for _ in $(seq 600); do
    read -r _ _ _ _ procs _ _ sockets < <(proctree "proxy=${PID[$s]}")
    ((sockets > before_sockets + 4)) || break
    sleep 0.1
  done
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN {printf "%.1f\n", b - a}' >"$out.drain"
  ((sockets <= before_sockets + 4)) || echo "not drained after 60 s: $sockets sockets (before: $before_sockets)" >>"$out.drain"
  printf '    slow     round %d/%d  %-18s %s; %s\n' "$r" "$ROUNDS" "${LABEL[$s]}" \
    "$(one "$out")" "$line" >&2
}

measure_slow() {
  local r s systems=()
  for s in ferry haproxy; do has "$s" && systems+=("$s"); done
  ((${#systems[@]})) || return 0
  say "slow: $SLOW one-byte clients against each proxy's slow listener, held ${HOLD} s"
  for r in $(seq "$ROUNDS"); do
    for s in $(rotated "$((r - 1))" "${systems[@]}"); do
      wait_quiet
      slow_one "$s" "$r"
    done
  done
}

# ---------------------------------------------------------------------------------------------
command_line() {
  if [[ -n ${FERRY_RELAY_BIN:-} ]]; then
    echo "FERRY_RELAY_BIN=$FERRY_RELAY_BIN bench/relay/run.sh${ARGS[*]:+ ${ARGS[*]}}"
  else
    echo "./run bench-relay${ARGS[*]:+ ${ARGS[*]}}"
  fi
}

report() {
  local t
  {
    meta_common
    printf 'ferry\t%s (commit %s, %s)\n' "$("$RELAY" --version)" "$(commit_id relay)" "$RELAY"
    printf 'haproxy\t%s\n' "$(haproxy -v | sed -n '1s/ - https.*//p')"
    printf 'socat\t%s\n' "$(socat -V | awk '/socat version/ && !n++ {print $1, $2, $3}')"
    printf 'iperf3\t%s\n' "$(iperf3 --version | sed -n 1p)"
    printf 'gcc\t%s\n' "$(gcc --version | sed -n 1p)"
    printf 'concurrency\t%s\n' "$CONCURRENCY"
    printf 'idle\t%s\n' "$IDLE"
    printf 'idle_wanted\t%s\n' "$IDLE_WANTED"
    printf 'slow\t%s\n' "$SLOW"
    printf 'slow_wanted\t%s\n' "$SLOW_WANTED"
    printf 'slow_maxconn\t%s\n' "$SLOW_MAXCONN"
    printf 'hold\t%s\n' "$HOLD"
    printf 'fd_limit\t%s\n' "$FD_LIMIT"
    printf 'haproxy_maxconn\t%s\n' "$HAPROXY_MAXCONN"
    printf 'maxpipes\t%s\n' "$MAXPIPES"
    printf 'sysctls\t%s\n' "$("${NSX[@]}" sysctl -n net.ipv4.ip_local_port_range | tr '\t' '-'), tcp_tw_reuse $("${NSX[@]}" sysctl -n net.ipv4.tcp_tw_reuse), somaxconn $("${NSX[@]}" sysctl -n net.core.somaxconn), congestion control $("${NSX[@]}" sysctl -n net.ipv4.tcp_congestion_control)"
    for t in "${TESTS[@]}"; do
      load_cmd "$t" PROXY "$DURATION"
      printf 'cmd_%s\t%s\n' "$t" "$(quoted "${LOAD[@]}" | sed "s|$WORK/bin/|.bench/relay/bin/|")"
    done
    printf 'cmd_idle\t%s\n' ".bench/relay/bin/tcpload idle 127.0.0.1:PORT $IDLE"
    printf 'cmd_slow\t%s\n' ".bench/relay/bin/tcpload slow 127.0.0.1:PORT $SLOW; during it: tcpload connrtt 127.0.0.1:PORT 200"
    printf 'cmd_ferry\t%s\n' "TOKIO_WORKER_THREADS=1 ferry-relay --config .bench/relay/ferry-relay.toml (from bench/relay/ferry-relay.toml)"
    printf 'cmd_haproxy\t%s\n' "haproxy -db -f .bench/relay/haproxy.cfg (from bench/relay/haproxy.cfg)"
    printf 'cmd_socat\t%s\n' "socat TCP-LISTEN:PORT,bind=127.0.0.1,reuseaddr,fork,backlog=4096,nodelay TCP:127.0.0.1:UPSTREAM,nodelay"
  } >"$WORK/meta.tsv"
  python3 "$HERE/report.py" "$WORK" >"$RESULTS"
  echo
  cat "$RESULTS"
  echo
  say "written to .bench/relay-results.md (raw output of every run in .bench/relay/runs/, logs in .bench/relay/logs/)"
}

# ---------------------------------------------------------------------------------------------
rm -rf "$WORK/runs" "$WORK/logs" "$WORK"/ferry-metrics*.txt
mkdir -p "$WORK/logs"
need_tools
build
raise_fd_limit
make_namespace
say "starting iperf3, the echo server and: ${SYSTEMS[*]}"
start_all
say "checking that each proxy returns every byte ($((CHECK_BYTES >> 20)) MiB through the echo server, then FIN)"
check_all
say "measuring: ${ROUNDS} rounds, systems alternated; about $((((${#SYSTEMS[@]} + 1) * ROUNDS * (5 * DURATION + 25) + ${#SYSTEMS[@]} * ROUNDS * 10 + 2 * ROUNDS * (HOLD + 15)) / 60 + 1)) minutes"
measure
ferry_metrics "$WORK/ferry-metrics.txt"
measure_idle
ferry_metrics "$WORK/ferry-metrics-idle.txt"
measure_slow
ferry_metrics "$WORK/ferry-metrics-slow.txt"
report
