#!/usr/bin/env python3
"""File-level import graph of src/ and its cycles (exit 1 if any).

Every `crate::a::b` / `super::x` / `self::x` path in a file (in `use` lines and inline paths) is
resolved to the file that defines the longest matching module prefix; an item re-exported by a
`mod.rs` (`pub use child::X`) resolves through to the child, so re-exports add no edges of
their own. `mod x;` declarations are not imports. Unit-test modules (`#[cfg(test)]` to the end
of the file) are ignored. Usage: scripts/deps.py [--dot]"""
import pathlib, re, sys

SRC = pathlib.Path("src")
files = {}
for p in sorted(SRC.rglob("*.rs")):
    rel = p.relative_to(SRC).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "mod":
        parts = parts[:-1]
    if parts in (["lib"], ["main"]):
        parts = [] if parts == ["lib"] else ["<main>"]
    files[tuple(parts)] = p

def body(p):
    t = p.read_text()
    i = t.find("#[cfg(test)]")
    return t if i < 0 else t[:i]

# re-exports: module -> {name: target module path}
reexp = {}
for mod, p in files.items():
    for m in re.finditer(r"pub use ([\w:]+)::\{([^}]*)\};|pub use ([\w:]+)::(\w+)(?: as (\w+))?;", body(p)):
        if m.group(1):
            base, names = m.group(1), [n.strip().split(" as ")[-1] for n in m.group(2).split(",") if n.strip()]
        else:
            base, names = m.group(3), [m.group(5) or m.group(4)]
        for n in names:
            reexp.setdefault(mod, {})[n] = base

def absolute(mod, path, p):
    segs = path.split("::")
    cur = list(mod)
    if segs[0] == "crate":
        cur, segs = [], segs[1:]
    elif segs[0] == "super":
        while segs and segs[0] == "super":
            cur = cur[:-1]; segs = segs[1:]
    elif segs[0] == "self":
        segs = segs[1:]
    else:
        cur = cur  # a child module name relative to this module (`walk::walk`)
    return cur + segs

def resolve(segs, depth=0):
    # longest module prefix that is a file, then follow a re-export of the next segment
    for k in range(len(segs), -1, -1):
        m = tuple(segs[:k])
        if m in files:
            if k < len(segs) and depth < 8:
                base = reexp.get(m, {}).get(segs[k])
                if base:
                    return resolve(absolute(m, base + "::" + segs[k], files[m]), depth + 1)
            return m
    return None

edges = {m: set() for m in files}
for mod, p in files.items():
    text = body(p)
    text = re.sub(r"//.*", "", text)
    paths = set()
    for m in re.finditer(r"\buse\s+([^;]+);", text, re.S):
        u = re.sub(r"\s+", "", m.group(1))
        if u.startswith("pub"):
            u = u[3:]
        # expand one level of braces: a::{b, c::d} -> a::b, a::c::d
        mm = re.match(r"([\w:]*?)::\{(.*)\}$", u)
        if mm:
            for part in re.split(r",(?![^{]*\})", mm.group(2)):
                part = part.split("as")[0] if "as" in part and "::" not in part else part
                part = re.sub(r"\{.*\}", "", part).rstrip(":")
                if part and part != "self":
                    paths.add(mm.group(1) + "::" + part)
                elif part == "self":
                    paths.add(mm.group(1))
        else:
            paths.add(u.split("as")[0] if u.endswith(tuple("abcdefghijklmnopqrstuvwxyz")) is False else u)
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", text):
        paths.add(m.group(1))
    # child modules used by plain path (`walk::walk(`)
    children = {c[-1] for c in files if len(c) == len(mod) + 1 and c[:-1] == mod} if p.name in ("mod.rs", "lib.rs") else set()
    for m in re.finditer(r"\b(\w+)::\w+", text):
        if m.group(1) in children:
            paths.add(m.group(0))
    for u in paths:
        segs = u.split("::")
        if segs[0] not in ("crate", "super", "self") and segs[0] not in children:
            continue
        t = resolve(absolute(mod, u, p))
        if t is not None and t != mod and t != ():
            edges[mod].add(t)

def name(m):
    return str(files[m])

# cycles: strongly connected components (Tarjan)
index, low, stack, on, sccs, n = {}, {}, [], set(), [], [0]
def strong(v):
    index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
    for w in edges[v]:
        if w not in index:
            strong(w); low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop(); on.discard(w); comp.append(w)
            if w == v: break
        if len(comp) > 1: sccs.append(comp)
sys.setrecursionlimit(10000)
for v in files:
    if v not in index: strong(v)
if "--dot" in sys.argv:
    print("digraph src {")
    for a in sorted(edges):
        for b in sorted(edges[a]):
            print(f'  "{name(a)}" -> "{name(b)}";')
    print("}")
for c in sccs:
    print("cycle:", " <-> ".join(sorted(name(m) for m in c)))
    for a in c:
        for b in edges[a]:
            if b in c:
                print(f"   {name(a)} -> {name(b)}")
print(f"{len(files)} files, {sum(len(e) for e in edges.values())} edges, {len(sccs)} cycle(s)")
sys.exit(1 if sccs else 0)
