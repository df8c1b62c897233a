# shellcheck shell=bash
# The helpers the benchmarks (bench/run.sh, bench/relay/run.sh, bench/wan/run.sh) share: one copy
# of each. Sourced by each after it sets ROOT (the checkout) and WORK (its output folder);
# sourcing installs the clean-up.
#
# What the sourcing script sets, and the helpers read when called:
#   USAGE_END  the last line of the script's opening comment that --help prints
#   SYSTEMS    every system, the default of --only
#   NUMBERS    the variables that --NAME N sets (whole numbers); POSITIVE: those that must be > 0
#   SWITCHES   the variables that --no-NAME sets to 0
#   PIN PROXY_CPU LOAD_CPU  pinning (PIN=0: none); LOAD_SIDE: what runs on LOAD_CPU, in words
#   NSX        optional: the prefix `start` runs commands under (bench/relay's network namespace;
#              bench/wan sets it per call, one namespace or the other)
#   on_exit    optional function: runs at exit, once every recorded process is stopped
#   command_line  function: how to repeat this run (for the report)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
warn() { printf '\033[1;33mwarning:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 1; }
bad_usage() { printf '\033[1;31merror:\033[0m %s\n' "$*" >&2; exit 64; } # EX_USAGE

usage() { sed -n "2,${USAGE_END}p" "$0" | sed 's/^# \{0,1\}//'; }

listed() { [[ " ${*:2} " == *" $1 "* ]]; } # listed WORD LIST...: whether WORD is one of LIST
has() { listed "$1" "${SYSTEMS[@]}"; }     # has SYSTEM: whether it is measured in this run

# parse_args "$@": the options of both benchmarks (--NAME N for NUMBERS, --no-NAME for SWITCHES,
# --only A,B, -h), each checked; exits 64 on a bad one. Sets ARGS (as given) and STARTED. PIN is 0
# afterwards on a machine with one core.
parse_args() {
  # shellcheck disable=SC2034 # for the script's command_line
  ARGS=("$@")
  STARTED=$(date -u '+%Y-%m-%d %H:%M UTC')
  local all=("${SYSTEMS[@]}") opt name s list
  while (($#)); do
    opt=${1#--}
    opt=${opt//-/_}
    opt=${opt^^}
    if [[ $1 == --only ]]; then
      IFS=, read -r -a SYSTEMS <<<"${2:?}"
      shift
    elif [[ $1 == --* ]] && listed "$opt" "${NUMBERS[@]}"; then
      printf -v "$opt" %s "${2:?}"
      shift
    elif [[ $1 == --no-* ]] && listed "${opt#NO_}" "${SWITCHES[@]}"; then
      printf -v "${opt#NO_}" 0
    elif [[ $1 == -h || $1 == --help ]]; then
      usage
      exit 0
    else
      usage >&2
      bad_usage "unknown argument: $1"
    fi
    shift
  done
  for name in "${NUMBERS[@]}"; do
    [[ ${!name} =~ ^[0-9]+$ ]] || bad_usage "--${name,,} ${!name} is not valid: expected a whole number"
  done
  printf -v list -- '--%s, ' "${POSITIVE[@],,}"
  list=${list%, }
  list="${list%, *} and ${list##*, }" # --rounds, --duration and --connections
  for name in "${POSITIVE[@]}"; do
    ((${!name} > 0)) || bad_usage "$list must be greater than zero"
  done
  printf -v list '%s, ' "${all[@]}"
  for s in "${SYSTEMS[@]}"; do
    listed "$s" "${all[@]}" || bad_usage "--only $s is not valid: the systems are ${list%, }"
  done
  if ((PIN)) && (($(nproc) < 2)); then
    warn "one core only: not pinning; the proxies share it with $LOAD_SIDE"
    PIN=0
  fi
}

# ---------------------------------------------------------------------------------------------
# Processes. Every process started here is recorded in PIDS and stopped on any exit (normal end,
# error, Ctrl-C), each by its own id (stop_pids); then the script's on_exit, if it has one.
PIDS=()
declare -A PID
NSX=()

# stop_pids PID...: TERM, up to 5 s for them to exit, then KILL what is left and its direct
# children. (The two copies disagreed: bench/relay's killed only the processes themselves. A
# master that needs KILL, like nginx's, would leave its workers running and holding their ports,
# so its children are killed with it.)
stop_pids() {
  local pid kid left
  (($#)) || return 0
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 50); do
    left=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && left=1; done
    ((left)) || return 0
    sleep 0.1
  done
  for pid in "$@"; do
    kill -0 "$pid" 2>/dev/null || continue
    for kid in $(pgrep -P "$pid" || true); do kill -KILL "$kid" 2>/dev/null || true; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_pids "${PIDS[@]}"
  if declare -F on_exit >/dev/null; then on_exit; fi
  wait 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'printf "\033[1;31merror:\033[0m line %s: %s failed\n" "$LINENO" "$BASH_COMMAND" >&2' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

forget() { # forget PID: a process of ours that has exited (its id may be reused later)
  local i
  for i in "${!PIDS[@]}"; do [[ ${PIDS[$i]} != "$1" ]] || unset 'PIDS[i]'; done
}

# start NAME CPU COMMAND...: in the background under NSX, on CPU when pinned, stdin from
# /dev/null (an inherited pipe would show among the pipes a proxy holds), output appended to
# WORK/logs/NAME.log (a process restarted keeps the log of its first life; each script empties
# logs/ when it starts). A simple command, not a function or a subshell: ip and taskset exec what
# follows, so $! is the process itself, which is what clean-up must signal and samples measure.
start() {
  local name=$1 cpu=$2
  shift 2
  if ((PIN)); then set -- taskset -c "$cpu" "$@"; fi
  "${NSX[@]}" "$@" </dev/null >>"$WORK/logs/$name.log" 2>&1 &
  PID[$name]=$!
  PIDS+=("$!")
}

log_of() { echo "${WORK#"$ROOT"/}/logs/$1.log"; } # log_of NAME: its log, for messages

alive() { # alive NAME: fail clearly if a process of ours is gone (something else may stop it)
  kill -0 "${PID[$1]}" 2>/dev/null && return
  tail -n 5 "$WORK/logs/$1.log" >&2
  die "$1 (pid ${PID[$1]}) has stopped; its log's tail is above ($(log_of "$1"))"
}

# wait_until NAME SECONDS WHAT PROBE...: run PROBE every 0.1 s until it succeeds; fail with the
# tail of NAME's log if NAME exits first, or SECONDS pass ("NAME did not WHAT within SECONDS s").
wait_until() {
  local name=$1 seconds=$2 what=$3
  shift 3
  for _ in $(seq $((seconds * 10))); do
    kill -0 "${PID[$name]}" 2>/dev/null || {
      tail -n 20 "$WORK/logs/$name.log" >&2
      die "$name exited during start-up (log: $(log_of "$name"))"
    }
    "$@" && return
    sleep 0.1
  done
  tail -n 20 "$WORK/logs/$name.log" >&2
  die "$name did not $what within $seconds s (log: $(log_of "$name"))"
}

# ---------------------------------------------------------------------------------------------
# Tools. Nothing is assumed to be installed: what is missing comes from Debian's packages.
APT_UPDATED=0
apt_update() {
  say "apt-get update"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  APT_UPDATED=1
}

apt_install() {
  command -v apt-get >/dev/null || die "missing $*, and this is not a Debian-like system: install them by hand"
  ((APT_UPDATED)) || apt_update
  say "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# need COMMAND[:PACKAGE,...]...: installs the packages of the commands that are missing (by
# default the package of the command's name), each package once.
need() {
  local c pkgs missing=()
  for c in "$@"; do
    command -v "${c%%:*}" >/dev/null && continue
    IFS=, read -r -a pkgs <<<"${c#*:}"
    missing+=("${pkgs[@]}")
  done
  # shellcheck disable=SC2046 # one word per package
  ((${#missing[@]} == 0)) || apt_install $(printf '%s\n' "${missing[@]}" | sort -u)
}

# ---------------------------------------------------------------------------------------------
# Measurement.

# This machine may be shared. Before each run, wait until everything together uses under 10% of
# a core over one second (the benchmark's own servers are idle then): up to 60 s, or 10 s once a
# wait has timed out. (The two copies disagreed:
# bench/run.sh's always waited up to 60 s, so a machine that stays busy added a minute to every
# run.) That does not make the run itself quiet: the reports check each run and flag it.
QUIET_WAIT=60
busy_now() { # CPU used by everything over one second, in % of one core
  local a b
  a=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat)
  sleep 1
  b=$(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat)
  echo $(((b - a) * 100 / $(getconf CLK_TCK)))
}

wait_quiet() {
  local busy deadline=$((SECONDS + QUIET_WAIT)) said=0
  while busy=$(busy_now) && ((busy > 10 && SECONDS < deadline)); do
    ((said)) || warn "other processes use ${busy}% of a core: waiting up to ${QUIET_WAIT} s for them to finish"
    said=1
  done
  if ((busy > 10)); then
    warn "still ${busy}% busy: measuring anyway; the report will flag this run"
    QUIET_WAIT=10
  else
    QUIET_WAIT=60
  fi
}

cores() { # cpuN busy total irq: user+nice+system+irq+softirq, that plus idle+iowait+steal, irq+softirq
  awk '/^cpu[0-9]+ / {busy = $2 + $3 + $4 + $7 + $8; print $1, busy, busy + $5 + $6 + $9, $7 + $8}' /proc/stat
}

# proctree NAME=PID...: per process tree, "NAME ticks rss_kib pss_kib processes fds pipes
# sockets" (bench/proctree.py). The one way both benchmarks count a process's CPU: its ticks
# include its threads, its live descendants and the children it has reaped. (bench/run.sh's
# own copy summed utime + stime of the process and its live children only, so the time of a
# child reaped between two samples was lost.)
proctree() { python3 "$ROOT/bench/proctree.py" "$@"; }

# ---------------------------------------------------------------------------------------------
# The report.
quoted() { # a command line as one would type it
  local a line=""
  for a in "$@"; do
    [[ $a == *' '* ]] && a="'$a'"
    line+="${line:+ }$a"
  done
  echo "$line"
}

# commit_id [DIR]: HEAD's short id, and "+ uncommitted changes" (in DIR/, if given) when the
# working tree (or DIR) differs from it.
commit_id() {
  local id
  id=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  git -C "$ROOT" diff --quiet HEAD -- "$@" 2>/dev/null || id+=" + uncommitted changes${1:+ in $1/}"
  echo "$id"
}

# meta_machine: the meta.tsv lines every report reads (bench/benchlib.py): the machine, the
# command, the systems and rounds.
meta_machine() {
  printf 'date\t%s\n' "$STARTED"
  printf 'cpu\t%s\n' "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  printf 'cores\t%s\n' "$(nproc)"
  printf 'kernel\t%s\n' "$(uname -sr)"
  printf 'memory\t%s MiB\n' "$(awk '/^MemTotal/ {print int($2 / 1024); exit}' /proc/meminfo)"
  printf 'command\t%s\n' "$(command_line)"
  printf 'systems\t%s\n' "${SYSTEMS[*]}"
  printf 'rounds\t%s\n' "$ROUNDS"
}

# meta_common: meta_machine, and how a load test was made and pinned (bench/run.sh and
# bench/relay/run.sh).
meta_common() {
  meta_machine
  printf 'duration\t%s\n' "$DURATION"
  printf 'warmup\t%s\n' "$WARMUP"
  printf 'pinning\t%s\n' "$( ((PIN)) && echo "proxies on CPU $PROXY_CPU; $LOAD_SIDE on CPU $LOAD_CPU" || echo "none")"
  printf 'proxy_cpu\t%s\n' "$PROXY_CPU"
  printf 'load_cpu\t%s\n' "$LOAD_CPU"
  printf 'clk_tck\t%s\n' "$(getconf CLK_TCK)"
}
