"""The performance targets, checked against one bench/run's results.

Each target compares figures measured in the same run (ratios against plain
ZEO, against the relay floor, against the 1-member array), never absolute
times: the machine's speed and load cancel out. A target whose figures are
missing from the run (its profile was not asked for, or a workload failed)
is reported as "not measured", never as met.
"""

READS = ("read_c1", "read_c4")


def _summary(doc, workload):
    """The zeo_bench summary of one workload, or None if it did not run."""
    s = ((doc or {}).get("summary") or {}).get(workload)
    if not s or not s.get("target") or not s.get("reference") or s.get("ratio") is None:
        return None
    return s


def _row(target, measured, met):
    return {"target": target, "measured": measured,
            "met": None if measured is None else bool(met)}


def one_member(results):
    """The first target, from zeoraid measured side by side with the relay
    when the run has it (`vs_floor`), else from the 1-member and floor
    blocks, each against plain ZEO."""
    if results.get("vs_floor"):
        return one_member_side_by_side(results["vs_floor"])
    return one_member_from_blocks(results)


def one_member_side_by_side(doc):
    """zeoraid (target) against the relay (reference) in the same rounds:
    its ratio to the relay is its ratio to plain ZEO over the floor's, its
    +p50 is its p50 over the floor's."""
    rows = []
    for wl in sorted(doc.get("summary", {})):
        s = _summary(doc, wl)
        name = "1 member %s: ratio >= 0.95 x floor's" % wl
        rows.append(_row(name, None if not s else "%.2f x, side by side" % s["ratio"],
                         s and s["ratio"] >= 0.95))
    for wl in READS:
        s = _summary(doc, wl)
        if not s:
            rows.append(_row("1 member %s: +p50 <= floor's + 10 us" % wl, None, False))
            rows.append(_row("1 member %s: CPU/load <= 1.5 x relay's" % wl, None, False))
            continue
        rows.append(_row("1 member %s: +p50 <= floor's + 10 us" % wl,
                         "%+.0f us over the floor, side by side" % s["added_p50_us"],
                         s["added_p50_us"] <= 10))
        zc, fc = s["target"].get("srv_cpu_us_per_op"), s["reference"].get("srv_cpu_us_per_op")
        rows.append(_row("1 member %s: CPU/load <= 1.5 x relay's" % wl,
                         None if zc is None or fc is None else "%.1f us vs relay %.1f us (%.2f x)"
                         % (zc, fc, zc / fc),
                         zc is not None and fc is not None and zc <= 1.5 * fc))
    return rows


def one_member_from_blocks(results):
    """1 member against the relay floor of the same run: ratio at least 0.95
    of the floor's on every workload; +p50 per load at most the floor's
    + 10 µs; CPU per load at most 1.5 times the relay's."""
    rows = []
    single, floor = results.get("arrays", {}).get("1"), results.get("floor")
    workloads = sorted(set((single or {}).get("summary", {})) | set((floor or {}).get("summary", {})))
    for wl in workloads:
        z, f = _summary(single, wl), _summary(floor, wl)
        name = "1 member %s: ratio >= 0.95 x floor's" % wl
        if not z or not f:
            rows.append(_row(name, None, False))
            continue
        rows.append(_row(name, "%.2f vs floor %.2f (%.2f x)" % (z["ratio"], f["ratio"], z["ratio"] / f["ratio"]),
                         z["ratio"] >= 0.95 * f["ratio"]))
    for wl in READS:
        z, f = _summary(single, wl), _summary(floor, wl)
        if not z or not f:
            rows.append(_row("1 member %s: +p50 <= floor's + 10 us" % wl, None, False))
            rows.append(_row("1 member %s: CPU/load <= 1.5 x relay's" % wl, None, False))
            continue
        rows.append(_row("1 member %s: +p50 <= floor's + 10 us" % wl,
                         "%+.0f us vs floor %+.0f us" % (z["added_p50_us"], f["added_p50_us"]),
                         z["added_p50_us"] <= f["added_p50_us"] + 10))
        zc, fc = z["target"].get("srv_cpu_us_per_op"), f["target"].get("srv_cpu_us_per_op")
        rows.append(_row("1 member %s: CPU/load <= 1.5 x relay's" % wl,
                         None if zc is None or fc is None else "%.1f us vs relay %.1f us" % (zc, fc),
                         zc is not None and fc is not None and zc <= 1.5 * fc))
    return rows


