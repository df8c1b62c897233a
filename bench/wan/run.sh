#!/usr/bin/env bash
# Ferry's WAN benchmark: what a visitor in China gets over an emulated long link (issue 12).
#
#   ./run bench-wan [--rounds N] [--visits N] [--loads N] [--downloads N] [--pause S]
#                   [--rtt MS] [--idle S] [--warm N] [--only seed,ferry,ferry-pool]
#                   [--no-plain] [--no-loss] [--no-cap]
#
# Run it through ./run (which builds the filter and provides Envoy); it must run as root
# (network namespaces, a TUN link, apt-get). It installs haproxy, nginx, curl and chromium from
# Debian if missing, builds ferry-link and ferry-relay (release) and ferry-wan, and for each
# scenario makes the link with ferry-link, starts the same servers on both sides, checks that
# every system serves the rewritten pages, measures in alternated rounds, and prints a Markdown
# report, also written to .bench/wan-results.md. Every process and namespace it makes is
# removed on exit, whatever the exit.
#
# Scenarios (each a fresh link; --no-NAME leaves one out):
#   plain  RTT --rtt (200 ms), nothing else
#   loss   the same, 1% of the packets lost each way
#   cap    the same, a 100 Mbit/s bottleneck each way
# Systems, all in front of one origin (ferry-wan origin: the demo site and a ~2 MB page, TLS):
#   seed        HAProxy mode tcp (cn) -> nginx with the article's config (us)
#   ferry       ferry-relay (cn, PROXY v2) -> Envoy with envoy/us-east.yaml and Ferry (us)
#   ferry-pool  the same relay with its warm pool (--warm N connections), measured only when
#               this ferry-relay accepts a warm-pool setting (`--check`); otherwise the report
#               says it was not measured
# Measures, each round every system in turn (the order rotates each round):
#   visits      --visits pairs: a new visitor (fresh TCP and TLS) and, --pause s later, the same
#               visitor returning (TLS resumption, checked): time to first byte (bench/wan/visit.py)
#   loads       --loads cold loads of the demo home page in headless Chromium, navigation start
#               to the load event, every subresource (ferry-wan pageload)
#   downloads   --downloads fetches of the ~2 MB page with curl --compressed, new connection
#   idle        once, plain scenario, each system alone for --idle s: packets and connections
#               per second it costs the us side while no visitor comes
set -eEuo pipefail
shopt -s nullglob

ROOT=$(cd "$(dirname "$(readlink -f "$0")")/../.." && pwd)
HERE=$ROOT/bench/wan
WORK=$ROOT/.bench/wan
RESULTS=$ROOT/.bench/wan-results.md
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh" # say, parse_args, start, stop_pids, the clean-up, wait_quiet, proctree, ...

ROUNDS=5
VISITS=3
LOADS=2
DOWNLOADS=2
PAUSE=1
RTT=200
IDLE=30
WARM=8
PLAIN=1
LOSS=1
CAP=1
PIN=0
SYSTEMS=(seed ferry ferry-pool)
USAGE_END=33
NUMBERS=(ROUNDS VISITS LOADS DOWNLOADS PAUSE RTT IDLE WARM)
POSITIVE=(ROUNDS RTT WARM)
SWITCHES=(PLAIN LOSS CAP)
SETTLE=5 # seconds a proxy runs before its idle window (a pool fills, health checks start)

declare -A LINK_ARGS=([plain]="" [loss]="--both loss=1%" [cap]="--both rate=100mbit")
declare -A LABEL=([seed]="Seed (HAProxy + nginx)" [ferry]="Ferry" [ferry-pool]="Ferry + warm pool")

# Addresses. The link: cn 10.88.0.1 <-> us 10.88.0.2 (ferry-link's). Visitors reach each
# system at an address of its own on the cn side's loopback, port 443, as a browser would.
NAME=ferry-wan
CN=$NAME-cn
US=$NAME-us
US_ADDR=10.88.0.2
declare -A ENTRY=([seed]=10.88.1.1 [ferry]=10.88.1.2 [ferry-pool]=10.88.1.3)
ENVOY_LISTEN=$US_ADDR:443
NGINX_LISTEN=$US_ADDR:4443
ORIGIN=127.0.0.1:8443
ADMIN=127.0.0.1:9901
HOST=www.example.cn

