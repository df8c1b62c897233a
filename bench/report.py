#!/usr/bin/env python3
"""Turn the raw results of bench/run.sh into the Markdown report (.bench/results.md).

Reads WORK/meta.tsv (machine, versions, command), WORK/pages/pages.tsv, WORK/engine.txt and,
for every page, system and round, WORK/runs/PAGE/SYSTEM/ROUND.wrk (wrk's output) with
ROUND.before/.after (/proc/stat per-core jiffies, the proxy's and the origin's CPU ticks around
that run) and ROUND.time (wrk's own CPU time); bench/benchlib.py reads these.

Each figure is the median over rounds, so one disturbed round moves nothing. "Others' CPU" is
the most CPU (in % of one core, the worst round) used by processes that are not part of the
benchmark: busy time of all cores, less interrupts, the proxy, the origin and wrk. It catches
builds and tests running beside the benchmark, not every interference (memory bandwidth, caches). Per-core load is
reported because a proxy is only measured if its core is the one that is full: when the load
core (wrk + origin) is full and the proxy's is not, the figure is wrk's limit, and it says so.

Usage: report.py WORK_DIR  (Markdown on stdout)
"""

import re
import sys
from pathlib import Path

from benchlib import (DISTURBED, Report, core_use, cpu_seconds, med, others_cpu, pinned_cores,
                      ratio, read_meta, read_sample, read_time)

LABEL = {"ferry": "Envoy + Ferry", "envoy": "Envoy, no filter", "nginx": "nginx sub_filter"}
# The goals for Ferry, per page: (x nginx req/s, x Envoy-no-filter req/s).
GOAL = {"small": (1.0, 0.8), "large": (2.0, 0.8)}
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def to_ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"unknown wrk time {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse_wrk(text: str) -> dict:
    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    if not rps or not p99:
        raise ValueError("no Requests/sec or 99% line in wrk's output")
    errors = 0
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if non2xx:
        errors += int(non2xx.group(1))
    return {"rps": float(rps.group(1)), "p99": to_ms(p99.group(1)), "errors": errors}


def fmt_ms(ms: float) -> str:
    return f"{ms:.2f} ms" if ms < 100 else f"{ms:.0f} ms"


