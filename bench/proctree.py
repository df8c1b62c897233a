#!/usr/bin/env python3
"""CPU time and memory of a process and all its descendants, from /proc: how both benchmarks
(bench/run.sh, bench/relay/run.sh, through `proctree` in bench/lib.sh) count a process's CPU.

    proctree.py NAME=PID [NAME=PID ...]

prints, per process tree, one line: NAME ticks rss_kib pss_kib processes fds pipes sockets

* ticks: utime + stime + cutime + cstime (clock ticks) of the process and of every live
  descendant. socat forks a child per connection: a child still running is counted live, one
  that has exited and was reaped is in its parent's cutime/cstime, so neither is lost nor counted
  twice. For Envoy, ferry-relay and HAProxy this is simply the process's own CPU time (all
  threads); for nginx, its master's and its worker's.
* rss_kib, pss_kib: summed over the tree. RSS is what `ps` shows; PSS splits shared pages among
  the processes that map them, so thousands of socat children do not each count libc again.
  Neither includes kernel memory (socket buffers, pipes).
* fds: open descriptors. pipes: distinct pipes among them (splice's kernel buffers; a pipe
  whose two ends are held, or shared by a parent and its children, counts once). sockets:
  descriptors that are sockets.

A process that exits while being read is skipped.
"""

import os
import sys


def read(path: str) -> str:
    with open(path) as f:
        return f.read()


def stat_fields(pid: int) -> list[str]:
    text = read(f"/proc/{pid}/stat")
    # The command name is in parentheses and may hold spaces: split after its closing one.
    return text[text.rindex(")") + 2:].split()


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(stat_fields(int(entry))[1])
        except (OSError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def tree(root: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def measure(pid: int) -> tuple[int, int, int, int, set[str], int] | None:
    try:
        f = stat_fields(pid)
        # Fields 14-17 of /proc/PID/stat (utime stime cutime cstime), 0-based 11-14 here.
        ticks = sum(int(x) for x in f[11:15])
        rss = pss = 0
        for line in read(f"/proc/{pid}/smaps_rollup").splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
        fds, pipes, sockets = 0, set(), 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            fds += 1
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("pipe:"):
                pipes.add(target)
            elif target.startswith("socket:"):
                sockets += 1
        return ticks, rss, pss, fds, pipes, sockets
    except (OSError, ValueError):
        return None


def main() -> None:
    kids = children_map()
    for arg in sys.argv[1:]:
        name, _, pid = arg.partition("=")
        ticks = rss = pss = fds = procs = sockets = 0
        pipes: set[str] = set()
        for p in tree(int(pid), kids):
            m = measure(p)
            if m is None:
                continue
            procs += 1
            ticks, rss, pss, fds = ticks + m[0], rss + m[1], pss + m[2], fds + m[3]
            pipes |= m[4]
            sockets += m[5]
        print(name, ticks, rss, pss, procs, fds, len(pipes), sockets)


if __name__ == "__main__":
    main()