parse_args "$@"
SCENARIOS=()
((PLAIN)) && SCENARIOS+=(plain)
((LOSS)) && SCENARIOS+=(loss)
((CAP)) && SCENARIOS+=(cap)
((${#SCENARIOS[@]})) || bad_usage "--no-plain, --no-loss and --no-cap together leave nothing to measure"
((EUID == 0)) || die "run this as root (sudo ./run bench-wan): it makes network namespaces and a TUN device, and installs packages"
if has ferry || has ferry-pool; then
  [[ -x ${ENVOY_BIN:-} ]] || die "ENVOY_BIN=${ENVOY_BIN:-} is not an executable: run this as ./run bench-wan"
  [[ -f ${FERRY_WASM:-} ]] || die "FERRY_WASM=${FERRY_WASM:-} is not a file: run this as ./run bench-wan"
fi

# ---------------------------------------------------------------------------------------------
# Tools and builds.
need_tools() {
  need haproxy nginx curl python3 ip:iproute2 ss:iproute2 setsid:util-linux
  nginx -V 2>&1 | grep -q -- --with-http_sub_module ||
    die "this nginx ($(command -v nginx)) has no sub_filter (built without --with-http_sub_module)"
  if [[ -z ${CHROMIUM_BIN:-} ]]; then
    need chromium
    CHROMIUM_BIN=$(command -v chromium)
  fi
  export CHROMIUM_BIN
}

build() {
  say "building ferry-link (release), ferry-wan and, unless FERRY_RELAY_BIN is set, ferry-relay (release)"
  (cd "$ROOT" && cargo build --quiet --release -p ferry-link && cargo build --quiet -p ferry-tests --bin ferry-wan)
  LINK_BIN=$ROOT/target/release/ferry-link
  WAN=$ROOT/target/debug/ferry-wan
  if [[ -n ${FERRY_RELAY_BIN:-} ]]; then
    [[ -x $FERRY_RELAY_BIN ]] || die "FERRY_RELAY_BIN=$FERRY_RELAY_BIN is not an executable file"
    RELAY=$FERRY_RELAY_BIN
  else
    (cd "$ROOT" && cargo build --quiet --release -p ferry-relay)
    RELAY=$ROOT/target/release/ferry-relay
  fi
}

# fill_template TEMPLATE OUT KEY=VALUE...: the template with every @KEY@ replaced by VALUE.
fill_template() {
  local text pair
  text=$(<"$1")
  for pair in "${@:3}"; do text=${text//@${pair%%=*}@/${pair#*=}}; done
  printf '%s\n' "$text" >"$2"
}

# The warm pool: ferry-relay has one when `--check` accepts a listener with `warm = N` (8 by
# default, as relay/relay.example.toml's https listener; warm_max_idle stays the relay's
# default). WAN_POOL_TOML gives other lines instead, @WARM@ standing for N.
POOL=""
relay_config() { # relay_config SYSTEM OUT [POOL_LINES]
  fill_template "$HERE/ferry-relay.toml" "$2" "LISTEN=${ENTRY[$1]}:443" "UPSTREAM=$ENVOY_LISTEN" \
    "POOL=${3:-}"
}

detect_pool() {
  has ferry-pool || return 0
  local lines=${WAN_POOL_TOML:-warm = @WARM@} why s kept=()
  lines=${lines//@WARM@/$WARM}
  relay_config ferry-pool "$WORK/ferry-pool.toml" "$lines"
  if why=$("$RELAY" --config "$WORK/ferry-pool.toml" --check 2>&1); then
    POOL=$lines
    say "ferry-relay has a warm pool: measuring ferry-pool with \"${POOL//$'\n'/ }\""
    return 0
  fi
  warn "ferry-pool: not measured, this ferry-relay has no warm pool (--check refuses \"${lines//$'\n'/ }\": ${why##*$'\n'})"
  for s in "${SYSTEMS[@]}"; do [[ $s == ferry-pool ]] || kept+=("$s"); done
  ((${#kept[@]})) || die "nothing to measure: --only ferry-pool, and this ferry-relay has no warm pool"
  SYSTEMS=("${kept[@]}")
  POOL_MISSING=1
}
POOL_MISSING=0

# ---------------------------------------------------------------------------------------------
# The link and the processes on both sides. Processes go through `start` (bench/lib.sh) with
# NSX set to the namespace; the link is apart, since it must outlive them: at any exit the
# clean-up stops the recorded processes, then on_exit stops whatever else runs in the two
# namespaces (a Chromium left by an interrupted page load: it runs in a process group of its
# own), then the link, which removes the namespaces; a namespace still there after that is
# deleted. The link runs in a session of its own, so a Ctrl-C meant for the benchmark does not
# make it remove the namespaces before on_exit has looked in them; its id is kept in
# WORK/link.pid, so a run killed with SIGKILL leaves a link the next run stops.
LINK_PID=""
SCEN=""

start_in() { # start_in NAMESPACE NAME COMMAND...
  local NSX=(ip netns exec "$1")
  start "$2" - "${@:3}"
}

in_cn() { ip netns exec "$CN" "$@"; }
in_us() { ip netns exec "$US" "$@"; }

log_has() { grep -q "$2" "$WORK/logs/$1.log" 2>/dev/null; } # log_has NAME PATTERN
listening_in() { [[ -n $(ip netns exec "$1" ss -Hltn "src $2") ]]; } # listening_in NS IP:PORT

clear_namespaces() { # before a link: refuse a running benchmark, remove what a killed one left
  local ns old
  old=$(cat "$WORK/link.pid" 2>/dev/null || true)
  if [[ -n $old ]] && tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null | grep -q "ferry-link --name $NAME "; then
    [[ -z $(ip netns pids "$CN" 2>/dev/null) ]] ||
      die "network namespace $CN has processes: another bench-wan is running (ip netns pids $CN)"
    warn "stopping the link a killed bench-wan left running (pid $old)"
    stop_pids "$old"
  fi
  for ns in "$CN" "$US"; do
    ip netns list | grep -qw "$ns" || continue
    [[ -z $(ip netns pids "$ns" 2>/dev/null) ]] ||
      die "network namespace $ns has processes: another bench-wan is running (ip netns pids $ns)"
    ip netns del "$ns"
  done
}

link_up() { # link_up SCENARIO
  clear_namespaces
  local log=$WORK/logs/$1-link.log
  # shellcheck disable=SC2086 # LINK_ARGS holds whole arguments
  setsid "$LINK_BIN" --name "$NAME" --rtt "${RTT}ms" ${LINK_ARGS[$1]} </dev/null >>"$log" 2>&1 &
  LINK_PID=$!
  echo "$LINK_PID" >"$WORK/link.pid"
  for _ in $(seq 100); do
    grep -q '^ready ' "$log" && break
    kill -0 "$LINK_PID" 2>/dev/null || { cat "$log" >&2; die "ferry-link exited (log: $(log_of "$1-link"))"; }
    sleep 0.1
  done
  grep -q '^ready ' "$log" || die "ferry-link did not come up within 10 s (log: $(log_of "$1-link"))"
  local s
  for s in "${SYSTEMS[@]}"; do in_cn ip addr add "${ENTRY[$s]}/32" dev lo; done
}

link_down() { # stop everything of the scenario; the link last
  stop_pids "${PIDS[@]}"
  PIDS=()
  if [[ -n $LINK_PID ]]; then
    # shellcheck disable=SC2046 # one word per process id
    stop_pids $(ip netns pids "$CN" 2>/dev/null || true) $(ip netns pids "$US" 2>/dev/null || true)
    stop_pids "$LINK_PID"
    wait "$LINK_PID" 2>/dev/null || true
    LINK_PID=""
    rm -f "$WORK/link.pid"
  fi
  local ns
  for ns in "$CN" "$US"; do
    if ip netns list | grep -qw "$ns"; then ip netns del "$ns" 2>/dev/null || true; fi
  done
}

# Chromium's profiles go under WORK/tmp (TMPDIR), so one that an interrupted page load could
# not remove goes too.
on_exit() {
  link_down
  rm -rf "$WORK/tmp"
}

start_us() { # the origin, and the us side of each system
  local p=${SCEN}_
  start_in "$US" "${p}origin" "$WAN" origin "$WORK/files" --listen "$ORIGIN"
  wait_until "${p}origin" 20 "print ready" log_has "${p}origin" '^ready'
  if has seed; then
    mkdir -p "$WORK/nginx"
    fill_template "$HERE/nginx-seed.conf" "$WORK/nginx/nginx.conf" "USER=user root;" \
      "PREFIX=$WORK/nginx" "LISTEN=$NGINX_LISTEN" "ORIGIN=$ORIGIN" "FILES=$WORK/files"
    in_us nginx -t -q -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" ||
      die "nginx -t rejects .bench/wan/nginx/nginx.conf"
    start_in "$US" "${p}nginx" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
    wait_until "${p}nginx" 10 "listen on $NGINX_LISTEN" listening_in "$US" "$NGINX_LISTEN"
  fi
  if has ferry || has ferry-pool; then
    start_in "$US" "${p}envoy" "$ENVOY_BIN" -c "$WORK/files/envoy.yaml" --concurrency 1 \
      --disable-hot-restart -l warning
    wait_until "${p}envoy" 30 "answer LIVE on $ADMIN/ready" envoy_ready
  fi
}
envoy_ready() { [[ $(in_us curl -s --max-time 2 "http://$ADMIN/ready" || true) == LIVE ]]; }

start_cn() { # start_cn SYSTEM: its China-side proxy
  local s=$1 name=${SCEN}_$1
  case $s in
    seed)
      fill_template "$HERE/haproxy.cfg" "$WORK/haproxy.cfg" "LISTEN=${ENTRY[seed]}:443" "UPSTREAM=$NGINX_LISTEN"
      haproxy -c -q -f "$WORK/haproxy.cfg" || die "haproxy -c rejects .bench/wan/haproxy.cfg"
      start_in "$CN" "$name" haproxy -db -f "$WORK/haproxy.cfg"
      ;;
    ferry | ferry-pool)
      local pool=""
      [[ $s == ferry ]] || pool=$POOL
      relay_config "$s" "$WORK/$s.toml" "$pool"
      "$RELAY" --config "$WORK/$s.toml" --check >/dev/null || die "ferry-relay --check rejects .bench/wan/$s.toml"
      start_in "$CN" "$name" "$RELAY" --config "$WORK/$s.toml"
      ;;
  esac
  wait_until "$name" 10 "listen on ${ENTRY[$s]}:443" listening_in "$CN" "${ENTRY[$s]}:443"
}

stop_cn() { # stop_cn SYSTEM
  local name=${SCEN}_$1
  stop_pids "${PID[$name]}"
  wait "${PID[$name]}" 2>/dev/null || true
  forget "${PID[$name]}"
}

# ---------------------------------------------------------------------------------------------
# Correctness, once per scenario and system, before any measurement: the home page and the
# large page through the system must be the mirror's (example.cn in them, no
# https://www.example.com left). Then the link's round trip: five TCP connects across it, whose
# median should be the RTT asked for (a warning if it is off by more than 10%).
get() { # get SYSTEM PATH OUT: a visitor's GET, decoded; prints curl's status
  in_cn curl -s --compressed --max-time 120 --cacert "$WORK/files/ca.pem" \
    --resolve "$HOST:443:${ENTRY[$1]}" -o "$3" -w '%{http_code}' "https://$HOST$2"
}

check_all() {
  local s path out code left mirrored failed=0
  mkdir -p "$WORK/check"
  for s in "${SYSTEMS[@]}"; do
    for path in / /large.html; do
      out=$WORK/check/$SCEN-$s-${path//[^a-z]/}.html
      code=$(get "$s" "$path" "$out" || true)
      left=$(grep -o 'https://www\.example\.com' "$out" 2>/dev/null | wc -l || true)
      mirrored=$(grep -o 'example\.cn' "$out" 2>/dev/null | wc -l || true)
      if [[ $code != 200 ]] || ((left > 0 || mirrored == 0)); then
        warn "${LABEL[$s]}: GET $path: status $code, $mirrored example.cn, $left https://www.example.com left (body: ${out#"$ROOT"/})"
        failed=1
      else
        printf '    %-22s %-12s ok: %d bytes, %d example.cn\n' "${LABEL[$s]}" "$path" "$(stat -c %s "$out")" "$mirrored" >&2
      fi
    done
  done
  ((failed == 0)) || die "a system does not serve the mirror's pages (see above)"
  in_cn python3 "$HERE/visit.py" connect "$US_ADDR:${ENVOY_LISTEN##*:}" 5 >"$WORK/runs/$SCEN/link-rtt.out" ||
    die "cannot connect across the link to $ENVOY_LISTEN"
  local rtt
  rtt=$(sed 's/^connect_ms=//' "$WORK/runs/$SCEN/link-rtt.out" | sort -n | sed -n 3p)
  say "link: TCP connect cn -> us in $rtt ms (median of 5; RTT asked: $RTT ms)"
  awk -v m="$rtt" -v r="$RTT" 'BEGIN {exit !(m < 0.9 * r || m > 1.1 * r)}' &&
    warn "the link's round trip ($rtt ms) is not the $RTT ms asked: is the machine overloaded? (ferry-link forwards in user space)"
  return 0
}

# ---------------------------------------------------------------------------------------------
# Measurement.
MEASURES=(visit load large)

measure_one() { # measure_one MEASURE SYSTEM ROUND: into runs/SCEN/MEASURE/SYSTEM/ROUND.out
  local m=$1 s=$2 r=$3 out i to=${ENTRY[$2]}
  out=$WORK/runs/$SCEN/$m/$s/$r
  mkdir -p "$(dirname "$out")"
  alive "${SCEN}_$s"
  case $m in
    visit)
      ((VISITS > 0)) || return 0
      in_cn python3 "$HERE/visit.py" "$to:443" "$HOST" / "$WORK/files/ca.pem" "$VISITS" "$PAUSE" \
        >"$out.out" 2>"$out.err" || warn "visits through ${LABEL[$s]} failed: $(tail -n 1 "$out.err")"
      ;;
    load)
      mkdir -p "$WORK/tmp"
      for ((i = 0; i < LOADS; i++)); do
        TMPDIR=$WORK/tmp in_cn "$WAN" pageload "https://$HOST/" --to "$to:443" --pin-file "$WORK/files/mirror.pin" \
          >>"$out.out" 2>>"$out.err" || echo "error=pageload_failed" >>"$out.out"
      done
      ;;
    large)
      # A failed transfer still prints its line, with code=000 (or the status): the report
      # counts only the 200s.
      for ((i = 0; i < DOWNLOADS; i++)); do
        in_cn curl -sS -o /dev/null --compressed --max-time 300 --cacert "$WORK/files/ca.pem" \
          --resolve "$HOST:443:$to" -w "$CURL_FORMAT" "https://$HOST/large.html" \
          >>"$out.out" 2>>"$out.err" || true
      done
      ;;
  esac
  [[ ! -s $out.out ]] || printf '    %-6s %-6s round %d/%d  %-22s %s\n' "$SCEN" "$m" "$r" "$ROUNDS" \
    "${LABEL[$s]}" "$(python3 "$HERE/report.py" --one "$out.out" "$RTT" 2>/dev/null || echo "(no figure)")" >&2
}
CURL_FORMAT='code=%{http_code} connect_s=%{time_connect} tls_s=%{time_appconnect} ttfb_s=%{time_starttransfer} total_s=%{time_total} bytes=%{size_download} http=%{http_version}\n'

rotated() { # rotated N ITEMS...: the items starting at index N mod count
  local n=$1; shift
  local items=("$@") i
  for i in "${!items[@]}"; do echo "${items[(i + n) % ${#items[@]}]}"; done
}

sample() { # sample FILE: our CPU (this script's whole process tree), the cores, the clock
  {
    proctree "bench=$$"
    cores
    echo "clock_ms $(($(date +%s%N) / 1000000))"
  } >"$1"
}

measure_rounds() {
  local r m s
  for r in $(seq "$ROUNDS"); do
    wait_quiet
    sample "$WORK/runs/$SCEN/round-$r.before"
    for m in "${MEASURES[@]}"; do
      for s in $(rotated "$((r - 1))" "${SYSTEMS[@]}"); do measure_one "$m" "$s" "$r"; done
    done
    sample "$WORK/runs/$SCEN/round-$r.after"
  done
}

# The us side's counters: packets and bytes each way on the link device, and the TCP
# connections its kernel accepted (Envoy's, nginx's and the origin's listeners alike).
us_counters() {
  in_us cat /proc/net/dev | awk '$1 == "link0:" {print "link_rx", $3, $2; print "link_tx", $11, $10}'
  in_us cat /proc/net/snmp | awk '$1 == "Tcp:" && $2 ~ /^[0-9]/ {print "passive_opens", $7}'
  echo "clock_ms $(($(date +%s%N) / 1000000))"
}

measure_idle() { # each system's China side alone for IDLE s, after SETTLE s
  ((IDLE > 0)) || return 0
  local s out
  say "idle: each system alone for $IDLE s, no visitor (${SETTLE} s to settle first)"
  for s in "${SYSTEMS[@]}"; do
    out=$WORK/runs/idle/$s
    mkdir -p "$(dirname "$out")"
    start_cn "$s"
    sleep "$SETTLE"
    us_counters >"$out.before"
    sleep "$IDLE"
    us_counters >"$out.after"
    alive "${SCEN}_$s"
    stop_cn "$s"
    printf '    idle   %-22s %s\n' "${LABEL[$s]}" "$(python3 "$HERE/report.py" --idle "$out" 2>/dev/null || echo "(no figure)")" >&2
  done
}

run_scenario() { # run_scenario NAME
  SCEN=$1
  local s
  say "scenario $SCEN: ferry-link --rtt ${RTT}ms${LINK_ARGS[$SCEN]:+ ${LINK_ARGS[$SCEN]}}"
  mkdir -p "$WORK/runs/$SCEN"
  link_up "$SCEN"
  # Each namespace's default congestion control (the seed's sockets use it; ferry-relay and
  # Envoy's us-east.yaml ask for BBR on theirs).
  printf '%s\n' "cn $(in_cn sysctl -n net.ipv4.tcp_congestion_control)" \
    "us $(in_us sysctl -n net.ipv4.tcp_congestion_control)" \
    "available $(in_us sysctl -n net.ipv4.tcp_available_congestion_control | tr ' ' ,)" \
    >"$WORK/runs/$SCEN/congestion.txt"
  "$WAN" files "$WORK/files" --envoy-listen "$ENVOY_LISTEN" --admin "$ADMIN" --origin "$ORIGIN"
  start_us
  [[ $SCEN != plain ]] || measure_idle
  for s in "${SYSTEMS[@]}"; do start_cn "$s"; done
  say "$SCEN: checking that every system serves the mirror's pages"
  check_all
  say "$SCEN: $ROUNDS rounds, systems alternated"
  measure_rounds
  link_down
}

# ---------------------------------------------------------------------------------------------
command_line() {
  local env=""
  [[ -z ${FERRY_RELAY_BIN:-} ]] || env+="FERRY_RELAY_BIN=$FERRY_RELAY_BIN "
  [[ -z ${WAN_POOL_TOML:-} ]] || env+="WAN_POOL_TOML='$WAN_POOL_TOML' "
  echo "$env./run bench-wan${ARGS[*]:+ ${ARGS[*]}}"
}

report() {
  local s
  {
    meta_machine
    printf 'clk_tck\t%s\n' "$(getconf CLK_TCK)"
    printf 'scenarios\t%s\n' "${SCENARIOS[*]}"
    for s in "${SCENARIOS[@]}"; do printf 'link_%s\t%s\n' "$s" "ferry-link --rtt ${RTT}ms${LINK_ARGS[$s]:+ ${LINK_ARGS[$s]}}"; done
    printf 'rtt_ms\t%s\n' "$RTT"
    printf 'visits\t%s\n' "$VISITS"
    printf 'loads\t%s\n' "$LOADS"
    printf 'downloads\t%s\n' "$DOWNLOADS"
    printf 'pause\t%s\n' "$PAUSE"
    printf 'idle\t%s\n' "$IDLE"
    printf 'settle\t%s\n' "$SETTLE"
    printf 'warm\t%s\n' "$WARM"
    printf 'pool\t%s\n' "$( ((POOL_MISSING)) && echo "missing" || echo "${POOL//$'\n'/ }")"
    printf 'ferry\t%s (commit %s, %s)\n' "$("$RELAY" --version)" "$(commit_id relay)" "$RELAY"
    printf 'envoy\t%s\n' "$("${ENVOY_BIN:-envoy}" --version 2>/dev/null | grep -o 'version: [^ ]*' | cut -d/ -f2 || echo "not used")"
    printf 'haproxy\t%s\n' "$(haproxy -v | sed -n '1s/ - https.*//p')"
    printf 'nginx\t%s\n' "$(nginx -v 2>&1 | sed 's/^nginx version: //')"
    printf 'chromium\t%s\n' "$("$CHROMIUM_BIN" --version 2>/dev/null)"
    printf 'curl\t%s\n' "$(curl --version | awk 'NR == 1 {print $1, $2, "(" $5 ")"}')"
    printf 'python\t%s\n' "$(python3 -c 'import ssl, sys; print("Python", sys.version.split()[0], "(" + " ".join(ssl.OPENSSL_VERSION.split()[:2]) + ")")')"
    printf 'commit\t%s\n' "$(commit_id)"
    printf 'cmd_visit\t%s\n' "ip netns exec $CN python3 bench/wan/visit.py ENTRY:443 $HOST / ca.pem $VISITS $PAUSE"
    printf 'cmd_load\t%s\n' "ip netns exec $CN ferry-wan pageload https://$HOST/ --to ENTRY:443 --pin-file mirror.pin"
    printf 'cmd_large\t%s\n' "ip netns exec $CN curl -s -o /dev/null --compressed --cacert ca.pem --resolve $HOST:443:ENTRY https://$HOST/large.html"
  } >"$WORK/meta.tsv"
  python3 "$HERE/report.py" "$WORK" >"$RESULTS"
  echo
  cat "$RESULTS"
  echo
  say "written to .bench/wan-results.md (raw output in .bench/wan/runs/, logs in .bench/wan/logs/)"
}

# ---------------------------------------------------------------------------------------------
rm -rf "$WORK/runs" "$WORK/logs" "$WORK/check" "$WORK/files"
mkdir -p "$WORK/logs" "$WORK/runs"
need_tools
build
detect_pool
minutes=$((${#SCENARIOS[@]} * ROUNDS * ${#SYSTEMS[@]} * (VISITS * (4 + 2 * PAUSE) + LOADS * 6 + DOWNLOADS * 5) / 60 + 1))
say "systems: ${SYSTEMS[*]}; scenarios: ${SCENARIOS[*]}; about $minutes minutes or more (the loss scenario is slower)"
for scenario in "${SCENARIOS[@]}"; do run_scenario "$scenario"; done
report
