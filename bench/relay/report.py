#!/usr/bin/env python3
"""Turn the raw results of bench/relay/run.sh into the Markdown report (.bench/relay-results.md).

Reads WORK/meta.tsv (machine, versions, commands), WORK/ferry-metrics.txt, WORK/logs/ and, for
every test, system and round, WORK/runs/TEST/SYSTEM/ROUND.*:

  .out     the load tool's output: iperf3's JSON, or tcpload's key=value line(s)
  .time    "load REAL USER SYS" (bash's `time` around the load tool)
  .before  "proxy ..." and "upstream ..." lines of proctree.py (CPU ticks, memory, descriptors),
  .after   and "cpuN busy total irq" per core from /proc/stat, around the run
  .failed  present if the load tool failed
  idle runs also: .drain (seconds until the proxy had closed every connection), .closewait
  slow runs: .before (proctree), .held (1 s after the last client sent its byte) and .after
           (HOLD s later), both with the load tool, the echo server and /proc/stat's cores;
           .hold (seconds between the two), .honest (tcpload connrtt during the attack), .drain

Each figure is the median over the rounds that did not fail. "Others' CPU" is the most CPU (in %
of one core, worst round) used by processes that are not part of the benchmark: busy time of all
cores, less interrupts, the proxy, the upstream server and the load tool; above 10% of a core the
run is flagged as disturbed, as bench/report.py does. Per-core load is shown because a proxy is
only measured when its core is the full one.

Usage: report.py WORK_DIR    (Markdown on stdout)
       report.py --one RUN CLK_TCK PROXY_CPU LOAD_CPU
                             (one line about one run, RUN = WORK/runs/TEST/SYSTEM/ROUND;
                             PROXY_CPU "-" when not pinned)
"""

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for benchlib
from benchlib import (DISTURBED, Report, core_use, cpu_seconds, fmt, med, others_cpu,  # noqa: E402
                      pinned_cores, ratio, read_meta, read_sample, read_time)

LABEL = {"direct": "direct (no proxy)", "ferry": "ferry-relay", "haproxy": "HAProxy",
         "socat": "socat"}
THROUGHPUT = {
    "up1": "1 stream, client -> upstream",
    "up8": "8 streams, client -> upstream",
    "down1": "1 stream, upstream -> client",
    "down8": "8 streams, upstream -> client",
}
# The goals of issue 3, for ferry-relay against HAProxy.
GOAL_THROUGHPUT = 1.2
GOAL_IDLE_KIB = 20.0
# Issue 11's: short connections/s at least HAProxy's; 1 stream at least 1.2x HAProxy's, at no
# more CPU per GB.
GOAL_RATE = 1.0


def keyvals(text: str, first: str) -> dict:
    for line in text.splitlines():
        if line.startswith(first + " "):
            return {k: v for k, _, v in (w.partition("=") for w in line.split()[1:])}
    return {}


