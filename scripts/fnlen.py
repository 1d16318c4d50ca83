#!/usr/bin/env python3
"""Lists functions longer than N lines and files longer than M lines in src/ (default 80/450).
A rough brace counter: good enough for rustfmt'd code."""
import re, sys, pathlib
N = int(sys.argv[1]) if len(sys.argv) > 1 else 80
M = int(sys.argv[2]) if len(sys.argv) > 2 else 450
bad = 0
for p in sorted(pathlib.Path("src").rglob("*.rs")):
    lines = p.read_text().splitlines()
    # strip the unit-test module from the file-length count
    body = len(lines)  # whole file, unit tests included
    for i, l in enumerate(lines):
        if False:
            body = i
            break
    if body > M:
        print(f"{p}: {body} lines (file)"); bad += 1
    i = 0
    while i < len(lines):
        m = re.match(r"\s*(pub(\([^)]*\))?\s+)?(const\s+)?(async\s+)?(unsafe\s+)?fn\s+(\w+)", lines[i])
        if m and not lines[i].rstrip().endswith(";"):
            depth, j, started = 0, i, False
            while j < len(lines):
                depth += lines[j].count("{") - lines[j].count("}")
                if "{" in lines[j]:
                    started = True
                if started and depth <= 0:
                    break
                j += 1
            n = j - i + 1
            if n > N:
                print(f"{p}:{i+1}: fn {m.group(6)} {n} lines"); bad += 1
        i += 1
sys.exit(1 if bad else 0)
