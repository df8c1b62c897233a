#!/usr/bin/env python3
"""Turn the raw results of bench/wan/run.sh into the Markdown report (.bench/wan-results.md).

Reads WORK/meta.tsv (machine, versions, commands, link settings), WORK/logs/SCENARIO-link.log
(ferry-link's packet counters, printed when it stops) and WORK/runs/:

  SCENARIO/link-rtt.out                 `connect_ms=..` lines: TCP connects across the link
  SCENARIO/MEASURE/SYSTEM/ROUND.out     one `key=value ...` line per sample (an `error=` key
                                        when it failed):
      visit  bench/wan/visit.py: kind=new|return connect_ms tls_ms ttfb_ms total_ms status
             version reused bytes
      load   ferry-wan pageload: load_ms dcl_ms ttfb_ms protocol subresources failed
             console_errors protocols
      large  curl -w: code connect_s tls_s ttfb_s total_s bytes http
  SCENARIO/round-ROUND.before/.after    this script's process tree's CPU ticks (`bench ...`),
                                        the cores (/proc/stat), `clock_ms`
  idle/SYSTEM.before/.after             the us side's counters: link_rx/link_tx (packets,
                                        bytes), passive_opens (TCP connections accepted),
                                        clock_ms

Each figure is the median over rounds of each round's median (a returning visit counts only if
its TLS session was resumed; the report says how many were). Times are given in ms and in RTTs
of the scenario's link (the RTT asked of ferry-link, --rtt). "Others' CPU" is the most CPU (in %
of one core, the worst round) used by processes that are not part of the benchmark (busy time of
all cores, less interrupts, less this script's whole process tree); above 10% of a core the
scenario is flagged as disturbed, as the other benchmarks' reports do. Chromium's helper
processes die with the browser and are reaped by init, so they count as others: roughly 0.3 s
of CPU per page load (checked by hand), a few % of a core in a round.

Usage: report.py WORK_DIR             (Markdown on stdout)
       report.py --one RUN.out RTT_MS  (one line about one run, for the progress output)
       report.py --idle PREFIX         (one line about one idle window)
"""

import re
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # bench/, for benchlib
from benchlib import (DISTURBED, Report, fmt, med, others_cpu, read_meta,  # noqa: E402
                      read_sample)

LABEL = {"seed": "Seed (HAProxy + nginx)", "ferry": "Ferry", "ferry-pool": "Ferry + warm pool"}
SCENARIO = {"plain": "RTT only", "loss": "1% loss each way", "cap": "100 Mbit/s each way"}
# Issue 12's goals.
GOAL_POOL_TTFB_RTT = 2.3
GOAL_LOAD_X_SEED = 0.6
GOAL_LARGE_LOSS_X_SEED = 0.7


def samples(path: Path) -> list[dict]:
    """The `key=value` lines of a run's output."""
    if not path.exists():
        return []
    return [dict(w.split("=", 1) for w in line.split() if "=" in w)
            for line in path.read_text().splitlines() if "=" in line]


def num(s: dict, key: str, scale: float = 1.0) -> float | None:
    try:
        return float(s[key]) * scale
    except (KeyError, ValueError):
        return None


# What a sample contributes, per measure: (figure name, value or None).
def visit_new(s):
    return num(s, "ttfb_ms") if s.get("kind") == "new" and s.get("status") == "200" else None


def visit_return(s):
    ok = s.get("kind") == "return" and s.get("status") == "200" and s.get("reused") == "1"
    return num(s, "ttfb_ms") if ok else None


def load_ms(s):
    return num(s, "load_ms") if "error" not in s else None


def large_ms(s):
    return num(s, "total_s", 1e3) if s.get("code") == "200" else None


FIGURES = {"new": ("visit", visit_new), "return": ("visit", visit_return),
           "load": ("load", load_ms), "large": ("large", large_ms)}


class Results:
    """Every run of the benchmark, by scenario, measure, system and round."""

    def __init__(self, work: Path):
        self.work = work
        self.runs = work / "runs"
        self.meta = read_meta(work / "meta.tsv")
        self.rtt = float(self.meta["rtt_ms"])
        self.scenarios = self.meta["scenarios"].split()
        self.systems = self.meta["systems"].split()
        self.rounds = int(self.meta["rounds"])

    def lines(self, scen: str, measure: str, system: str) -> dict[int, list[dict]]:
        out = {}
        for r in range(1, self.rounds + 1):
            out[r] = samples(self.runs / scen / measure / system / f"{r}.out")
        return out

    def by_round(self, scen: str, figure: str, system: str) -> list[float]:
        """Each round's median of the figure (rounds without a value left out)."""
        measure, value = FIGURES[figure]
        meds = []
        for lines in self.lines(scen, measure, system).values():
            m = med([value(s) for s in lines])
            if m is not None:
                meds.append(m)
        return meds

    def figure(self, scen: str, figure: str, system: str) -> float | None:
        return med(self.by_round(scen, figure, system))

    def all_samples(self, scen: str, measure: str, system: str) -> list[dict]:
        return [s for lines in self.lines(scen, measure, system).values() for s in lines]