class Run:
    """One measured run, with what was derived from it."""

    def __init__(self, prefix: Path, clk: int, proxy_cpu: str | None, load_cpu: str | None):
        self.prefix = prefix
        self.test = prefix.parent.parent.name
        self.failed = prefix.with_suffix(".failed").exists() or not prefix.with_suffix(".out").exists()
        self.out = prefix.with_suffix(".out").read_text() if not self.failed else ""
        self.figures: dict = {}
        if self.test == "idle":
            self.others, self.pcore, self.lcore = 0.0, None, None
            self._idle()
            return
        if self.test == "slow":
            self.others, self.pcore, self.lcore = 0.0, None, None
            self._slow(clk)
            return
        before, after = read_sample(prefix.with_suffix(".before")), read_sample(prefix.with_suffix(".after"))
        real, user, sys_ = read_time(prefix.with_suffix(".time"))
        self.real = real
        proxy = cpu_seconds(before, after, "proxy", clk)
        upstream = cpu_seconds(before, after, "upstream", clk)
        self.proxy_cpu_s = proxy
        self.proxy_cpu = 100 * proxy / real if real else 0
        self.others = others_cpu(before, after, clk, proxy + upstream + user + sys_, real)
        self.pcore = self.lcore = None
        if proxy_cpu and proxy_cpu in after:
            self.pcore, self.lcore = core_use(before, after, proxy_cpu), core_use(before, after, load_cpu)
        if not self.failed:
            self._parse()

    def _parse(self):
        f = self.figures
        if self.test in THROUGHPUT:
            end = json.loads(self.out)["end"]
            f["bytes"] = end["sum_received"]["bytes"]
            f["gbps"] = end["sum_received"]["bits_per_second"] / 1e9
            f["retransmits"] = end.get("sum_sent", {}).get("retransmits", 0)
            f["cpu_per_gb"] = self.proxy_cpu_s / (f["bytes"] / 1e9) if f["bytes"] else None
            f["errors"] = 0
        elif self.test == "rate":
            kv = keyvals(self.out, "rate")
            f["rate"] = float(kv["per_second"])
            f["errors"] = int(kv["errors"])
            f["error_kinds"] = {k: int(kv[k]) for k in ("connect_errors", "resets", "short")}
            f["p50"], f["p99"] = float(kv["p50_us"]), float(kv["p99_us"])
            f["cpu_per_kconn"] = (self.proxy_cpu_s / int(kv["connections"]) * 1e3 * 1e3
                                  if int(kv["connections"]) else None)  # ms per 1,000 connections
        else:
            kv = keyvals(self.out, self.test)
            f["p50"], f["p99"], f["p999"] = (float(kv[k]) for k in ("p50_us", "p99_us", "p999_us"))
            f["errors"] = 0

    def _idle(self):
        f = self.figures
        if self.failed:
            return
        ready = keyvals(self.out, "ready")
        end = keyvals(self.out, "end")
        before = read_sample(self.prefix.with_suffix(".before"))["proxy"]
        after = read_sample(self.prefix.with_suffix(".after"))["proxy"]
        n = int(ready["established"])
        f["n"] = n
        f["failed_to_open"] = int(ready["failed"])
        f["rss"] = (after[1] - before[1]) / n if n else None
        f["pss"] = (after[2] - before[2]) / n if n else None
        f["rss_total_mib"] = after[1] / 1024
        f["procs"] = after[3]
        f["fds"] = after[4]
        # Pipes opened while the connections were open; what the process held before (a pooled
        # pipe, HAProxy's poller wake-up pipe) does not count.
        f["pipes"] = after[5] - before[5]
        f["alive"] = int(end.get("alive", -1))
        f["closed"] = int(end.get("closed", -1))
        drain = self.prefix.with_suffix(".drain").read_text().split("\n", 1)
        f["drain_s"] = float(drain[0])
        f["drain_note"] = drain[1].strip() if len(drain) > 1 else ""
        f["closewait"] = int(self.prefix.with_suffix(".closewait").read_text().strip() or 0)
        f["errors"] = f["failed_to_open"] + max(0, f["closed"])


    def _slow(self, clk: int):
        f = self.figures
        if self.failed:
            return
        ready = keyvals(self.out, "ready")
        end = keyvals(self.out, "end")
        before = read_sample(self.prefix.with_suffix(".before"))
        held = read_sample(self.prefix.with_suffix(".held"))
        after = read_sample(self.prefix.with_suffix(".after"))
        hold = float(self.prefix.with_suffix(".hold").read_text())
        f["opened"] = int(ready["opened"])
        f["failed_to_open"] = int(ready["failed"])
        for k in ("waiting", "answered", "closed", "reset"):
            f[k] = int(end.get(k, -1))
        f["take_cpu"] = cpu_seconds(before, held, "proxy", clk)
        f["hold_cpu"] = cpu_seconds(held, after, "proxy", clk)
        f["fds"] = after["proxy"][4] - before["proxy"][4]
        f["rss_mib"] = (after["proxy"][1] - before["proxy"][1]) / 1024
        ours = sum(cpu_seconds(held, after, n, clk) for n in ("proxy", "load", "upstream"))
        self.others = others_cpu(held, after, clk, ours, hold)
        honest = self.prefix.with_suffix(".honest")
        kv = keyvals(honest.read_text(), "connrtt") if honest.exists() else {}
        f["honest_p50"] = float(kv["p50_us"]) if kv else None
        f["honest_p99"] = float(kv["p99_us"]) if kv else None
        drain = self.prefix.with_suffix(".drain").read_text().split("\n", 1)
        f["drain_s"] = float(drain[0])
        f["drain_note"] = drain[1].strip() if len(drain) > 1 else ""
        f["errors"] = f["failed_to_open"]


