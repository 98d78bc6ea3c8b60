#!/usr/bin/python3
"""Helpers for fanout.sh (CPU snapshots and wrk parsing come from pt_stats.py).

  fanout_stats.py enqueue RAW TARGET NRCPT RUN WRK_OUT SNAP_A SNAP_B WRK_CPU_S
                  UPSTREAM_LINES QUEUE_GROWTH DLQ LAST_TRY
      One wrk run of NRCPT-recipient SendEmails. Checks: no non-2xx, no socket
      error (MAX_SOCKET_ERRORS), no dead letter, upstream requests = client
      requests (sync: copy 0 of each request; PHP: recipient 1) or 0
      (first_recipient = queue), queue growth = requests x recipients queued
      per request (up to CONNS + 2 requests in flight when wrk stops
      counting). Appends a JSON line to RAW; exits 1 when a check fails, 2
      when other processes disturbed the run (unless LAST_TRY is 1).
  fanout_stats.py drain RAW TARGET RUN QUEUED SENT SECONDS LEFT PENDING DLQ DELAYED SNAP_A SNAP_B WORKERS LAST_TRY
      One drain run: QUEUED recipients, SENT upstream requests counted, in
      SECONDS. Checks: SENT == QUEUED, nothing left, pending, dead or delayed.
  fanout_stats.py mem RAW TARGET RUN JSON
      One memory run (JSON assembled by fanout.sh); appended as is.
  fanout_stats.py snap OUT GROUP=PID[+][,PID[+]...] ...
      As pt_stats.py snap, but a group may list several pids (PHP workers).
  fanout_stats.py waitlines FILE OFFSET NEED TIMEOUT_S
      Read FILE from byte OFFSET every 20 ms until NEED more lines arrived
      (or TIMEOUT_S passed); print the wall-clock time (s since the epoch)
      at which they were seen. Reads only the new bytes, so polling costs
      next to nothing however long the access log already is.
  fanout_stats.py table RAW
      The Markdown tables: the summary (php, sesgate, ratio, target, met?)
      and the details of every measurement.
Settings (env): CONNS (16) for the in-flight allowance, OTHER_MAX (0.12),
MAX_SOCKET_ERRORS (0).
"""
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pt_stats  # noqa: E402

# PHP baseline figures from seed-php RESULTS.md (section 4), for reference
PHP_RESULTS = {"enq50": 38676, "drain": 6687, "mem_queued": 70.8, "mem_left": 41}
LABEL = {"php": "PHP front (nginx + php-fpm)", "sesgate": "sesgate serve, first_recipient = sync",
         "sesgate_queue": "sesgate serve, first_recipient = queue"}


def load_cores(snap_a, snap_b):
    a, b = json.load(open(snap_a)), json.load(open(snap_b))
    c, wall = pt_stats.cores(a, b)
    return c, wall


def other_check(c, extra, target, what, last_try):
    """Split machine use into ours and other; exit 2 for a disturbed run."""
    ours = sum(v for k, v in c.items() if k not in ("machine", "irq", "steal")) + extra
    c["other"] = round(c.pop("machine") - ours, 3)
    other_max = float(os.environ.get("OTHER_MAX", "0.12"))
    disturbed = c["other"] > other_max
    if disturbed and last_try != "1":
        print(f"{target} {what}: other processes used {c['other']:.2f} cores "
              f"(more than {other_max}); run discarded")
        sys.exit(2)
    if disturbed:
        print(f"WARNING: {target} {what} kept although other processes used {c['other']:.2f} cores")
    return disturbed


