#!/usr/bin/env python3
"""Compare what two .tar.zst archives carry (stdlib + the zstd CLI).

    selection.py CARRYOVER.tar.zst BASELINE.tar.zst --md OUT.md --kv OUT.tsv

The first archive is carryover's snapshot; its `.carryover/` metadata entries are
counted apart. The second is the baseline `tar -cf - STATE | zstd` archive.
Writes a markdown paragraph (OUT.md) and key<TAB>value lines (OUT.tsv) for the
report: payload bytes and entry counts of both, their difference, and the entries
only one of them has.
"""

import argparse
import subprocess
import sys
import tarfile

META_PREFIX = ".carryover/"


def kind(ti):
    if ti.isreg():
        return "file"
    if ti.isdir():
        return "dir"
    if ti.issym():
        return "symlink"
    if ti.islnk():
        return "hardlink"
    return "other"


def listing(path):
    """{(name, kind): size} of every entry, read as a stream (zstd -dc | tarfile r|)."""
    p = subprocess.Popen(["zstd", "-dcq", path], stdout=subprocess.PIPE)
    out = {}
    try:
        with tarfile.open(fileobj=p.stdout, mode="r|") as tf:
            for ti in tf:
                name = ti.name[2:] if ti.name.startswith("./") else ti.name
                name = name.rstrip("/")
                out[(name, kind(ti))] = ti.size if ti.isreg() else 0
    finally:
        p.stdout.close()
        rc = p.wait()
    if rc != 0:
        sys.exit("selection.py: zstd -dc %s failed (exit %d)" % (path, rc))
    return out


def summarize(entries):
    files = sum(1 for (_, k) in entries if k == "file")
    return files, sum(entries.values())


def describe(entries, limit=12):
    """Short text list of entries: each one if few, else grouped by 3-level prefix."""
    if not entries:
        return "none"
    items = sorted(entries.items())
    if len(items) <= limit:
        return ", ".join("`%s` (%s, %s B)" % (n, k, format(s, ",")) for (n, k), s in items)
    groups = {}
    for (n, k), s in items:
        g = "/".join(n.split("/")[:3])
        c = groups.setdefault(g, [0, 0])
        c[0] += 1
        c[1] += s
    parts = ["`%s` (%d %s, %s B)" % (g, c[0], "entry" if c[0] == 1 else "entries",
                                     format(c[1], ","))
             for g, c in sorted(groups.items())]
    return "%d entries: " % len(items) + ", ".join(parts)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("carryover")
    ap.add_argument("baseline")
    ap.add_argument("--md", required=True)
    ap.add_argument("--kv", required=True)
    a = ap.parse_args()

    co_all = listing(a.carryover)
    base = listing(a.baseline)
    meta = {k: v for k, v in co_all.items() if k[0] == ".carryover" or k[0].startswith(META_PREFIX)}
    co = {k: v for k, v in co_all.items() if k not in meta}

    co_files, co_bytes = summarize(co)
    b_files, b_bytes = summarize(base)
    m_files, m_bytes = summarize(meta)
    only_co = {k: v for k, v in co.items() if k not in base}
    only_b = {k: v for k, v in base.items() if k not in co}
    size_diff = {k: (base[k], v) for k, v in co.items() if k in base and base[k] != v}
    diff = co_bytes - b_bytes

    kv = [
        ("sel_carryover_files", co_files), ("sel_carryover_bytes", co_bytes),
        ("sel_carryover_entries", len(co)),
        ("sel_meta_files", m_files), ("sel_meta_bytes", m_bytes),
        ("sel_baseline_files", b_files), ("sel_baseline_bytes", b_bytes),
        ("sel_baseline_entries", len(base)),
        ("sel_diff_bytes", diff), ("sel_only_carryover", len(only_co)),
        ("sel_only_baseline", len(only_b)), ("sel_size_differs", len(size_diff)),
    ]
    with open(a.kv, "w") as f:
        for k, v in kv:
            f.write("%s\t%s\n" % (k, v))

    lines = [
        "- carryover archive payload: %s B in %s files (%d entries), plus `.carryover/` "
        "metadata %s B in %d files" % (format(co_bytes, ","), format(co_files, ","), len(co),
                                       format(m_bytes, ","), m_files),
        "- baseline STATE (`solr/data repository/data repository/database`): %s B in %s files "
        "(%d entries)" % (format(b_bytes, ","), format(b_files, ","), len(base)),
        "- difference (carryover payload − baseline): %s B (%+.4f %%)"
        % (format(diff, "+,"), 100.0 * diff / b_bytes if b_bytes else 0.0),
        "- only in carryover's selection: " + describe(only_co),
        "- only in the baseline's STATE: " + describe(only_b),
    ]
    if size_diff:
        lines.append("- same entry, different size: " + ", ".join(
            "`%s` (%d vs %d B)" % (n, b, c) for (n, _), (b, c) in sorted(size_diff.items())[:12]))
    with open(a.md, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