def ms_rtt(ms: float | None, rtt: float) -> str:
    return "n/a" if ms is None else f"{ms:,.0f} ms = {ms / rtt:.2f} RTT"


def x_seed(res: Results, scen: str, figure: str, system: str) -> float | None:
    a, b = res.figure(scen, figure, system), res.figure(scen, figure, "seed")
    return a / b if a is not None and b else None


def verdict(value: float | None, goal: float) -> str:
    if value is None:
        return "not measured"
    return "met" if value <= goal else "not met"


def link_counters(work: Path, scen: str) -> str:
    log = work / "logs" / f"{scen}-link.log"
    text = log.read_text() if log.exists() else ""
    parts = []
    for m in re.finditer(r"ferry-link: (\S+): (\d+) packets \((\d+) bytes\) delivered, (\d+) lost, "
                         r"(\d+) dropped", text):
        name, delivered, _, lost, dropped = m.groups()
        total = int(delivered) + int(lost) + int(dropped)
        share = 100 * int(lost) / total if total else 0
        parts.append(f"{name} {int(delivered):,} delivered, {int(lost):,} lost ({share:.2f}%), "
                     f"{int(dropped):,} dropped at the bottleneck")
    return "; ".join(parts) or "n/a (no counters in its log)"


def congestion(work: Path, scen: str) -> dict[str, str]:
    """The namespaces' default congestion control and those available, as run.sh wrote them."""
    path = work / "runs" / scen / "congestion.txt"
    lines = path.read_text().splitlines() if path.exists() else []
    return dict(line.split(" ", 1) for line in lines if " " in line)


def link_rtt(work: Path, scen: str) -> float | None:
    path = work / "runs" / scen / "link-rtt.out"
    return med([num(s, "connect_ms") for s in samples(path)])


def idle_figures(prefix: Path) -> dict | None:
    try:
        a = read_sample(prefix.with_suffix(".before"))
        b = read_sample(prefix.with_suffix(".after"))
    except OSError:
        return None
    sec = (b["clock_ms"][0] - a["clock_ms"][0]) / 1e3
    if sec <= 0:
        return None
    d = lambda key, i: (b[key][i] - a[key][i]) / sec  # noqa: E731
    return {"seconds": sec, "up_pkts": d("link_rx", 0), "up_bytes": d("link_rx", 1),
            "down_pkts": d("link_tx", 0), "down_bytes": d("link_tx", 1),
            "conns": d("passive_opens", 0)}


def idle_line(f: dict) -> str:
    return (f"{f['conns']:.2f} connections/s accepted, packets/s {f['up_pkts']:.1f} cn -> us and "
            f"{f['down_pkts']:.1f} us -> cn ({f['up_bytes'] + f['down_bytes']:,.0f} bytes/s), "
            f"over {f['seconds']:.0f} s")


def kinds(good: list[dict], key: str) -> str:
    """The distinct values of `key` among the samples, e.g. "TLSv1.2" or "6/7"."""
    return "/".join(sorted({x.get(key, "?") for x in good})) or "n/a"


def _minus(a, b):
    return a - b if a is not None and b is not None else None


# What the samples of one measure were like, beside the figure (for the notes and --one); and
# which samples count as having worked.
def describe_visit(good: list[dict]) -> str:
    tls = med([_minus(num(x, "tls_ms"), num(x, "connect_ms")) for x in good])
    resumed = sum(1 for x in good if x.get("reused") == "1")
    return (f"{kinds(good, 'version')}, handshake {fmt(tls, ',.0f')} ms, resumed "
            f"{resumed}/{len(good)}")


def describe_load(good: list[dict]) -> str:
    return (f"{kinds(good, 'subresources')} subresources, {kinds(good, 'failed')} failed, "
            f"{kinds(good, 'console_errors')} console errors, {kinds(good, 'protocols')}")


def describe_large(good: list[dict]) -> str:
    wire = med([num(x, "bytes") for x in good])
    ttfb = med([num(x, "ttfb_s", 1e3) for x in good])
    return (f"{fmt(wire)} bytes on the wire, HTTP/{kinds(good, 'http')}, first byte at "
            f"{fmt(ttfb, ',.0f')} ms")