def enqueue(raw, target, nrcpt, run, wrk_out, snap_a, snap_b, wrk_cpu, up_lines, growth, dlq,
            last_try):
    w = pt_stats.parse_wrk(open(wrk_out).read())
    nrcpt, up_lines, growth, dlq = int(nrcpt), int(up_lines), int(growth), int(dlq)
    c, wall = load_cores(snap_a, snap_b)
    c["wrk"] = round(float(wrk_cpu) / wall, 3)
    what = f"enqueue {nrcpt} run {run}"
    disturbed = other_check(c, c["wrk"], target, what, last_try)
    per_req = nrcpt if target == "sesgate_queue" else nrcpt - 1
    conns = int(os.environ.get("CONNS", "16"))
    rec = {"kind": "enqueue", "target": target, "nrcpt": nrcpt, "run": int(run), "wrk": w,
           "queued_per_request": per_req, "rcpt_per_s": round(w["rps"] * per_req, 1),
           "queue_growth": growth,
           # per request the front finished: with copy 0 sent first (php, sync) each
           # finished request made one upstream request; wrk stops counting with
           # up to CONNS requests still in flight
           "growth_per_request": round(growth / (w["requests"] if target == "sesgate_queue"
                                                 else max(up_lines, 1)), 3) if w["requests"] else 0,
           "upstream_lines": up_lines, "dlq": dlq, "cores": c, "wall_s": round(wall, 3),
           "disturbed": disturbed}
    with open(raw, "a") as f:
        f.write(json.dumps(rec) + "\n")
    fails = pt_stats.wrk_fails(w)
    slack = conns + 2 + w["socket_errors"]
    if not (w["requests"] * per_req <= growth <= (w["requests"] + slack) * per_req) or growth % per_req:
        fails.append(f"queue grew by {growth} for {w['requests']} requests of {per_req} queued")
    lo, hi = (0, 0) if target == "sesgate_queue" else (w["requests"], w["requests"] + slack)
    if not lo <= up_lines <= hi:
        fails.append(f"upstream saw {up_lines} requests for {w['requests']} client requests")
    if dlq:
        fails.append(f"{dlq} dead letters")
    print(f"{target} enqueue {nrcpt} run {run}: {w['rps']:,.1f} req/s = {rec['rcpt_per_s']:,.0f} "
          f"recipients queued/s, p50 {w['p50_us']/1000:.2f} ms p99 {w['p99_us']/1000:.2f} ms, "
          f"{w['requests']} requests, queue +{growth} ({rec['growth_per_request']}/request), "
          f"upstream +{up_lines}, non-2xx {w['non2xx']}, socket errors {w['socket_errors']}, cores "
          + " ".join(f"{k} {v:.2f}" for k, v in c.items()))
    if fails:
        print(f"FAIL: {target} {what}: " + "; ".join(fails), file=sys.stderr)
        sys.exit(1)


def drain(raw, target, run, queued, sent, seconds, left, pending, dlq, delayed, snap_a, snap_b,
          workers, last_try):
    queued, sent, seconds = int(queued), int(sent), float(seconds)
    c, wall = load_cores(snap_a, snap_b)
    what = f"drain run {run}"
    disturbed = other_check(c, 0.0, target, what, last_try)
    rec = {"kind": "drain", "target": target, "run": int(run), "workers": workers,
           "queued": queued, "sent": sent, "seconds": seconds,
           "per_s": round(queued / seconds, 1) if seconds > 0 else 0, "left": int(left),
           "pending": int(pending), "dlq": int(dlq), "delayed": int(delayed), "cores": c,
           "disturbed": disturbed}
    with open(raw, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(f"{target} drain run {run} ({workers}): {queued} queued, {sent} sent in {seconds:.3f} s "
          f"= {rec['per_s']:,.0f}/s, left {left}, pending {pending}, dead {dlq}, delayed {delayed}, "
          "cores " + " ".join(f"{k} {v:.2f}" for k, v in c.items()))
    fails = []
    if sent != queued:
        fails.append(f"{sent} upstream requests for {queued} queued")
    for name, v in (("left in the queue", left), ("pending", pending), ("dead letters", dlq),
                    ("delayed", delayed)):
        if int(v):
            fails.append(f"{v} {name}")
    if fails:
        print(f"FAIL: {target} {what}: " + "; ".join(fails), file=sys.stderr)
        sys.exit(1)


def mem(raw, target, run, js):
    rec = json.loads(js)
    rec.update({"kind": "mem", "target": target, "run": int(run)})
    q = rec["queued"]
    rec["bytes_per_rcpt"] = round((rec["used_after"] - rec["used_before"]) / q, 1)
    rec["left_per_rcpt"] = round((rec["used_after_drain"] - rec["used_before"]) / q, 1)
    with open(raw, "a") as f:
        f.write(json.dumps(rec) + "\n")
    print(f"{target} mem run {run}: {q} queued, {rec['keys']} keys, "
          f"{rec['bytes_per_rcpt']} B/recipient queued; after delivery {rec['keys_after_drain']} keys, "
          f"{rec['left_per_rcpt']} B/recipient left; {json.dumps(rec.get('detail', {}))}")
    fails = [f"{k} = {rec[k]}" for k in ("left_after_drain", "dlq", "pending") if rec.get(k)]
    if rec.get("sent", q) != q:
        fails.append(f"{rec['sent']} upstream requests for {q} queued")
    if fails:
        print(f"FAIL: {target} mem run {run}: " + "; ".join(fails), file=sys.stderr)
        sys.exit(1)


def snap(out, specs):
    import time
    groups = {}
    for spec in specs:
        name, pids = spec.split("=", 1)
        g = groups.setdefault(name, {})
        for pid in filter(None, pids.split(",")):
            tree = pid.endswith("+")
            pid = int(pid.rstrip("+"))
            for p in (pt_stats.descendants(pid) if tree else [pid]):
                g[str(p)] = pt_stats.ticks(p)
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    groups["machine"] = {"busy": cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6]}
    groups["irq"] = {"irq": cpu[5] + cpu[6]}
    groups["steal"] = {"steal": cpu[7]}
    with open(out, "w") as f:
        json.dump({"t": time.monotonic(), "groups": groups}, f)


