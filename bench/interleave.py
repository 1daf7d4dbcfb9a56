#!/usr/bin/env python3
"""Times commands run one after another in turn (A, B, C, A, B, C, ...), not in batches as
hyperfine does: a command run a hundred times back to back finds its binary, page cache and
CPU caches warm from its own previous run, which favours the smaller program. Interleaved,
every command pays what a command run once among others pays.

    python3 bench/interleave.py RUNS 'NAME=COMMAND' ... [--base NAME]

Each COMMAND is split as a shell would (shlex) and run with stdout to /dev/null; the
launcher's own cost (fork, exec and wait from Python, measured with /bin/true in the same
rotation) is taken off every time. Prints each command's median and mean in ms, and the
ratio of its median to the --base command's (default: the last one). Reports, never asserts.
"""
import os
import shlex
import statistics
import subprocess
import sys
import time


def main():
    args = sys.argv[1:]
    base_name = None
    if "--base" in args:
        i = args.index("--base")
        base_name = args[i + 1]
        del args[i : i + 2]
    if len(args) < 2 or not args[0].isdigit():
        sys.exit(__doc__)
    runs = int(args[0])
    cmds = dict(a.split("=", 1) for a in args[1:])
    cmds = {k: shlex.split(v) for k, v in cmds.items()}
    cmds["/bin/true"] = ["/bin/true"]
    base_name = base_name or list(cmds)[-2]
    times = {k: [] for k in cmds}
    for k, argv in cmds.items():
        for _ in range(5):
            subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    for _ in range(runs):
        for k, argv in cmds.items():
            start = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
            times[k].append((time.perf_counter() - start) * 1000)
    launcher = statistics.median(times.pop("/bin/true"))
    base = statistics.median(times[base_name]) - launcher
    print(f"{runs} interleaved runs each; launcher's {launcher:.2f} ms taken off")
    for k, v in times.items():
        med = statistics.median(v) - launcher
        mean = statistics.mean(v) - launcher
        print(f"  {k:24s} median {med:6.2f} ms  mean {mean:6.2f} ms  {med / base:5.2f}x {base_name}")


if __name__ == "__main__":
    os.environ.setdefault("XDG_CACHE_HOME", "/tmp/interleave-xdg")
    main()