DESCRIBE = {
    "visit": (describe_visit, lambda x: "error" not in x and x.get("status") == "200"),
    "load": (describe_load, lambda x: "error" not in x),
    "large": (describe_large, lambda x: x.get("code") == "200"),
}


def described(lines: list[dict], measure: str) -> str:
    describe, worked = DESCRIBE[measure]
    good = [x for x in lines if worked(x)]
    text = describe(good)
    return text + (f", {len(lines) - len(good)} failed" if len(good) < len(lines) else "")


def one(path: Path, rtt: float) -> str:
    """A line about one run (one system, one round, one measure)."""
    measure = path.parent.parent.name
    lines = samples(path)
    if measure == "visit":
        new = [x for x in lines if x.get("kind") == "new"]
        back = [x for x in lines if x.get("kind") == "return"]
        return (f"new {ms_rtt(med([visit_new(x) for x in new]), rtt)} ({described(new, measure)}); "
                f"returning {ms_rtt(med([visit_return(x) for x in back]), rtt)} "
                f"({described(back, measure)})")
    figure = load_ms if measure == "load" else large_ms
    return f"{ms_rtt(med([figure(x) for x in lines]), rtt)}: {described(lines, measure)}"


def main() -> None:
    if sys.argv[1] == "--one":
        print(one(Path(sys.argv[2]), float(sys.argv[3])))
        return
    if sys.argv[1] == "--idle":
        f = idle_figures(Path(sys.argv[2]))
        print(idle_line(f) if f else "n/a")
        return
    work = Path(sys.argv[1])
    res = Results(work)
    m, rtt = res.meta, res.rtt
    rep = Report("Ferry: a visitor in China over an emulated long link", f"Started {m['date']}.", m)
    clk = int(m["clk_tck"])
    others = {}
    for scen in res.scenarios:
        worst = None
        for r in range(1, res.rounds + 1):
            try:
                a = read_sample(res.runs / scen / f"round-{r}.before")
                b = read_sample(res.runs / scen / f"round-{r}.after")
            except OSError:
                continue
            sec = (b["clock_ms"][0] - a["clock_ms"][0]) / 1e3
            ours = (b["bench"][0] - a["bench"][0]) / clk
            o = others_cpu(a, b, clk, ours, sec)
            worst = o if worst is None else max(worst, o)
        others[scen] = worst
        if worst is not None and worst > DISTURBED:
            rep.disturbed.append(f"the {scen} scenario")

    pool_missing = m["pool"] == "missing"
    rep.machine()
    rep.w(f"| Command | `{m['command']}` (commit {m['commit']}) |")
    links = "; ".join(f"{s}: `{m['link_' + s]}`" for s in res.scenarios)
    rep.w(f"| Link | ferry-link between namespaces ferry-wan-cn and ferry-wan-us, {links} |")
    rtts = ", ".join(f"{s} {fmt(link_rtt(work, s), ',.1f')} ms" for s in res.scenarios)
    rep.w(f"| Link RTT, measured | TCP connect cn -> us (median of 5): {rtts} |")
    rep.w(f"| {LABEL['seed']} | HAProxy {m['haproxy'].replace('HAProxy version ', '')} `mode tcp` (cn) -> "
          f"nginx {m['nginx'].replace('nginx/', '')} with the article's server block: TLS 1.0-1.2, "
          "sub_filter, no HTTP/2, no gzip (us), and the two changes the demo page needs to load "
          "(`sub_filter 'example.com' 'example.cn'`, the CSP header hidden): "
          "bench/wan/haproxy.cfg, bench/wan/nginx-seed.conf |")
    rep.w(f"| {LABEL['ferry']} | {m['ferry']} (cn, PROXY v2) -> Envoy {m['envoy']} with envoy/us-east.yaml "
          "(addresses and files replaced) and the Ferry filter (us), `--concurrency 1` |")
    pool = ("**not measured: this ferry-relay has no warm pool**" if pool_missing
            else f"the same relay with `{m['pool']}`")
    rep.w(f"| {LABEL['ferry-pool']} | {pool} |")
    cc = congestion(work, res.scenarios[0])
    rep.w(f"| TCP congestion control | the namespaces' default: {cc.get('cn', '?')} (cn), "
          f"{cc.get('us', '?')} (us), what the seed's HAProxy and nginx use; ferry-relay (towards "
          "Envoy, its default) and Envoy's https listener (envoy/us-east.yaml) ask for BBR "
          f"(available: {cc.get('available', '?')}) |")
    rep.w("| Origin | `ferry-wan origin` in the us namespace: the demo site of `./run demo` and "
          "/large.html (2,000,017 bytes of HTML with origin names), TLS, HTTP/2 or 1.1 |")
    rep.w(f"| Per round and system | {m['visits']} visit pairs ({m['pause']} s apart), "
          f"{m['loads']} cold page loads, {m['downloads']} downloads of /large.html; "
          f"{res.rounds} rounds, systems alternated, the first rotating |")
    rep.w(f"| Clients | {m['python']}; {m['chromium']}; {m['curl']} |")
    others_text = ", ".join(f"{s} {fmt(o, '.0f')}%" for s, o in others.items())
    rep.w(f"| Others' CPU | worst round: {others_text} (of one core) |")
    rep.w("")

    goals(rep, res, pool_missing)
    tables(rep, res)
    idle(rep, res, pool_missing)
    details(rep, res)
    print(rep.text("the per-round figures"))


