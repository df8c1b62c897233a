#!/usr/bin/env bash
# Ferry's benchmark: Envoy + Ferry beside nginx sub_filter and beside Envoy with no filter.
#
#   ./run bench [--rounds N] [--duration S] [--connections N] [--warmup S]
#               [--only ferry,envoy,nginx] [--no-check] [--no-pin]
#
# Run it through ./run, which does the set-up (wasm32 target, pinned Envoy, the release .wasm)
# and exports ENVOY_BIN and FERRY_WASM. This script installs nginx and wrk itself, makes two real
# HTML pages (bench/pages.py), starts one origin and the three proxies on loopback, checks that
# each proxy answers correctly, measures them with wrk in alternated rounds, and writes the
# results to .bench/results.md. Every process it starts is stopped on exit, whatever the exit.
#
# What is compared, and why this way (BENCHMARKS.md has the long form):
#   ferry  Envoy with envoy/ferry.yaml: compressor, Ferry, router.
#   envoy  The same Envoy config without the Ferry filter: the ceiling for any filter.
#   nginx  nginx with the article's proxy_pass + sub_filter config, plus upstream keep-alive.
# Each proxy gets one worker thread. On a machine with 2 or more cores all proxies are pinned to
# one core (PROXY_CPU) and wrk and the origin to another (LOAD_CPU), so a proxy always has a whole
# core to itself and never competes with the load generator; the per-core load is recorded so a
# run where the load side, not the proxy, was the limit shows up in the report.
set -eEuo pipefail
shopt -s nullglob

ROOT=$(cd "$(dirname "$(readlink -f "$0")")/.." && pwd)
HERE=$ROOT/bench
WORK=$ROOT/.bench
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh" # say, parse_args, start, stop_pids, the clean-up, wait_quiet, proctree, ...

ROUNDS=3
DURATION=10
CONNECTIONS=32
WARMUP=3
CHECK=1
PIN=1
SYSTEMS=(ferry envoy nginx)
PAGES=(small large)
MIRROR_HOST=www.example.cn
PLUGIN_CONFIG='{"domains":[{"origin":"example.com","mirror":"example.cn","subdomains":true}]}'
PROXY_CPU=1
LOAD_CPU=0
LOAD_SIDE="wrk and the origin"
USAGE_END=11
NUMBERS=(ROUNDS DURATION CONNECTIONS WARMUP)
POSITIVE=(ROUNDS DURATION CONNECTIONS)
SWITCHES=(CHECK PIN)

# Fixed ports keep the generated configs and curl lines readable; BENCH_PORT_BASE moves them all.
BASE=${BENCH_PORT_BASE:-18000}
ORIGIN_PORT=$((BASE + 80))
declare -A PORT=([ferry]=$((BASE + 1)) [envoy]=$((BASE + 2)) [nginx]=$((BASE + 3)))
declare -A ADMIN_PORT=([ferry]=$((BASE + 901)) [envoy]=$((BASE + 902)))
declare -A LABEL=([ferry]="Envoy + Ferry" [envoy]="Envoy, no filter" [nginx]="nginx sub_filter")

parse_args "$@"

if has ferry || has envoy; then
  [[ -x ${ENVOY_BIN:-} ]] || die "ENVOY_BIN=${ENVOY_BIN:-} is not an executable: run this as ./run bench"
fi
if has ferry; then
  [[ -f ${FERRY_WASM:-} ]] || die "FERRY_WASM=${FERRY_WASM:-} is not a file: run this as ./run bench"
fi

# ---------------------------------------------------------------------------------------------
# Tools. Nothing is assumed to be installed: what is missing comes from Debian's packages.
need_tools() {
  need nginx wrk curl python3 taskset:util-linux dpkg-deb:dpkg
  nginx -V 2>&1 | grep -q -- --with-http_sub_module ||
    die "this nginx ($(command -v nginx)) has no sub_filter (built without --with-http_sub_module)"
}

# A python with PyYAML for bench/envoy_config.py: the system's, else the project's .venv (which
# ./run created for Envoy), else a venv of the benchmark's own; PyYAML comes from PyPI.
need_yaml_python() {
  local py
  for py in python3 "$ROOT/.venv/bin/python" "$WORK/venv/bin/python"; do
    if [[ -x $(command -v "$py" 2>/dev/null) ]] && "$py" -c 'import yaml' 2>/dev/null; then
      YAML_PY=$py
      return
    fi
  done
  if [[ -x $ROOT/.venv/bin/pip ]]; then
    YAML_PY=$ROOT/.venv/bin/python
  else
    [[ -x $WORK/venv/bin/pip ]] || python3 -m venv "$WORK/venv" || apt_install python3-venv
    [[ -x $WORK/venv/bin/pip ]] || python3 -m venv "$WORK/venv"
    YAML_PY=$WORK/venv/bin/python
  fi
  say "installing PyYAML into $(dirname "$(dirname "$YAML_PY")")"
  "$(dirname "$YAML_PY")/pip" install --quiet --disable-pip-version-check pyyaml
}

