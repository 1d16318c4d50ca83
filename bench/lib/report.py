#!/usr/bin/env python3
"""Turn bench/run.sh's raw measurements into the markdown report (stdlib only).

    report.py --raw RAW.tsv --meta META.tsv [--selection SEL.md] [--notes NOTES.txt] --out OUT.md

RAW.tsv: step, tool, run, wall_us, time_e, rss_kb, rc (run 0 is the warm-up and is
left out of medians and peaks). META.tsv: key<TAB>value lines written by run.sh.
"""

import argparse
import statistics
import sys

STEP_TITLES = {
    "snapshot": "snapshot",
    "verify": "verify",
    "transplant-archive": "transplant-from-archive",
    "transplant-pack": "transplant-from-pack",
}
TOOL_LABELS = {
    ("snapshot", "co"): "carryover snapshot PACK -o OUT -q",
    ("snapshot", "tarzstd"): "tar -cf - STATE | zstd -T0 -3",
    ("snapshot", "tarzstd_sync"): "tar -cf - STATE | zstd -T0 -3, then sync (fsync) the archive",
    ("snapshot", "tarzstd_sha"): "tar | zstd -T0 -3, then sha256sum of every file",
    ("verify", "co"): "carryover verify OUT -q",
    ("verify", "zstd_dc"): "zstd -dc OUT > /dev/null",
    ("verify", "extract_sha"): "zstd -dc X | tar -x, then sha256sum -c",
    ("transplant-archive", "co"): "carryover transplant OUT NEW -q",
    ("transplant-archive", "extract_sha"): "zstd -dc X | tar -x -C NEW, then sha256sum -c",
    ("transplant-archive", "extract_sha_sync"): "zstd -dc X | tar -x -C NEW, sha256sum -c, then sync -f",
    ("transplant-pack", "co"): "carryover transplant PACK NEW -q",
    ("transplant-pack", "cp"): "cp -a --parents STATE NEW/",
    ("transplant-pack", "cp_sync"): "cp -a --parents STATE NEW/, then sync -f",
}
# (step, baseline tool, goal ratio or None for information only)
TIME_ROWS = [
    ("snapshot", "tarzstd", 1.0),
    ("snapshot", "tarzstd_sync", None),
    ("snapshot", "tarzstd_sha", None),
    ("verify", "zstd_dc", 1.2),
    ("verify", "extract_sha", None),
    ("transplant-archive", "extract_sha", 1.2),
    ("transplant-archive", "extract_sha_sync", None),
    ("transplant-pack", "cp", 1.5),
    ("transplant-pack", "cp_sync", None),
]
RSS_GOAL_MIB = 100.0
RSS_ROWS = [("snapshot", True), ("verify", True),
            ("transplant-archive", False), ("transplant-pack", False)]


def load_raw(path):
    runs = {}
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            step, tool, run, wall_us, time_e, rss_kb, rc = line.rstrip("\n").split("\t")
            runs.setdefault((step, tool), []).append({
                "run": int(run), "wall": int(wall_us) / 1e6,
                "time_e": float(time_e) if time_e not in ("", "?") else None,
                "rss_mib": int(rss_kb) / 1024.0 if rss_kb not in ("", "?") else None,
                "rc": int(rc)})
    return runs


def load_meta(path):
    meta = {}
    with open(path) as f:
        for line in f:
            if "\t" in line:
                k, v = line.rstrip("\n").split("\t", 1)
                meta[k] = v
    return meta


def measured(rs):
    return [r for r in rs if r["run"] > 0]


def failed(rs):
    return [r for r in rs if r["rc"] != 0]


def med(rs):
    m = measured(rs)
    return statistics.median(r["wall"] for r in m) if m else None


def peak(rs):
    m = [r["rss_mib"] for r in measured(rs) if r["rss_mib"] is not None]
    return max(m) if m else None


def cell(s):
    """GitHub tables split on '|' even inside code spans, so escape it."""
    return s.replace("|", "\\|")


def fmt_s(x):
    return "—" if x is None else "%.3f s" % x


