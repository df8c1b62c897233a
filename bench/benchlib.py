"""The helpers bench/report.py and bench/relay/report.py share: one copy of each.

Both read what bench/lib.sh writes: meta.tsv (meta_common's keys and the script's own), and
per run a .before and an .after sample ("cpuN busy total irq" jiffies per core, from `cores`;
"NAME ticks ..." per process tree, from `proctree`) and a .time file ("load REAL USER SYS", bash's
`time` around the load tool).
"""

import statistics
from pathlib import Path

DISTURBED = 10.0  # % of one core used by other processes above which a run is flagged


def read_meta(path: Path) -> dict[str, str]:
    """meta.tsv: one "KEY<tab>VALUE" a line; the value is everything after the first tab."""
    return dict(line.split("\t", 1) for line in path.read_text().splitlines() if line)


def read_sample(path: Path) -> dict[str, list[int]]:
    """A .before or .after sample: its numbers by the first word of each line."""
    out = {}
    for line in path.read_text().splitlines():
        name, *nums = line.split()
        out[name] = [int(n) for n in nums]
    return out


def read_time(path: Path) -> tuple[float, float, float]:
    """The load tool's real, user and system seconds; zeros if `time` wrote no line."""
    for line in path.read_text().splitlines():
        if line.startswith("load "):
            real, user, system = (float(x) for x in line.split()[1:4])
            return real, user, system
    return 0.0, 0.0, 0.0


def pinned_cores(meta: dict[str, str]) -> tuple[str | None, str | None]:
    """The proxies' and the load side's cores ("cpuN", as in the samples); None if not pinned."""
    if meta["pinning"] == "none":
        return None, None
    return f"cpu{meta['proxy_cpu']}", f"cpu{meta['load_cpu']}"


def cpu_seconds(before: dict, after: dict, name: str, clk: int) -> float:
    """CPU seconds of the process tree NAME between the two samples."""
    return (after[name][0] - before[name][0]) / clk


def core_use(before: dict, after: dict, cpu: str) -> float:
    """How busy one core was between the two samples, in %."""
    total = after[cpu][1] - before[cpu][1]
    return 100.0 * (after[cpu][0] - before[cpu][0]) / total if total else 0.0


def others_cpu(before: dict, after: dict, clk: int, ours: float, seconds: float) -> float:
    """CPU used by processes that are not part of the benchmark, in % of one core: the busy time
    of all cores less interrupts (charged to no process; loopback traffic is the benchmark's),
    less `ours` (the benchmark's CPU seconds), over `seconds`."""
    cores = [k for k in after if k.startswith("cpu")]
    busy = sum((after[c][0] - after[c][2]) - (before[c][0] - before[c][2]) for c in cores) / clk
    return 100.0 * max(0.0, busy - ours) / seconds if seconds else 0.0


def med(values):
    """The median of the values that are not None; None if there are none."""
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, spec=",.0f", none="n/a") -> str:
    return none if v is None else format(v, spec)


def ratio(a, b) -> str:
    return f"{a / b:.2f}x" if a is not None and b else "n/a"


class Report:
    """A Markdown report: its lines, and the runs disturbed by other processes, which a warning
    names right under the "Started" line."""

    def __init__(self, title: str, started: str, meta: dict[str, str]):
        self.out: list[str] = [f"# {title}\n", f"{started}\n"]
        self.warn_at = len(self.out)
        self.disturbed: list[str] = []
        self.meta = meta

    def w(self, line: str) -> None:
        self.out.append(line)

    def machine(self) -> None:
        """The start of the settings table: its head and the machine."""
        m = self.meta
        self.w("| | |\n|---|---|")
        self.w(f"| Machine | {m['cpu']}, {m['cores']} cores, {m['memory']}, {m['kernel']} |")

    def text(self, see: str) -> str:
        """The report; `see`: where the disturbed runs' figures are."""
        out = list(self.out)
        if self.disturbed:
            out.insert(self.warn_at, f"**Disturbed: other processes used more than {DISTURBED:.0f}% "
                       f"of a core during runs of {', '.join(self.disturbed)} (see {see}): run "
                       "again on a quiet machine before quoting those figures.**\n")
        return "\n".join(out)