def main() -> None:
    work = Path(sys.argv[1])
    meta = read_meta(work / "meta.tsv")
    rows = [line.split("\t") for line in (work / "pages" / "pages.tsv").read_text().splitlines() if line]
    pages = {row[0].removesuffix(".html"): row for row in rows}
    systems = meta["systems"].split()
    clk = int(meta["clk_tck"])
    proxy_cpu, load_cpu = pinned_cores(meta)
    pinned = proxy_cpu is not None

    report = Report("Ferry benchmark results",
                    f"Started {meta['date']}: `{meta['command']}`, commit {meta['commit']}.", meta)
    w = report.w
    if meta["checked"] != "yes":
        w("**Correctness was not checked (--no-check): figures of a proxy that does not rewrite "
          "mean nothing.**\n")
    report.machine()
    if "envoy" in meta:
        w(f"| Envoy | {meta['envoy']} |")
    w(f"| nginx | {meta['nginx']} |")
    w(f"| wrk | {meta['wrk']} |")
    w(f"| Load | `{meta['wrk_cmd']}` |")
    w(f"| Pinning | {meta['pinning']} |")
    w(f"| Rounds | {meta['rounds']} per system and page, alternated ({', '.join(systems)}, ...), "
      f"after a {meta['warmup']} s warm-up each; figures are medians over rounds |")
    if meta.get("wasm"):
        w(f"| Ferry .wasm | {meta['wasm']} |")
    w(f"| Correctness checked | {meta['checked']} |")
    w("")

    w("## Pages\n")
    w(f"Real HTML from {meta['pages_source']} (the Python documentation), made to look like an "
      "origin at https://www.example.com that uses absolute links (bench/pages.py).\n")
    w("| Page | Bytes | `example.com` occurrences | Links made absolute | Made of |")
    w("|---|---:|---:|---:|---|")
    for name, row in pages.items():
        w(f"| {name}.html | {int(row[1]):,} | {int(row[2]):,} | {int(row[3]):,} | {row[4]} |")
    w("")

    medians = {}
    w("## Requests/s and p99 latency\n")
    for page in pages:
        size = int(pages[page][1])
        w(f"### {page}.html ({size:,} bytes)\n")
        head = "| System | Requests/s | p99 | Page MB/s | Requests/s by round | Proxy CPU |"
        rule = "|---|---:|---:|---:|---|---:|"
        if pinned:
            head += " Proxy core busy | Load core busy |"
            rule += "---:|---:|"
        w(head + " Others' CPU | Errors |")
        w(rule + "---:|---:|")
        notes = []
        for s in systems:
            rundir = work / "runs" / page / s
            rounds = sorted(rundir.glob("*.wrk"), key=lambda p: int(p.stem))
            if not rounds:
                continue
            res, cpu, pcore, lcore, foreign = [], [], [], [], []
            for f in rounds:
                r = parse_wrk(f.read_text())
                before = read_sample(f.with_suffix(".before"))
                after = read_sample(f.with_suffix(".after"))
                secs = float(re.search(r"in ([0-9.]+)s,", f.read_text()).group(1))
                proxy = cpu_seconds(before, after, "proxy", clk)
                cpu.append(100.0 * proxy / secs)
                # CPU used by anything but the proxy, the origin and wrk.
                _, user, system = read_time(f.with_suffix(".time"))
                ours = proxy + cpu_seconds(before, after, "origin", clk) + user + system
                foreign.append(others_cpu(before, after, clk, ours, secs))
                if pinned:
                    pcore.append(core_use(before, after, proxy_cpu))
                    lcore.append(core_use(before, after, load_cpu))
                res.append(r)
            rps = med(r["rps"] for r in res)
            p99 = med(r["p99"] for r in res)
            errors = sum(r["errors"] for r in res)
            medians[(page, s)] = (rps, p99)
            by_round = ", ".join(f"{r['rps']:,.0f}" for r in res)
            line = (f"| {LABEL[s]} | {rps:,.0f} | {fmt_ms(p99)} | {rps * size / 1e6:,.1f} | "
                    f"{by_round} | {med(cpu):.0f}% |")
            if pinned:
                pc, lc = med(pcore), med(lcore)
                line += f" {pc:.0f}% | {lc:.0f}% |"
                if pc < 90:
                    notes.append(f"{LABEL[s]}: its core was only {pc:.0f}% busy (load core "
                                 f"{lc:.0f}%): the limit was elsewhere, most likely wrk and the "
                                 "origin, so this is a lower bound of what it can do.")
            worst = max(foreign)
            w(line + f" {worst:.0f}% | {errors} |")
            if worst > DISTURBED:
                report.disturbed.append(f"{page}.html/{s}")
                notes.append(f"{LABEL[s]}: other processes on this machine used up to {worst:.0f}% "
                             "of a core during its rounds: its figures are disturbed.")
        w("")
        for n in notes:
            w(f"Note: {n}\n")

    w("## Ratios (medians)\n")
    w("Goals from issue 2: Ferry at least 1.0x nginx on the small page and 2.0x on the large one, "
      "and at least 0.80x Envoy with no filter.\n")
    w("| Page | Ferry / nginx req/s | Ferry / Envoy-no-filter req/s | "
      "Ferry / nginx p99 | nginx / Envoy-no-filter req/s |")
    w("|---|---:|---:|---:|---:|")
    for page in pages:
        get = lambda s, i: medians.get((page, s), (None, None))[i]  # noqa: E731
        goal_n, goal_e = GOAL.get(page, (None, None))
        w(f"| {page}.html | {ratio(get('ferry', 0), get('nginx', 0))} (goal {goal_n:.1f}x) | "
          f"{ratio(get('ferry', 0), get('envoy', 0))} (goal {goal_e:.2f}x) | "
          f"{ratio(get('ferry', 1), get('nginx', 1))} | {ratio(get('nginx', 0), get('envoy', 0))} |")
    w("")

    w("## Rewrite engine, native (no Envoy)\n")
    engine = work / "engine.txt"
    w("```")
    w(engine.read_text().rstrip() if engine.exists() else "(not run)")
    w("```")
    print(report.text(see="the notes below"))


if __name__ == "__main__":
    main()
