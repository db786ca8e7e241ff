"""Summarise py-spy's raw (collapsed) stacks: the functions where the samples
are, inclusive and self, as shares of all samples.

    .venv/bin/python bench/_stacks.py STACKS.txt [--top 25] [--filter TEXT]
"""
from __future__ import annotations

import argparse
import re
from collections import Counter

_IDLE = re.compile(r"(poll|select|accept|wait|sleep|epoll)\b")


def load(path: str):
    stacks = []
    with open(path) as handle:
        for line in handle:
            line = line.rstrip("\n")
            if not line:
                continue
            stack, _, count = line.rpartition(" ")
            if not count.isdigit() or not stack:
                continue  # a frame name with a newline in it: skip the fragment
            stacks.append((stack.split(";"), int(count)))
    return stacks


def _name(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (file.py)" so lines of one function add up.
    match = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not match:
        return frame
    function, path = match.groups()
    short = "/".join(path.split("/")[-2:])
    return f"{function} ({short})"


def summarise(paths, top: int = 25, contains: str | None = None) -> str:
    stacks = [s for path in ([paths] if isinstance(paths, str) else paths) for s in load(path)]
    total = sum(count for _stack, count in stacks)
    inclusive, self_time = Counter(), Counter()
    for frames, count in stacks:
        names = [_name(f) for f in frames]
        for name in set(names):
            inclusive[name] += count
        self_time[names[-1]] += count
    lines = [f"{total} samples"]
    for title, counter in (("inclusive", inclusive), ("self", self_time)):
        lines.append(f"-- top {top} by {title} share --")
        shown = 0
        for name, count in counter.most_common():
            if contains and contains not in name:
                continue
            lines.append(f"{100 * count / total:6.1f}%  {name}")
            shown += 1
            if shown >= top:
                break
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="+")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--filter")
    args = parser.parse_args()
    print(summarise(args.path, args.top, args.filter))


if __name__ == "__main__":
    main()