def verdict(ratio, goal):
    if goal is None:
        return "info"
    return "met" if ratio <= goal else "**missed**"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--meta", required=True)
    ap.add_argument("--selection")
    ap.add_argument("--notes")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    runs = load_raw(a.raw)
    meta = load_meta(a.meta)
    skipped = set(filter(None, meta.get("skipped_steps", "").split(",")))
    not_run = set(filter(None, meta.get("not_run_steps", "").split(",")))

    out = []
    w = out.append
    w("# carryover benchmark")
    w("")
    nruns = meta.get("runs", "?")
    w("carryover `%s` · scale %s · version %s · steps %s · %s measured run%s + 1 warm-up · %s"
      % (meta.get("commit", "?"), meta.get("scale"), meta.get("version"),
         meta.get("steps", "?"), nruns, "" if nruns == "1" else "s", meta.get("date", "")))
    w("")
    w("| step | carryover (median) | baseline | baseline (median) | ratio | goal | result |")
    w("|---|---|---|---|---|---|---|")

    def missing_row(title, why):
        w("| %s | — | — | — | — | — | %s |" % (title, why))

    for step, btool, goal in TIME_ROWS:
        title = STEP_TITLES[step]
        if goal is None:
            title += " (durable baseline)" if btool.endswith("_sync") else " (extra baseline)"
        blabel = cell("`%s`" % TOOL_LABELS[(step, btool)])
        if step in skipped:
            missing_row(title, "skipped: %s" % meta.get("skip_reason_" + step, "not available"))
            continue
        if step in not_run:
            missing_row(title, "not run (--only)")
            continue
        co = runs.get((step, "co"), [])
        base = runs.get((step, btool), [])
        bad = failed(co) + failed(base)
        if bad or not measured(co) or not measured(base):
            rcs = sorted({r["rc"] for r in bad})
            w("| %s | %s | %s | %s | — | %s | **error** (exit %s) |"
              % (title, fmt_s(med(co)), blabel, fmt_s(med(base)),
                 "—" if goal is None else "≤ %.1f×" % goal, ",".join(map(str, rcs)) or "?"))
            continue
        mc, mb = med(co), med(base)
        ratio = mc / mb if mb > 0 else float("inf")
        w("| %s | %s | %s | %s | %.2f× | %s | %s |"
          % (title, fmt_s(mc), blabel, fmt_s(mb), ratio,
             "—" if goal is None else "≤ %.1f×" % goal, verdict(ratio, goal)))

    # archive size
    if "size_carryover" in meta and "size_baseline" in meta:
        sc, sb = int(meta["size_carryover"]), int(meta["size_baseline"])
        r = sc / sb if sb else float("inf")
        w("| archive size | %.2f MiB | `tar \\| zstd -3` archive | %.2f MiB | %.4f× | ≤ 1.0× | %s |"
          % (sc / 2**20, sb / 2**20, r, verdict(r, 1.0)))

    for step, has_goal in RSS_ROWS:
        title = "peak RSS %s" % STEP_TITLES[step]
        if step in skipped or step in not_run:
            if has_goal:
                missing_row(title, "skipped" if step in skipped else "not run (--only)")
            continue
        co = runs.get((step, "co"), [])
        p = peak(co)
        if p is None:
            missing_row(title, "no data")
            continue
        bpk = [(peak(rs), t) for (s, t), rs in runs.items()
               if s == step and t != "co" and not t.endswith("_sync")]
        bpk = [x for x in bpk if x[0] is not None]
        bmax = max(bpk) if bpk else None
        w("| %s | %.1f MiB | %s | %s | — | %s | %s |"
          % (title, p, cell("max of baselines (`%s`)" % TOOL_LABELS[(step, bmax[1])]) if bmax else "—",
             "%.1f MiB" % bmax[0] if bmax else "—",
             "≤ %d MiB" % RSS_GOAL_MIB if has_goal else "—",
             ("met" if p <= RSS_GOAL_MIB else "**missed**") if has_goal else "info"))
    w("")
    w("Times are wall-clock medians of the measured runs (warm page cache; the warm-up run is "
      "not counted). Ratio = carryover / baseline; peak RSS is the maximum over the measured runs. "
      "Goals compare with the plain baselines, which leave their output in the page cache; "
      "carryover fsyncs its archive and syncfs()es its staged tree, so the *durable baseline* rows "
      "add a `sync` of the baseline's output (timed right after it) for comparison.")
    w("")

    # raw timings
    w("## Raw timings")
    w("")
    n = int(meta.get("runs", "0") or 0)
    w("| step | tool | warm-up | %s | median | min | max | spread | peak RSS | failed runs |"
      % " | ".join("run %d" % i for i in range(1, n + 1)))
    w("|---|---|---|%s---|---|---|---|---|---|" % ("---|" * n))
    order = [(s, t) for (s, t) in TOOL_LABELS if (s, t) in runs]
    order += sorted(k for k in runs if k not in TOOL_LABELS)
    for key in order:
        rs = sorted(runs[key], key=lambda r: r["run"])
        by = {r["run"]: r for r in rs}
        cells = []
        for i in range(0, n + 1):
            r = by.get(i)
            cells.append("—" if r is None else ("%.3f" % r["wall"]) + ("" if r["rc"] == 0 else " (exit %d)" % r["rc"]))
        m = [r["wall"] for r in measured(rs)]
        mm = statistics.median(m) if m else None
        spread = "%.0f %%" % (100 * (max(m) - min(m)) / mm) if m and mm else "—"
        p = peak(rs)
        w("| %s | `%s` | %s | %s | %s | %s | %s | %s | %s |"
          % (STEP_TITLES.get(key[0], key[0]), cell(TOOL_LABELS.get(key, key[1])), " | ".join(cells),
             "%.3f" % mm if mm is not None else "—",
             "%.3f" % min(m) if m else "—", "%.3f" % max(m) if m else "—", spread,
             "%.1f MiB" % p if p is not None else "—", len(failed(rs)) or ""))
    w("")
    w("Seconds, measured with bash's `$EPOCHREALTIME` around `/usr/bin/time -f '%e %M'` "
      "(whose own `%e` has only 10 ms resolution; its values are in `raw.tsv`). Spread = (max − min) / median.")
    w("")

    w("## Outputs")
    w("")
    for k, label in (("size_carryover", "carryover archive (`OUT`)"),
                     ("size_carryover_sidecar", "carryover `OUT.sha256` sidecar"),
                     ("size_baseline", "baseline `tar | zstd -T0 -3` archive (`X`)"),
                     ("state_bytes", "baseline STATE on disk (apparent bytes, `du -sb`)"),
                     ("state_files", "baseline STATE regular files"),
                     ("pack_bytes", "whole pack (apparent bytes)")):
        if k in meta:
            v = int(meta[k])
            w("- %s: %s%s" % (label, format(v, ","),
                               "" if k.endswith("files") else " B (%.2f MiB)" % (v / 2**20)))
    if "state_bytes" in meta and "size_carryover" in meta:
        sb = int(meta["state_bytes"])
        w("- compression ratio vs STATE bytes: carryover %.3f×, baseline %.3f×"
          % (sb / int(meta["size_carryover"]), sb / int(meta["size_baseline"])))
    w("")
    if a.selection:
        w("### Selection: carryover's built-in manifest vs the baseline's STATE")
        w("")
        with open(a.selection) as f:
            w(f.read().rstrip("\n"))
        w("")

    w("## Machine")
    w("")
    for k, label in (("cpu", "CPU"), ("nproc", "nproc"), ("mem", "memory"), ("kernel", "kernel"),
                     ("fs", "work dir filesystem"), ("workdir", "work dir"),
                     ("load_start", "load average at start"), ("load_end", "load average at end"),
                     ("tools", "tools"), ("rustc", "rustc"),
                     ("commit_full", "carryover commit"), ("binary", "binary"),
                     ("mkpack", "pack generator")):
        if k in meta:
            w("- %s: %s" % (label, meta[k]))
    w("")
    if a.notes:
        with open(a.notes) as f:
            notes = [l.rstrip("\n") for l in f if l.strip()]
        if notes:
            w("## Notes")
            w("")
            for l in notes:
                w("- " + l)
            w("")

    text = "\n".join(out)
    with open(a.out, "w") as f:
        f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