def one_line(run: Run) -> str:
    f = run.figures
    if run.failed:
        return "FAILED (see .err/.out)"
    if run.test in THROUGHPUT:
        cpu = f"{f['cpu_per_gb']:.2f} CPU s/GB" if f.get("cpu_per_gb") else "no proxy"
        return f"{f['gbps']:.2f} Gbit/s, {cpu}{core_note(run)}"
    if run.test == "rate":
        return f"{f['rate']:,.0f} connections/s, {f['errors']} errors{core_note(run)}"
    if run.test == "idle":
        return (f"{f['rss']:.1f} KiB RSS per connection ({f['pss']:.1f} KiB PSS), "
                f"{f['pipes']:.0f} pipes opened, closed in {f['drain_s']:.1f} s")
    if run.test == "slow":
        return (f"{f['take_cpu']:.2f} CPU s to take them, {f['hold_cpu']:.2f} s to hold them, "
                f"{f['fds']:,} descriptors, {f['waiting']:,} still waiting, "
                f"{f['answered']:,} passed on")
    return f"p50 {f['p50']:.0f} us, p99 {f['p99']:.0f} us"


def core_note(run: Run) -> str:
    if run.pcore is None:
        return ""
    return f" (proxy core {run.pcore:.0f}%, load core {run.lcore:.0f}%, others {run.others:.0f}%)"