def waitlines(path, offset, need, timeout):
    import time
    need, deadline = int(need), time.monotonic() + float(timeout)
    seen = 0
    with open(path, "rb") as f:
        f.seek(int(offset))
        while seen < need and time.monotonic() < deadline:
            chunk = f.read()
            if chunk:
                seen += chunk.count(b"\n")
            else:
                time.sleep(0.02)
    print(f"{time.time():.6f}")
    if seen < need:
        print(f"only {seen} of {need} lines after {timeout} s", file=sys.stderr)
        sys.exit(1)


def fmt(v, unit=""):
    if v is None:
        return "-"
    if float(v).is_integer() and not unit:
        return f"{int(v):,}"
    return f"{v:,.1f}{unit}" if abs(v) < 1000 else f"{v:,.0f}{unit}"


def table(raw):
    rows = [json.loads(line) for line in open(raw)]
    med = statistics.median

    def pick(kind, target, **kw):
        return [r for r in rows if r["kind"] == kind and r["target"] == target
                and all(r.get(k) == v for k, v in kw.items())]

    def mval(rs, key):
        return med([r[key] for r in rs]) if rs else None

    def allv(rs, key, unit=""):
        return ", ".join(fmt(r[key], unit) + ("*" if r.get("disturbed") else "") for r in rs)

    out = []
    out.append("| measurement | php | sesgate | ratio | target | met? | sesgate / PHP in seed-php RESULTS.md |")
    out.append("|---|---|---|---|---|---|---|")

    def vs(s, key, unit="x"):
        ref = PHP_RESULTS.get(key)
        if s is None or ref is None:
            return "-"
        return f"{s / ref:.2f}{unit} (PHP {ref:,})"
    sizes = sorted({r["nrcpt"] for r in rows if r["kind"] == "enqueue"})
    for n in sizes:
        p = mval(pick("enqueue", "php", nrcpt=n), "rcpt_per_s")
        for t, label in (("sesgate", "sync"), ("sesgate_queue", "first_recipient = queue")):
            s = mval(pick("enqueue", t, nrcpt=n), "rcpt_per_s")
            if s is None:
                continue
            ratio = s / p if p else None
            met = "-" if ratio is None else ("yes" if ratio >= 5 else "**no**")
            name = f"enqueue {n} recipients/request, recipients queued/s"
            if t == "sesgate_queue":
                name += " (sesgate with first_recipient = queue)"
            out.append(f"| {name} | {fmt(p)} | {fmt(s)} | "
                       f"{'-' if ratio is None else f'**{ratio:.2f}x**'} | >= 5x | {met} | "
                       f"{vs(s, 'enq50') if n == 50 else '-'} |")
    p = mval(pick("drain", "php"), "per_s")
    s = mval(pick("drain", "sesgate"), "per_s")
    if p or s:
        ratio = s / p if p and s else None
        out.append(f"| drain, recipients sent/s (no rate limit) | {fmt(p)} | {fmt(s)} | "
                   f"{'-' if ratio is None else f'**{ratio:.2f}x**'} | >= 2x | "
                   f"{'-' if ratio is None else ('yes' if ratio >= 2 else '**no**')} | {vs(s, 'drain')} |")
    p = mval(pick("mem", "php"), "bytes_per_rcpt")
    s = mval(pick("mem", "sesgate"), "bytes_per_rcpt")
    if p or s:
        ratio = s / p if p and s else None
        out.append(f"| Redis bytes per queued recipient | {fmt(p, ' B')} | {fmt(s, ' B')} | "
                   f"{'-' if ratio is None else f'{ratio:.2f}'} | < {PHP_RESULTS['mem_queued']} B "
                   f"(PHP, RESULTS.md) | {'-' if s is None else ('yes' if s < PHP_RESULTS['mem_queued'] else '**no**')} | {vs(s, 'mem_queued', '')} |")
        pk, sk = pick("mem", "php"), pick("mem", "sesgate")
        pl, sl = mval(pk, "left_per_rcpt"), mval(sk, "left_per_rcpt")
        pkeys = mval(pk, "keys_after_drain")
        skeys = mval(sk, "keys_after_drain")
        out.append(f"| Redis bytes per recipient left after delivery (keys left) | "
                   f"{fmt(pl, ' B')} ({fmt(pkeys)} keys, never freed) | "
                   f"{fmt(sl, ' B')} ({fmt(skeys)} keys, batch status until status_ttl) | "
                   f"{'-' if not (pl and sl) else f'{sl / pl:.2f}'} | none (PHP leaks "
                   f"{PHP_RESULTS['mem_left']} B in RESULTS.md) | - | {vs(sl, 'mem_left', '')} |")
    out.append("")
    out.append("Ratios are of the medians; the php column comes from the same run, the last column "
               "compares with the figures of seed-php's RESULTS.md (measured on another day).")
    out.append("")

    # details
    enq = [r for r in rows if r["kind"] == "enqueue"]
    if enq:
        out.append("#### Enqueue runs (wrk -t1, medians, every run in brackets)")
        out.append("")
        out.append("| target | recipients/request | req/s | recipients queued/s | p50 ms | p99 ms "
                   "| queue growth/request (1) | non-2xx / socket errors | cores (median) |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for n in sizes:
            for t in ("php", "sesgate", "sesgate_queue"):
                rs = pick("enqueue", t, nrcpt=n)
                if not rs:
                    continue
                rps = [r["wrk"]["rps"] for r in rs]
                groups = [g for g in rs[0]["cores"] if g not in ("irq", "steal")]
                cs = ", ".join(f"{g} {med([r['cores'][g] for r in rs]):.2f}" for g in groups)
                out.append(
                    f"| {LABEL[t]} | {n} | {fmt(med(rps))} "
                    f"({', '.join(fmt(x) for x in rps)}) | **{fmt(mval(rs, 'rcpt_per_s'))}** "
                    f"({allv(rs, 'rcpt_per_s')}) | {med([r['wrk']['p50_us'] for r in rs]) / 1000:.2f} "
                    f"| {med([r['wrk']['p99_us'] for r in rs]) / 1000:.2f} "
                    f"| {med([r['growth_per_request'] for r in rs]):.2f} "
                    f"| {sum(r['wrk']['non2xx'] for r in rs)} / {sum(r['wrk']['socket_errors'] for r in rs)} "
                    f"| {cs} |")
        out.append("")
        out.append("(1) Entries added to the queue (LLEN mail, XLEN of the stream) per request the front "
                   "finished: for php and sync, per upstream request (each request sends recipient 1 or "
                   "copy 0 before it returns); for first_recipient = queue, per request wrk counted, which "
                   "leaves out up to CONNS requests still in flight when wrk stopped.")
        out.append("")
    dr = [r for r in rows if r["kind"] == "drain"]
    if dr:
        out.append("#### Drain runs")
        out.append("")
        out.append("| target | workers | recipients sent/s | seconds | left / pending / dead | cores (median) |")
        out.append("|---|---|---|---|---|---|")
        for t in ("php", "sesgate"):
            rs = pick("drain", t)
            if not rs:
                continue
            groups = [g for g in rs[0]["cores"] if g not in ("irq", "steal")]
            cs = ", ".join(f"{g} {med([r['cores'][g] for r in rs]):.2f}" for g in groups)
            out.append(f"| {t} | {rs[0]['workers']} | **{fmt(mval(rs, 'per_s'))}** ({allv(rs, 'per_s')}) "
                       f"| {mval(rs, 'seconds'):.3f} | {sum(r['left'] for r in rs)} / "
                       f"{sum(r['pending'] for r in rs)} / {sum(r['dlq'] for r in rs)} | {cs} |")
        out.append("")
    mm = [r for r in rows if r["kind"] == "mem"]
    if mm:
        out.append("#### Redis memory runs")
        out.append("")
        out.append("| target | recipients queued | keys | B/recipient queued | keys after delivery "
                   "| B/recipient left | MEMORY USAGE detail (first run) |")
        out.append("|---|---|---|---|---|---|---|")
        for t in ("php", "sesgate"):
            rs = pick("mem", t)
            if not rs:
                continue
            d = rs[0].get("detail", {})
            out.append(f"| {t} | {rs[0]['queued']:,} | {fmt(mval(rs, 'keys'))} | **{fmt(mval(rs, 'bytes_per_rcpt'))}** "
                       f"({allv(rs, 'bytes_per_rcpt')}) | {fmt(mval(rs, 'keys_after_drain'))} "
                       f"| **{fmt(mval(rs, 'left_per_rcpt'))}** ({allv(rs, 'left_per_rcpt')}) | "
                       + ", ".join(f"{k} {v:,}" for k, v in d.items()) + " |")
        out.append("")
    if any(r.get("disturbed") for r in rows):
        out.append("\\* run disturbed: other processes on the machine used more than OTHER_MAX cores.")
        out.append("")
    print("\n".join(out))


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    args = sys.argv[2:]
    if cmd == "enqueue" and len(args) == 12:
        enqueue(*args)
    elif cmd == "drain" and len(args) == 14:
        drain(*args)
    elif cmd == "mem" and len(args) == 4:
        mem(*args)
    elif cmd == "snap" and len(args) >= 1:
        snap(args[0], args[1:])
    elif cmd == "waitlines" and len(args) == 4:
        waitlines(*args)
    elif cmd == "table" and len(args) == 1:
        table(*args)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