# ---------------------------------------------------------------------------------------------
# Pages: the Python documentation from Debian's python3.X-doc, made to look like an origin that
# links to itself with absolute URLs (bench/pages.py says how). The .deb is only unpacked into
# .bench/, not installed. Rebuilt when pages.py changes.
prepare_pages() {
  local pages=$WORK/pages cache=$WORK/cache pkg debs htmls
  if [[ -s $pages/pages.tsv && $pages/pages.tsv -nt $HERE/pages.py ]]; then return; fi
  mkdir -p "$cache"
  debs=("$cache"/python3.*-doc_*.deb)
  if ((${#debs[@]} == 0)); then
    # python3-doc is the unversioned name; its dependency is this release's python3.X-doc.
    ((APT_UPDATED)) || apt-cache show python3-doc >/dev/null 2>&1 || apt_update
    pkg=$(apt-cache depends python3-doc | awk '/Depends: python3\.[0-9]+-doc/ {print $2; exit}')
    [[ -n $pkg ]] || die "cannot find Debian's python3.X-doc package (apt-cache depends python3-doc)"
    say "downloading $pkg (Debian) for real HTML pages"
    # apt drops privileges to _apt for downloads; let it write here.
    chmod 0777 "$cache"
    if ! (cd "$cache" && apt-get download -qq "$pkg") >"$cache/apt.log" 2>&1; then
      cat "$cache/apt.log" >&2
      die "apt-get download $pkg failed"
    fi
    debs=("$cache"/python3.*-doc_*.deb)
  fi
  rm -rf "$cache/src"
  dpkg-deb -x "${debs[0]}" "$cache/src"
  htmls=("$cache"/src/usr/share/doc/python3.*/html)
  ((${#htmls[@]})) || die "${debs[0]} has no usr/share/doc/python3.X/html"
  say "making the pages from ${debs[0]##*/}"
  python3 "$HERE/pages.py" "${htmls[0]}" "$pages"
  echo "${debs[0]##*/}" >"$pages/source.txt"
}

# ---------------------------------------------------------------------------------------------
# Processes (start, alive, wait_until: bench/lib.sh).
answers_200() { [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Host: $MIRROR_HOST" "$1" || true) == 200 ]]; }
wait_ready() { wait_until "$1" 20 "answer 200 on $2" answers_200 "$2"; } # wait_ready NAME URL

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

render_nginx() { # render_nginx TEMPLATE PREFIX PORT: fill the @NAME@ placeholders
  local user=""
  # Workers of a root master would run as nobody, who may not read the pages under /root.
  ((EUID == 0)) && user="user root;"
  mkdir -p "$2"
  sed -e "s|@USER@|$user|" -e "s|@PREFIX@|$2|g" -e "s|@PORT@|$3|g" \
    -e "s|@ORIGIN_PORT@|$ORIGIN_PORT|g" -e "s|@PAGES@|$WORK/pages|g" "$1" >"$2/nginx.conf"
}

start_all() {
  local s port
  for port in "$ORIGIN_PORT" "${PORT[@]}" "${ADMIN_PORT[@]}"; do
    port_free "$port" || die "127.0.0.1:$port is in use (another benchmark?); BENCH_PORT_BASE moves all ports"
  done

  render_nginx "$HERE/nginx/origin.conf" "$WORK/origin" "$ORIGIN_PORT"
  start origin "$LOAD_CPU" nginx -p "$WORK/origin" -c "$WORK/origin/nginx.conf" -e "$WORK/origin/error.log"
  wait_ready origin "http://127.0.0.1:$ORIGIN_PORT/small.html"

  for s in "${SYSTEMS[@]}"; do
    case $s in
      ferry | envoy)
        local extra=(--no-filter)
        [[ $s == ferry ]] && extra=(--wasm "$FERRY_WASM" --plugin-config "$PLUGIN_CONFIG")
        "$YAML_PY" "$HERE/envoy_config.py" "$ROOT/envoy/ferry.yaml" "$WORK/envoy-$s.yaml" \
          --listen "${PORT[$s]}" --admin "${ADMIN_PORT[$s]}" --origin "$ORIGIN_PORT" "${extra[@]}"
        start "$s" "$PROXY_CPU" "$ENVOY_BIN" -c "$WORK/envoy-$s.yaml" \
          --concurrency 1 --disable-hot-restart -l warning
        ;;
      nginx)
        render_nginx "$HERE/nginx/subfilter.conf" "$WORK/nginx" "${PORT[nginx]}"
        start nginx "$PROXY_CPU" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
        ;;
    esac
  done
  for s in "${SYSTEMS[@]}"; do wait_ready "$s" "http://127.0.0.1:${PORT[$s]}/small.html"; done
}

# ---------------------------------------------------------------------------------------------
# Correctness, once per system and page, before any measurement: numbers for a proxy that
# serves the wrong bytes are worthless.
check_all() {
  local s page origin body failed=0 hdrs
  for page in "${PAGES[@]}"; do
    origin=$WORK/pages/$page.html
    hdrs=$(curl -s -D - -o /dev/null "http://127.0.0.1:$ORIGIN_PORT/$page.html")
    grep -qi '^content-type: text/html' <<<"$hdrs" || die "the origin does not serve $page.html as text/html"
    ! grep -qi '^content-encoding:' <<<"$hdrs" || die "the origin compresses $page.html"
    for s in "${SYSTEMS[@]}"; do
      body=$WORK/check/$s-$page.html
      mkdir -p "$WORK/check"
      curl -s -f -H "Host: $MIRROR_HOST" -o "$body" "http://127.0.0.1:${PORT[$s]}/$page.html" || {
        warn "$s: GET /$page.html failed"; failed=1; continue; }
      if [[ $s == envoy ]]; then
        # No filter: the page must come through byte for byte.
        if cmp -s "$origin" "$body"; then
          printf '    %-6s %-11s ok: %d bytes, identical to the origin'"'"'s\n' "$s" "$page.html" "$(stat -c %s "$body")" >&2
        else
          warn "$s: /$page.html differs from the origin's (body: .bench/check/$s-$page.html)"
          failed=1
        fi
      else
        local left mirrored
        left=$(grep -o 'https://www\.example\.com' "$body" | wc -l || true)
        mirrored=$(grep -o 'example\.cn' "$body" | wc -l || true)
        if ((left > 0 || mirrored == 0)); then
          warn "$s: /$page.html is not rewritten: $left 'https://www.example.com' left, $mirrored 'example.cn' (body: .bench/check/$s-$page.html)"
          failed=1
        else
          printf '    %-6s %-11s ok: %d bytes, %d example.cn, no https://www.example.com\n' \
            "$s" "$page.html" "$(stat -c %s "$body")" "$mirrored" >&2
        fi
      fi
    done
  done
  ((failed == 0)) || die "correctness check failed (see above); --no-check skips it while the filter is being written"
}

# ---------------------------------------------------------------------------------------------
# Measurement.
# sample SYSTEM: per-core busy and total jiffies, then the proxy's and the origin's CPU ticks
# (bench/lib.sh: cores, proctree). With wrk's own CPU time (from `time`) the report can tell how
# much CPU went to processes that are not part of the benchmark: this machine may be shared, and
# such a run is flagged.
sample() {
  cores
  proctree "proxy=${PID[$1]}" "origin=${PID[origin]}"
}

wrk_cmd() { # wrk_cmd SYSTEM PAGE SECONDS: sets WRK to the command line
  # --timeout 60s: wrk drops requests slower than its 2 s default from the latency figures, which
  # would hide exactly the slow tail a p99 is meant to show on the 2 MB page.
  WRK=(wrk -t1 "-c$CONNECTIONS" "-d${3}s" --latency --timeout 60s -H "Host: $MIRROR_HOST"
    "http://127.0.0.1:${PORT[$1]:-PORT}/$2.html")
  if ((PIN)); then WRK=(taskset -c "$LOAD_CPU" "${WRK[@]}"); fi
}

measure() {
  local page s r out TIMEFORMAT='load %R %U %S'
  rm -rf "$WORK/runs"
  for page in "${PAGES[@]}"; do
    if ((WARMUP > 0)); then
      say "$page.html: warm-up, ${WARMUP} s per system"
      for s in "${SYSTEMS[@]}"; do
        wrk_cmd "$s" "$page" "$WARMUP"
        "${WRK[@]}" >/dev/null
      done
    fi
    for r in $(seq "$ROUNDS"); do
      for s in "${SYSTEMS[@]}"; do
        out=$WORK/runs/$page/$s/$r
        mkdir -p "$(dirname "$out")"
        wait_quiet
        alive "$s"
        alive origin
        sample "$s" >"$out.before"
        wrk_cmd "$s" "$page" "$DURATION"
        { time "${WRK[@]}" >"$out.wrk"; } 2>"$out.time"
        alive "$s"
        sample "$s" >"$out.after"
        printf '    %-11s round %d/%d  %-16s %s req/s, p99 %s\n' "$page.html" "$r" "$ROUNDS" "${LABEL[$s]}" \
          "$(awk '/^Requests\/sec:/ {print $2}' "$out.wrk")" \
          "$(awk '$1 == "99%" {print $2}' "$out.wrk")" >&2
      done
    done
  done
}

# ---------------------------------------------------------------------------------------------
# The rewrite engine on its own, natively, without Envoy.
# TODO(filter): filter/examples/engine_bench.rs belongs to the filter's engineer: it streams each
# page given on its command line through ferry_filter::rewrite (see filter/src/rewrite.rs) and
# prints one line per page, "engine PAGE: N bytes, M matches, X MB/s (16 KiB chunks, R rounds)",
# MB = 10^6 bytes of input. Until the example exists this section says so and the report has no
# engine figure; its output goes into the report verbatim.
engine_bench() {
  if [[ ! -f $ROOT/filter/examples/engine_bench.rs ]]; then
    warn "engine: filter/examples/engine_bench.rs does not exist yet: no native MB/s figure"
    echo "(not measured: filter/examples/engine_bench.rs does not exist yet)" >"$WORK/engine.txt"
    return
  fi
  say "engine: native rewrite throughput"
  # Not fatal: the proxies' figures are already measured and must still be reported.
  if ! (cd "$ROOT" && cargo run --quiet --release -p ferry-filter --example engine_bench -- \
    .bench/pages/small.html .bench/pages/large.html) >"$WORK/engine.txt" 2>&1; then
    warn "engine: the engine_bench example failed; its output is in the report"
  fi
  cat "$WORK/engine.txt" >&2
}

# ---------------------------------------------------------------------------------------------
command_line() { # how to repeat this run: ./run bench, unless the Envoy or .wasm were overridden
  local own=1
  if has ferry || has envoy; then [[ $ENVOY_BIN == "$ROOT"/.venv/* ]] || own=0; fi
  if has ferry; then [[ $FERRY_WASM == "$ROOT/target/wasm32-wasip1/release/ferry_filter.wasm" ]] || own=0; fi
  if ((own)); then
    echo "./run bench${ARGS[*]:+ ${ARGS[*]}}"
  else
    echo "ENVOY_BIN=${ENVOY_BIN:-} FERRY_WASM=${FERRY_WASM:-} bench/run.sh${ARGS[*]:+ ${ARGS[*]}}"
  fi
}

report() {
  local wasm_info=""
  if has ferry; then
    wasm_info="$(stat -c %s "$FERRY_WASM") bytes, sha256 $(sha256sum "$FERRY_WASM" | cut -c1-16)"
  fi
  {
    meta_common
    if has ferry || has envoy; then
      printf 'envoy\t%s\n' "$("$ENVOY_BIN" --version | grep -o 'version: [^ ]*' | cut -d' ' -f2)"
    fi
    printf 'nginx\t%s\n' "$(nginx -v 2>&1 | sed 's/^nginx version: //')"
    printf 'wrk\t%s\n' "$(wrk -v 2>&1 | sed -n 1p | cut -d' ' -f1-2 || true)"
    wrk_cmd none PAGE "$DURATION"
    printf 'wrk_cmd\t%s\n' "$(quoted "${WRK[@]}")"
    printf 'checked\t%s\n' "$( ((CHECK)) && echo yes || echo "NO (--no-check)")"
    # shellcheck disable=SC2119 # no DIR: the whole tree
    printf 'commit\t%s\n' "$(commit_id)"
    printf 'wasm\t%s\n' "$wasm_info"
    printf 'pages_source\t%s\n' "$(cat "$WORK/pages/source.txt")"
  } >"$WORK/meta.tsv"
  python3 "$HERE/report.py" "$WORK" >"$WORK/results.md"
  echo
  cat "$WORK/results.md"
  echo
  say "written to .bench/results.md (raw wrk output in .bench/runs/)"
}

# ---------------------------------------------------------------------------------------------
rm -rf "$WORK/logs"
mkdir -p "$WORK/logs"
need_tools
if has ferry || has envoy; then need_yaml_python; fi
prepare_pages
say "pages: $(awk -F'\t' '{printf "%s %d bytes (%d x example.com); ", $1, $2, $3}' "$WORK/pages/pages.tsv")"
say "starting the origin and: ${SYSTEMS[*]}"
start_all
if ((CHECK)); then
  say "checking each proxy's answers"
  check_all
else
  warn "--no-check: correctness not checked; figures of a filter that does not rewrite mean nothing"
fi
say "measuring: ${ROUNDS} rounds x ${DURATION} s, ${CONNECTIONS} connections, systems alternated"
measure
engine_bench
report