def main() -> None:
    if sys.argv[1] == "--one":
        prefix, clk, proxy_cpu, load_cpu = sys.argv[2:6]
        print(one_line(Run(Path(prefix), int(clk), f"cpu{proxy_cpu}" if proxy_cpu != "-" else None,
                           f"cpu{load_cpu}")))
        return

    work = Path(sys.argv[1])
    meta = read_meta(work / "meta.tsv")
    clk = int(meta["clk_tck"])
    proxy_cpu, load_cpu = pinned_cores(meta)
    pinned = proxy_cpu is not None
    systems = meta["systems"].split()

    runs: dict[tuple[str, str], list[Run]] = {}
    for test_dir in sorted((work / "runs").iterdir()):
        for sys_dir in sorted(test_dir.iterdir()):
            # A run without its .after sample was cut off (Ctrl-C): it has no figures.
            done = [*sys_dir.glob("*.after"), *sys_dir.glob("*.failed")]
            prefixes = sorted({p.with_suffix("") for p in done}, key=lambda p: int(p.name))
            runs[(test_dir.name, sys_dir.name)] = [Run(p, clk, proxy_cpu, load_cpu) for p in prefixes]

    def good(test, s):
        return [r for r in runs.get((test, s), []) if not r.failed]

    def median_of(test, s, key):
        return med([r.figures.get(key) for r in good(test, s)])

    report = Report("ferry-relay benchmark results", f"Started {meta['date']}: `{meta['command']}`.", meta)
    w = report.w
    disturbed = report.disturbed
    notes: list[str] = []
    report.machine()
    w(f"| ferry-relay | {meta['ferry']} |")
    w(f"| HAProxy | {meta['haproxy']} (Debian) |")
    w(f"| socat | {meta['socat']} (Debian) |")
    w(f"| iperf3 | {meta['iperf3']} (Debian) |")
    w(f"| Echo server, load tool | bench/relay/echo.c, bench/relay/tcpload.c, {meta['gcc']} -O2 |")
    w(f"| Pinning | {meta['pinning']} |")
    w(f"| Rounds | {meta['rounds']} per test and system, alternated (each round starts with the "
      f"next system); {meta['duration']} s per throughput and rate run after a {meta['warmup']} s "
      "warm-up; figures are medians over rounds |")
    w(f"| Network | a network namespace of its own, loopback only; {meta['sysctls']} |")
    w("")
    w("| Process | Command |\n|---|---|")
    w(f"| ferry-relay | `{meta['cmd_ferry']}` |")
    w(f"| HAProxy | `{meta['cmd_haproxy']}` |")
    w(f"| socat | `{meta['cmd_socat']}` |")
    for t in ("up1", "up8", "down1", "down8", "rate", "rtt", "connrtt", "idle", "slow"):
        if "cmd_" + t in meta:
            w(f"| {t} | `{meta['cmd_' + t]}` |")
    w("")

    def flags(test, s):
        rs = runs.get((test, s), [])
        worst = max((r.others for r in rs if r.test != "idle"), default=0)
        if worst > DISTURBED:
            disturbed.append(f"{test}/{s}")
        return worst

    def core_cols(test, s):
        rs = good(test, s)
        if not pinned or not rs:
            return ""
        pc, lc = med([r.pcore for r in rs]), med([r.lcore for r in rs])
        if s != "direct" and pc is not None and pc < 90:
            if lc is not None and lc >= 95:
                why = ("the load side (iperf3 or tcpload and the upstream server) was the limit, so "
                       "this is a lower bound of what the proxy can do")
            else:
                why = ("neither core was full: the proxy spent part of the time waiting on one side "
                       "or the other (a per-round-trip limit, not a CPU one)")
            notes.append(f"{test}, {LABEL[s]}: the proxy's core was {pc:.0f}% busy, the load core "
                         f"{lc:.0f}%: {why}.")
        return f" {fmt(pc, '.0f')}% | {fmt(lc, '.0f')}% |"

    def failures(test, s):
        return sum(1 for r in runs.get((test, s), []) if r.failed)

    head_core = " Proxy core | Load core |" if pinned else ""
    rule_core = "---:|---:|" if pinned else ""

    # Throughput.
    w("## Throughput (iperf3)\n")
    w("Gbit/s as iperf3's receiver counted it. CPU s/GB: the proxy process's user + system CPU "
      "seconds (socat: with its children) per 10^9 bytes forwarded.\n")
    w("| Test | System | Gbit/s | By round | CPU s/GB | Proxy CPU |" + head_core
      + " Others' CPU | Failed runs |")
    w("|---|---|---:|---|---:|---:|" + rule_core + "---:|---:|")
    for test, title in THROUGHPUT.items():
        for s in ["direct"] + systems:
            rs = good(test, s)
            if not runs.get((test, s)):
                continue
            by_round = ", ".join(fmt(r.figures.get("gbps"), ".2f") for r in rs)
            cpu = median_of(test, s, "cpu_per_gb") if s != "direct" else None
            pcpu = med([r.proxy_cpu for r in rs]) if s != "direct" else None
            w(f"| {title} | {LABEL[s]} | {fmt(median_of(test, s, 'gbps'), '.2f')} | {by_round} | "
              f"{fmt(cpu, '.2f', '-')} | {fmt(pcpu, '.0f', '-')}{'' if pcpu is None else '%'} |"
              f"{core_cols(test, s)} {flags(test, s):.0f}% | {failures(test, s)} |")
    w("")

    # Connection rate.
    w("## Short connections\n")
    w(f"{meta['concurrency']} connections in flight; each: connect, 16 bytes echoed, close "
      "(the client closes first). Connection time: from connect() to the echo, under that load.\n")
    w("| System | Connections/s | By round | Connection time p50 | p99 | Proxy CPU per 1,000 "
      "connections |" + head_core + " Others' CPU | Errors |")
    w("|---|---:|---|---:|---:|---:|" + rule_core + "---:|---:|")
    for s in ["direct"] + systems:
        rs = good("rate", s)
        if not runs.get(("rate", s)):
            continue
        by_round = ", ".join(fmt(r.figures.get("rate")) for r in rs)
        errors = sum(r.figures.get("errors", 0) for r in rs)
        kinds = {}
        for r in rs:
            for k, v in r.figures.get("error_kinds", {}).items():
                kinds[k] = kinds.get(k, 0) + v
        if errors:
            notes.append(f"rate, {LABEL[s]}: {errors} failed connections over all rounds ("
                         + ", ".join(f"{k} {v}" for k, v in kinds.items() if v) + ").")
        cpu = median_of("rate", s, "cpu_per_kconn") if s != "direct" else None
        w(f"| {LABEL[s]} | {fmt(median_of('rate', s, 'rate'))} | {by_round} | "
          f"{fmt(median_of('rate', s, 'p50'), '.0f')} us | {fmt(median_of('rate', s, 'p99'), '.0f')} us | "
          f"{fmt(cpu, '.1f', '-')}{'' if cpu is None else ' ms'} |{core_cols('rate', s)} "
          f"{flags('rate', s):.0f}% | {errors + failures('rate', s)} |")
    w("")

    # Latency.
    w("## Latency\n")
    w("Round trip of 64 bytes through the proxy to the echo server and back, one at a time "
      "(after 1,000 unmeasured ones); and a new connection each time: connect, one round trip, "
      "close. \"Added\" is the proxy's figure less the direct one (medians over rounds).\n")
    w("| System | Round trip p50 | p99 | Added p50 | Added p99 | New connection p50 | p99 | "
      "Added p50 | Added p99 | Others' CPU |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    d = {k: (median_of("rtt", "direct", k), median_of("connrtt", "direct", k)) for k in ("p50", "p99")}
    for s in ["direct"] + systems:
        if not runs.get(("rtt", s)):
            continue
        row = []
        for test, i in (("rtt", 0), ("connrtt", 1)):
            p50, p99 = median_of(test, s, "p50"), median_of(test, s, "p99")
            row += [f"{fmt(p50, '.0f')} us", f"{fmt(p99, '.0f')} us"]
            if s == "direct":
                row += ["-", "-"]
            else:
                row += [f"{fmt(p50 - d['p50'][i] if p50 and d['p50'][i] else None, '+.0f')} us",
                        f"{fmt(p99 - d['p99'][i] if p99 and d['p99'][i] else None, '+.0f')} us"]
        worst = max(flags("rtt", s), flags("connrtt", s))
        w(f"| {LABEL[s]} | " + " | ".join(row) + f" | {worst:.0f}% |")
    w("")

    # Idle connections.
    w("## Idle connections\n")
    n_note = ""
    if meta["idle"] != meta["idle_wanted"]:
        n_note = (f" ({meta['idle_wanted']} were asked for, but `ulimit -n` cannot go above "
                  f"{meta['fd_limit']} here, and a proxy needs two descriptors per connection; "
                  f"HAProxy also two per pipe, maxpipes {meta['maxpipes']})")
    w(f"{meta['idle']} connections{n_note} opened through the proxy to the echo server, each "
      "after one 16-byte round trip, then held. Each round starts a fresh proxy process, warmed up "
      "by one connection (an allocator keeps what it once held, so a process that already had "
      "these connections open would not grow again). Memory is the proxy's (socat: with all its "
      "children) growth over that start, divided by the connections; RSS as `ps` counts it, "
      "PSS with shared pages split between processes (what matters for socat's thousands of "
      "children). Neither counts kernel memory (sockets, pipes); pipes opened while the "
      "connections were held are counted (idle connections should hold none). "
      "Still open: connections the client found neither closed nor reset when it ended the "
      "hold. Closed in: from the client closing all of them to the proxy holding none.\n")
    w("| System | Connections | RSS per connection | PSS per connection | RSS total | Processes | "
      "Pipes opened | Still open | Closed in | CLOSE_WAIT after |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in systems:
        rs = good("idle", s)
        if not rs:
            if runs.get(("idle", s)):
                w(f"| {LABEL[s]} | failed | | | | | | | | |")
            continue
        f = lambda k: med([r.figures.get(k) for r in rs])  # noqa: E731
        still = ", ".join(f"{r.figures['alive']:,}" for r in rs)
        w(f"| {LABEL[s]} | {fmt(f('n'))} | {fmt(f('rss'), '.1f')} KiB | {fmt(f('pss'), '.1f')} KiB | "
          f"{fmt(f('rss_total_mib'), ',.0f')} MiB | {fmt(f('procs'))} | {fmt(f('pipes'), ',.0f')} | {still} | "
          f"{fmt(f('drain_s'), '.1f')} s | {max(r.figures['closewait'] for r in rs)} |")
        for r in rs:
            if r.figures["drain_note"]:
                notes.append(f"idle, {LABEL[s]}, round {r.prefix.name}: {r.figures['drain_note']}")
            if r.figures["failed_to_open"] or r.figures["closed"]:
                notes.append(f"idle, {LABEL[s]}, round {r.prefix.name}: {r.figures['failed_to_open']} "
                             f"connections failed to open, {r.figures['closed']} were closed or reset "
                             "during the hold.")
    w("")

    # The one-byte slow-client attack.
    slow_systems = [s for s in ("ferry", "haproxy") if runs.get(("slow", s))]
    if slow_systems:
        w("## One-byte slow clients\n")
        n_note = ""
        if meta["slow"] != meta["slow_wanted"]:
            n_note = f" ({meta['slow_wanted']} were asked for; `ulimit -n` allows {meta['slow']})"
        w(f"{int(meta['slow']):,} clients{n_note}, from 32 loopback addresses, each connect to the "
          "proxy's `slow` listener, send \"P\" (the first byte of a PROXY v1 signature) and stop. "
          "Both proxies trust PROXY headers only from 10.255.0.0/16 (none of the clients), so each "
          "waits up to 30 s for the bytes that tell whether a client opens with a PROXY header, "
          f"under the same limits: max_connections {int(meta['slow_maxconn']):,} (HAProxy: the "
          "frontend's maxconn), max_per_ip 256 (HAProxy: a stick table of open connections per "
          f"source); neither is reached ({-(-int(meta['slow']) // 32)} clients per address at "
          "most). Each round starts a fresh proxy "
          "process. Taking them: the proxy's CPU from before the first client to 1 s after the "
          f"last had sent its byte; holding them: its CPU over the next {meta['hold']} s. "
          "Descriptors and memory (RSS): what the proxy holds then, over what it held before. "
          "Still waiting / passed on: what each client found at the end (nothing back yet / its "
          "byte echoed: the proxy stopped waiting and forwarded it); refused: closed or reset. "
          "Honest clients: 200 connections one at a time (connect, 64-byte round trip, close) "
          "during the attack. Closed in: from the clients closing to the proxy holding none.\n")
        w("| System | Clients | Still waiting | Passed on | Refused | CPU to take them | "
          "CPU to hold them | Descriptors held | Memory | Honest client p50 | p99 | Closed in | "
          "Others' CPU |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for s in slow_systems:
            rs = good("slow", s)
            if not rs:
                w(f"| {LABEL[s]} | failed | | | | | | | | | | | |")
                continue
            f = lambda k: med([r.figures.get(k) for r in rs])  # noqa: E731
            refused = med([r.figures["closed"] + r.figures["reset"] for r in rs])
            worst = max(r.others for r in rs)
            if worst > DISTURBED:
                disturbed.append(f"slow/{s}")
            w(f"| {LABEL[s]} | {fmt(f('opened'))} | {fmt(f('waiting'))} | {fmt(f('answered'))} | "
              f"{fmt(refused)} | {fmt(f('take_cpu'), '.2f')} s | {fmt(f('hold_cpu'), '.2f')} s | "
              f"{fmt(f('fds'))} | {fmt(f('rss_mib'), '.1f')} MiB | {fmt(f('honest_p50'), '.0f')} us | "
              f"{fmt(f('honest_p99'), '.0f')} us | {fmt(f('drain_s'), '.1f')} s | {worst:.0f}% |")
            for r in rs:
                if r.figures["drain_note"]:
                    notes.append(f"slow, {LABEL[s]}, round {r.prefix.name}: {r.figures['drain_note']}")
                if r.figures["failed_to_open"]:
                    notes.append(f"slow, {LABEL[s]}, round {r.prefix.name}: "
                                 f"{r.figures['failed_to_open']} clients failed to connect or send.")
        by_round = "; ".join(
            f"{LABEL[s]} " + ", ".join(f"{r.figures['take_cpu']:.2f}/{r.figures['hold_cpu']:.2f} s, "
                                        f"{r.figures['fds']:,} descriptors" for r in good("slow", s))
            for s in slow_systems)
        w(f"\nBy round (CPU to take/hold): {by_round}.\n")

    # Goals.
    if "ferry" in systems and "haproxy" in systems:
        w("## Goals of issue 3 (ferry-relay against HAProxy)\n")
        w("| Goal | Measured | Met |\n|---|---|---|")
        for test, title in THROUGHPUT.items():
            fg, hg = median_of(test, "ferry", "gbps"), median_of(test, "haproxy", "gbps")
            ok = fg is not None and hg and fg / hg >= GOAL_THROUGHPUT
            w(f"| Throughput >= {GOAL_THROUGHPUT}x HAProxy, {title} | {fmt(fg, '.2f')} vs "
              f"{fmt(hg, '.2f')} Gbit/s: **{ratio(fg, hg)}** | {'yes' if ok else 'no'} |")
        for test, title in THROUGHPUT.items():
            fc, hc = median_of(test, "ferry", "cpu_per_gb"), median_of(test, "haproxy", "cpu_per_gb")
            ok = fc is not None and hc is not None and fc <= hc
            w(f"| CPU per GB <= HAProxy's, {title} | {fmt(fc, '.2f')} vs {fmt(hc, '.2f')} CPU s/GB: "
              f"**{ratio(fc, hc)}** | {'yes' if ok else 'no'} |")
        fr, hr = median_of("rate", "ferry", "rate"), median_of("rate", "haproxy", "rate")
        ok = fr is not None and hr and fr >= hr
        w(f"| Connection rate >= HAProxy's | {fmt(fr)} vs {fmt(hr)} connections/s: "
          f"**{ratio(fr, hr)}** | {'yes' if ok else 'no'} |")
        fi = med([r.figures.get("rss") for r in good("idle", "ferry")])
        ok = fi is not None and fi < GOAL_IDLE_KIB
        w(f"| Under {GOAL_IDLE_KIB:.0f} KiB per idle connection | {fmt(fi, '.1f')} KiB RSS "
          f"(HAProxy {fmt(med([r.figures.get('rss') for r in good('idle', 'haproxy')]), '.1f')} KiB) | "
          f"{'yes' if ok else 'no'} |")
        w("")
        w("## Goals of issue 11 (ferry-relay against HAProxy)\n")
        w("| Goal | Measured | Met |\n|---|---|---|")
        ok = fr is not None and hr and fr / hr >= GOAL_RATE
        w(f"| Short connections/s >= {GOAL_RATE}x HAProxy's | {fmt(fr)} vs {fmt(hr)}: "
          f"**{ratio(fr, hr)}** | {'yes' if ok else 'no'} |")
        for test in ("up1", "down1"):
            fg, hg = median_of(test, "ferry", "gbps"), median_of(test, "haproxy", "gbps")
            fc, hc = median_of(test, "ferry", "cpu_per_gb"), median_of(test, "haproxy", "cpu_per_gb")
            ok = (fg is not None and hg and fg / hg >= GOAL_THROUGHPUT and fc is not None
                  and hc is not None and fc <= hc)
            w(f"| {THROUGHPUT[test]}: >= {GOAL_THROUGHPUT}x HAProxy's Gbit/s at no more CPU per GB | "
              f"{fmt(fg, '.2f')} vs {fmt(hg, '.2f')} Gbit/s (**{ratio(fg, hg)}**), {fmt(fc, '.2f')} vs "
              f"{fmt(hc, '.2f')} CPU s/GB (**{ratio(fc, hc)}**) | {'yes' if ok else 'no'} |")
        fs, hs = good("slow", "ferry"), good("slow", "haproxy")
        if fs and hs:
            fig = lambda rs, k: med([r.figures.get(k) for r in rs])  # noqa: E731
            w(f"| A figure for {int(meta['slow']):,} one-byte slow clients | ferry-relay "
              f"{fmt(fig(fs, 'take_cpu'), '.2f')} + {fmt(fig(fs, 'hold_cpu'), '.2f')} CPU s, "
              f"{fmt(fig(fs, 'fds'))} descriptors; HAProxy {fmt(fig(hs, 'take_cpu'), '.2f')} + "
              f"{fmt(fig(hs, 'hold_cpu'), '.2f')} CPU s, {fmt(fig(hs, 'fds'))} descriptors | yes |")
        w("")

    # What the proxies said.
    w("## Counters and logs\n")
    metrics = work / "ferry-metrics.txt"
    if metrics.exists():
        keep = [line for line in metrics.read_text().splitlines()
                if line and not line.startswith("#") and not re.search(r"\s0$", line)]
        w("ferry-relay's non-zero metrics after the throughput, rate and latency tests (its "
          "process is restarted for each idle round):\n")
        w("```")
        w("\n".join(keep) if keep else "(none)")
        w("```\n")
    for name in ("ferry", "haproxy", "socat_bulk", "socat_echo", "iperf3", "echo"):
        log = work / "logs" / f"{name}.log"
        if not log.exists():
            continue
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in log.read_text(errors="replace").splitlines()]
        odd = [line for line in lines if re.search(r"WARN|ERROR|ALERT|error|E socat|fail", line)]
        if odd:
            why = ""
            if name == "iperf3":
                why = (" (expected: each start of ferry-relay makes one health-check connection, "
                       "connect and close, to its upstreams at once, which iperf3 takes for a "
                       "client that failed to send its parameters)")
            w(f"{name}'s log: {len(odd)} warning or error lines{why}; the first ones:\n")
            w("```")
            w("\n".join(line[:300] for line in odd[:8]))
            w("```\n")
    if not any((work / "logs" / f"{n}.log").exists() for n in ("ferry",)):
        w("(ferry-relay was not run)\n")

    for n in notes:
        w(f"Note: {n}\n")
    print(report.text(see="the Others' CPU columns"))


if __name__ == "__main__":
    main()