def mirroring(results):
    """2 members: write_1obj_c1 at least 0.9 of the 1-member figure; from
    the side-by-side block when the run has it."""
    side_by_side = _summary(results.get("mirroring"), "write_1obj_c1")
    if side_by_side:
        return [_row("2 members write_1obj_c1: ratio >= 0.9 x 1 member's",
                     "%.2f x, side by side" % side_by_side["ratio"], side_by_side["ratio"] >= 0.9)]
    arrays = results.get("arrays", {})
    one, two = _summary(arrays.get("1"), "write_1obj_c1"), _summary(arrays.get("2"), "write_1obj_c1")
    name = "2 members write_1obj_c1: ratio >= 0.9 x 1 member's"
    if not one or not two:
        return [_row(name, None, False)]
    return [_row(name, "%.2f vs %.2f (%.2f x)" % (two["ratio"], one["ratio"], two["ratio"] / one["ratio"]),
                 two["ratio"] >= 0.9 * one["ratio"])]


def other_hosts(results):
    """Members behind delaying links: commit p50 with 2 and 3 members within
    10 % of 1 member's; write_1obj_c4 at least 0.9 of the delayed reference."""
    link = results.get("link") or {}
    arrays = link.get("arrays", {})
    rows = []
    one = _summary(arrays.get("1"), "write_1obj_c1")
    for n in ("2", "3"):
        s = _summary(arrays.get(n), "write_1obj_c1")
        name = "linked, %s members: commit p50 <= 1.1 x 1 member's" % n
        if not one or not s:
            rows.append(_row(name, None, False))
            continue
        p1, pn = one["target"]["p50_ms"], s["target"]["p50_ms"]
        rows.append(_row(name, "%.2f ms vs %.2f ms (%.2f x)" % (pn, p1, pn / p1), pn <= 1.1 * p1))
    for n in ("1", "2", "3"):
        s = _summary(arrays.get(n), "write_1obj_c4")
        name = "linked, %s member%s: write_1obj_c4 >= 0.9 x reference" % (n, "" if n == "1" else "s")
        rows.append(_row(name, None if not s else "%.2f" % s["ratio"], s and s["ratio"] >= 0.9))
    return rows


def leader(results):
    """The multi-zeoraid leader at most 5 % below a single zeoraid."""
    doc = results.get("leader")
    if not doc:
        return [_row("leader >= 0.95 x single zeoraid", None, False)]
    rows = []
    for wl in sorted(doc.get("summary", {})):
        s = _summary(doc, wl)
        rows.append(_row("leader %s: >= 0.95 x single zeoraid" % wl,
                         None if not s else "%.2f" % s["ratio"], s and s["ratio"] >= 0.95))
    return rows


def tls(results):
    """TLS on both sides is measured and reported (no threshold: the
    ratios against a TLS runzeo are read beside the plain ones)."""
    doc = results.get("tls")
    ratios = {wl: s["ratio"] for wl in sorted((doc or {}).get("summary", {}))
              if (s := _summary(doc, wl))}
    name = "TLS on both sides measured against runzeo with TLS"
    if not ratios:
        return [_row(name, None, False)]
    return [_row(name, ", ".join("%s %.2f" % kv for kv in ratios.items()), True)]


def memory(results):
    """100 idle clients under 50 MB."""
    idle = results.get("idle_clients")
    name = "RSS with %s idle clients < 50 MB" % ((idle or {}).get("clients", 100))
    if not idle:
        return [_row(name, None, False)]
    rss = idle["rss_with_clients_kb"] / 1024
    return [_row(name, "%.1f MB" % rss, rss < 50)]


def evaluate(results):
    """Every target, in the order of the performance issue."""
    return (one_member(results) + mirroring(results) + other_hosts(results) + leader(results)
            + tls(results) + memory(results))


def markdown(rows):
    out = ["### Targets\n", "| target | measured | met |", "| --- | --- | --- |"]
    for r in rows:
        met = "not measured" if r["met"] is None else ("yes" if r["met"] else "no")
        out.append("| %s | %s | %s |" % (r["target"], r["measured"] or "-", met))
    out.append("")
    return out