def goals(rep: Report, res: Results, pool_missing: bool) -> None:
    """Each goal of issue 12 with every system's figure; the verdict is given per Ferry system."""
    rtt = res.rtt
    base = "plain" if "plain" in res.scenarios else res.scenarios[0]
    ferries = [s for s in res.systems if s != "seed"]
    rep.w("## Against issue 12's goals\n")
    rep.w("| Goal | Figures | Verdict |\n|---|---|---|")
    ttfb = {s: _div(res.figure(base, "new", s), rtt) for s in res.systems}
    figs = ", ".join(f"{LABEL[s]} {fmt(res.figure(base, 'new', s), ',.0f')} ms = "
                     f"{fmt(ttfb[s], '.2f')} RTT" for s in res.systems)
    pool = ("not measured (no warm pool)" if pool_missing or "ferry-pool" not in res.systems
            else f"{LABEL['ferry-pool']}: {verdict(ttfb['ferry-pool'], GOAL_POOL_TTFB_RTT)}")
    rep.w(f"| New-visitor TTFB with the warm pool <= {GOAL_POOL_TTFB_RTT} RTT ({base}) | {figs} | "
          f"{pool} |")
    for scen_goal, figure, goal, what in ((base, "load", GOAL_LOAD_X_SEED, "Cold full load"),
                                          ("loss", "large", GOAL_LARGE_LOSS_X_SEED,
                                           "With 1% loss, the 2 MB page")):
        if scen_goal not in res.scenarios or "seed" not in res.systems or not ferries:
            rep.w(f"| {what} <= {goal}x the seed's stack | not measured | |")
            continue
        ratios = {s: x_seed(res, scen_goal, figure, s) for s in ferries}
        figs = ", ".join(f"{LABEL[s]} {fmt(ratios[s], '.2f')}x" for s in ferries)
        verdicts = ", ".join(f"{LABEL[s]}: {verdict(ratios[s], goal)}" for s in ferries)
        rep.w(f"| {what} <= {goal}x the seed's stack ({scen_goal}) | {figs} | {verdicts} |")
    cost = pool_cost(res)
    rep.w("| The pool's idle cost to the upstream | " +
          ("not measured" if cost is None else
           f"{cost[0]:.2f} connections/s and {cost[1]:.1f} packets/s more than Ferry without it")
          + " | (no goal: reported) |\n")


def _div(a, b):
    return a / b if a is not None and b else None


def tables(rep: Report, res: Results) -> None:
    rtt = res.rtt
    head = "| System | " + " | ".join(f"{s} ({SCENARIO.get(s, s)})" for s in res.scenarios) + " |"
    rule = "|---|" + "---:|" * len(res.scenarios)
    sections = [
        ("new", "New visitor: time to first byte (fresh TCP and TLS handshake)", False),
        ("return", "Returning visitor: time to first byte (new TCP connection, TLS session "
                   "resumed)", False),
        ("load", "Cold full load of the demo home page in headless Chromium (navigation start to "
                 "the load event)", True),
        ("large", "The ~2 MB page: new connection to last byte (curl --compressed)", True),
    ]
    for figure, title, ratio in sections:
        rep.w(f"## {title}\n")
        rep.w(head)
        rep.w(rule)
        for s in res.systems:
            cells = []
            for scen in res.scenarios:
                cell = ms_rtt(res.figure(scen, figure, s), rtt)
                if ratio and s != "seed" and "seed" in res.systems:
                    cell += f" ({fmt(x_seed(res, scen, figure, s), '.2f')}x seed)"
                cells.append(cell)
            rep.w(f"| {LABEL[s]} | " + " | ".join(cells) + " |")
        rep.w("")
        notes(rep, res, figure)


NOTES = {
    "new": ("visit", "TLS version, median handshake (TCP connected to handshake done), sessions "
                     "resumed: "),
    "return": ("visit", "TLS version, median handshake (TCP connected to handshake done), "
                        "sessions resumed (a returning visit counts only if resumed): "),
    "load": ("load", "What each load fetched (every request but the document, until the network "
                     "was quiet; each request and console error is in "
                     ".bench/wan/runs/SCENARIO/load/SYSTEM/ROUND.err): "),
    "large": ("large", "Bytes received (compressed where the system compresses), protocol, "
                       "first byte: "),
}


def notes(rep: Report, res: Results, figure: str) -> None:
    """What the samples behind a table were like, per system and scenario."""
    measure, intro = NOTES[figure]
    parts = []
    for s in res.systems:
        for scen in res.scenarios:
            lines = res.all_samples(scen, measure, s)
            if measure == "visit":
                lines = [x for x in lines if x.get("kind") == figure]
            if lines:
                parts.append(f"{LABEL[s]}, {scen}: {described(lines, measure)}")
    rep.w(intro + "; ".join(parts) + ".\n")


def pool_cost(res: Results) -> tuple[float, float] | None:
    """Connections/s and packets/s (both ways) the warm pool adds at idle, if both were measured."""
    pool = idle_figures(res.runs / "idle" / "ferry-pool")
    plain = idle_figures(res.runs / "idle" / "ferry")
    if not pool or not plain:
        return None
    packets = pool["up_pkts"] + pool["down_pkts"] - plain["up_pkts"] - plain["down_pkts"]
    # (+ 0.0 after rounding: no "-0.00")
    return round(pool["conns"] - plain["conns"], 2) + 0.0, round(packets, 1) + 0.0


def idle(rep: Report, res: Results, pool_missing: bool) -> None:
    rep.w("## Idle: what each system costs the us side with no visitor\n")
    figures = {s: idle_figures(res.runs / "idle" / s) for s in res.systems}
    if not any(figures.values()):
        rep.w("Not measured (--idle 0, or no plain scenario).\n")
        return
    rep.w(f"Each system's China side alone, {res.meta['settle']} s after it started, for "
          f"{res.meta['idle']} s; counters of the us namespace: TCP connections its kernel "
          "accepted, packets on the link device.\n")
    rep.w("| System | Connections/s | Packets/s cn -> us | Packets/s us -> cn | Bytes/s, both |")
    rep.w("|---|---:|---:|---:|---:|")
    for s, f in figures.items():
        if f:
            rep.w(f"| {LABEL[s]} | {f['conns']:.2f} | {f['up_pkts']:.1f} | {f['down_pkts']:.1f} | "
                  f"{f['up_bytes'] + f['down_bytes']:,.0f} |")
    cost = pool_cost(res)
    if cost is not None:
        rep.w(f"\nThe warm pool's own cost (Ferry + warm pool, less Ferry): {cost[0]:.2f} "
              f"connections/s and {cost[1]:.1f} packets/s.")
    elif pool_missing:
        rep.w("\nferry-pool: not measured, this ferry-relay has no warm pool.")
    rep.w("")


def details(rep: Report, res: Results) -> None:
    rep.w("## Per round\n")
    rep.w("Each round's median, in ms, in the order of the rounds.\n")
    rep.w("| Scenario | Measure | " + " | ".join(LABEL[s] for s in res.systems) + " |")
    rep.w("|---|---|" + "---|" * len(res.systems))
    names = {"new": "new visitor TTFB", "return": "returning TTFB", "load": "cold load",
             "large": "2 MB page"}
    for scen in res.scenarios:
        for figure, name in names.items():
            cells = [", ".join(f"{v:,.0f}" for v in res.by_round(scen, figure, s)) or "n/a"
                     for s in res.systems]
            rep.w(f"| {scen} | {name} | " + " | ".join(cells) + " |")
    rep.w("")
    rep.w("ferry-link's counters over each scenario: " + "; ".join(
        f"{scen}: {link_counters(res.work, scen)}" for scen in res.scenarios) + ".\n")
    rep.w("Commands (in the cn namespace; ENTRY is the system's address there): "
          f"`{res.meta['cmd_visit']}`; `{res.meta['cmd_load']}`; `{res.meta['cmd_large']}`.")


if __name__ == "__main__":
    try:
        main()
    except statistics.StatisticsError as err:
        sys.exit(f"report.py: {err}")
