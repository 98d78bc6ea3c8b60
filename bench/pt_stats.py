#!/usr/bin/python3
"""Helpers for passthrough.sh.

  pt_stats.py snap OUT GROUP=PID[+] ...
      CPU ticks (utime+stime from /proc/PID/stat) of each process group, with a
      monotonic timestamp. PID+ also counts every descendant of PID. The group
      "machine" is the busy time of all CPUs (/proc/stat, without steal), to
      show other load; "irq" (irq+softirq) and "steal" are recorded apart.
  pt_stats.py record RAW TARGET CONNS RUN WRK_OUT SNAP_A SNAP_B WRK_CPU_S UPSTREAM_LINES LAST_TRY
      Parse one wrk --latency output, check it (no non-2xx, no socket errors,
      one upstream request per client request), append a JSON line to RAW and
      print a one-line summary. Exits 1 when a check fails. When processes
      outside the benchmark used more than OTHER_MAX (env, default 0.12) cores
      during the run, exits 2 without recording it, unless LAST_TRY is 1: then
      the run is recorded and flagged "disturbed".
  pt_stats.py check WRK_OUT
      The same checks on a wrk output alone (warm-up runs).
  MAX_SOCKET_ERRORS (env, default 0): socket errors tolerated per run; they
  are shown in the table. Non-2xx responses are never tolerated.
  pt_stats.py busy SECONDS
      Cores busy on the whole machine over SECONDS (from /proc/stat).
  pt_stats.py rss PID OUT
      VmHWM and VmRSS of PID (from /proc/PID/status) as JSON into OUT.
  pt_stats.py table RAW [RSS_JSON]
      Markdown table (median of the runs) and the sesgate ratios.
"""
import json
import os
import re
import statistics
import sys
import time

TCK = os.sysconf("SC_CLK_TCK")
UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}
LABEL = {"upstream": "fake SES upstream alone (reference)", "php": "PHP front (nginx + php-fpm)", "nginx": "nginx proxy_pass (keepalive)",
         "sesgate": "sesgate serve", "base": "sesgate serve, BASE_BIN (another build)"}


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def descendants(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                kids.setdefault(int(stat_fields(d)[1]), []).append(int(d))
            except (OSError, IndexError):
                pass
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def ticks(pid):
    try:
        f = stat_fields(pid)
        return int(f[11]) + int(f[12])
    except (OSError, IndexError):
        return 0


def snap(out, specs):
    groups = {}
    for spec in specs:
        name, pid = spec.split("=", 1)
        tree = pid.endswith("+")
        pid = int(pid.rstrip("+"))
        pids = descendants(pid) if tree else [pid]
        groups[name] = {str(p): ticks(p) for p in pids}
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    # user + nice + system + irq + softirq: the per-process times above include
    # the irq and softirq time the kernel charged to them. irq+softirq alone
    # and steal are recorded for information.
    groups["machine"] = {"busy": cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6]}
    groups["irq"] = {"irq": cpu[5] + cpu[6]}
    groups["steal"] = {"steal": cpu[7]}
    with open(out, "w") as f:
        json.dump({"t": time.monotonic(), "groups": groups}, f)


def cores(a, b):
    wall = b["t"] - a["t"]
    out = {}
    for g, pids in b["groups"].items():
        before = a["groups"].get(g, {})
        used = sum(v - before.get(p, 0) for p, v in pids.items()) / TCK
        out[g] = round(used / wall, 3)
    return out, wall


def to_us(num, unit):
    return float(num) * UNITS[unit]


def parse_wrk(text):
    r = {}
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(\w+),", text, re.M)
    if not m:
        raise ValueError("no 'N requests in T' line in the wrk output")
    r["requests"] = int(m.group(1))
    r["duration_us"] = to_us(m.group(2), m.group(3))
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    r["rps"] = float(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
        if not m:
            raise ValueError(f"no {pct}% line in the wrk output (run wrk with --latency)")
        r[f"p{pct}_us"] = to_us(m.group(1), m.group(2))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r["socket_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"^JSON (\{.*\})$", text, re.M)
    if m:
        j = json.loads(m.group(1))
        r["non2xx"] = max(r["non2xx"], j["non2xx"])
        r["socket_errors"] = max(r["socket_errors"], j["errors"])
    return r


def machine_busy():
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    return cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6]


def busy(seconds):
    t0, b0 = time.monotonic(), machine_busy()
    time.sleep(float(seconds))
    t1, b1 = time.monotonic(), machine_busy()
    print(f"{(b1 - b0) / TCK / (t1 - t0):.2f}")


def rss(pid, out):
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmHWM", "VmRSS"):
                vals[k] = v.strip()
    with open(out, "w") as f:
        json.dump(vals, f)


def record(raw, target, conns, run, wrk_out, snap_a, snap_b, wrk_cpu, up_lines, last_try):
    text = open(wrk_out).read()
    w = parse_wrk(text)
    a, b = json.load(open(snap_a)), json.load(open(snap_b))
    c, wall = cores(a, b)
    c["wrk"] = round(float(wrk_cpu) / wall, 3)
    ours = sum(v for k, v in c.items() if k not in ("machine", "irq", "steal"))
    c["other"] = round(c.pop("machine") - ours, 3)
    other_max = float(os.environ.get("OTHER_MAX", "0.12"))
    disturbed = c["other"] > other_max
    if disturbed and last_try != "1":
        print(f"{target} c{conns} run {run}: other processes used {c['other']:.2f} cores "
              f"(more than {other_max}); run discarded ({w['rps']:,.0f} req/s)")
        sys.exit(2)
    rec = {"target": target, "conns": int(conns), "run": int(run), "wrk": w, "cores": c,
           "wall_s": round(wall, 3), "upstream_lines": int(up_lines), "disturbed": disturbed}
    with open(raw, "a") as f:
        f.write(json.dumps(rec) + "\n")
    if disturbed:
        print(f"WARNING: {target} c{conns} run {run} kept although other processes used "
              f"{c['other']:.2f} cores")
    fails = wrk_fails(w)
    # Every client request must have reached the upstream exactly once; up to
    # CONNS requests may be in flight when wrk stops counting, and a request
    # whose response wrk could not parse counts as a socket error.
    hi = w["requests"] + int(conns) + 2 + w["socket_errors"]
    if not (w["requests"] <= int(up_lines) <= hi):
        fails.append(f"upstream saw {up_lines} requests for {w['requests']} client requests")
    print(f"{target} c{conns} run {run}: {w['rps']:,.0f} req/s p50 {w['p50_us']/1000:.3f} ms "
          f"p99 {w['p99_us']/1000:.3f} ms, {w['requests']} requests, upstream {up_lines}, "
          f"non-2xx {w['non2xx']}, socket errors {w['socket_errors']}, cores "
          + " ".join(f"{k} {v:.2f}" for k, v in c.items()))
    if fails:
        print(f"FAIL: {target} c{conns} run {run}: " + "; ".join(fails), file=sys.stderr)
        sys.exit(1)


def wrk_fails(w):
    fails = []
    if w["non2xx"]:
        fails.append(f"{w['non2xx']} non-2xx responses")
    if w["socket_errors"] > int(os.environ.get("MAX_SOCKET_ERRORS", "0")):
        fails.append(f"{w['socket_errors']} socket errors")
    if w["requests"] == 0:
        fails.append("no request completed")
    return fails


def check(wrk_out):
    w = parse_wrk(open(wrk_out).read())
    fails = wrk_fails(w)
    if fails:
        print(f"FAIL: {wrk_out}: " + "; ".join(fails), file=sys.stderr)
        sys.exit(1)
    if w["socket_errors"]:
        print(f"WARNING: {w['socket_errors']} socket errors in {wrk_out}")


OWN = {"upstream": ("upstream_nginx",), "php": ("front_nginx", "php_fpm", "redis"), "nginx": ("proxy_nginx",),
       "sesgate": ("sesgate",), "base": ("sesgate",)}


def cpu_us(r):
    """CPU microseconds per request of the target's own processes in run R
    (the upstream's not counted, except for the upstream alone), over
    the requests the upstream received during the CPU snapshots."""
    own = sum(r["cores"].get(g, 0) for g in OWN.get(r["target"], ()))
    return own * r["wall_s"] * 1e6 / max(r["upstream_lines"], r["wrk"]["requests"], 1)


def table(raw, rss_path=None):
    rows = [json.loads(line) for line in open(raw)]
    med = statistics.median
    by = {}
    for r in rows:
        by.setdefault((r["target"], r["conns"]), []).append(r)
    summary = {}
    print("| test | conns | req/s: median (all runs) | p50 ms | p99 ms | CPU us per request (median) "
          "| non-2xx / socket errors (all runs) | cores used (median) |")
    print("|---|---|---|---|---|---|---|---|")
    for (target, conns), rs in by.items():
        rps = [r["wrk"]["rps"] for r in rs]
        p50 = med([r["wrk"]["p50_us"] for r in rs]) / 1000
        p99 = med([r["wrk"]["p99_us"] for r in rs]) / 1000
        groups = list(rs[0]["cores"].keys())
        cs = ", ".join(f"{g} {med([r['cores'][g] for r in rs]):.2f}" for g in groups
                       if g not in ("other", "irq", "steal"))
        cs += (f"; irq+softirq (within the above) {med([r['cores']['irq'] for r in rs]):.2f}"
               f", other processes {med([r['cores']['other'] for r in rs]):.2f}")
        cpu = med([cpu_us(r) for r in rs])
        summary[(target, conns)] = (med(rps), p99, cpu)
        allr = ", ".join(f"{r['wrk']['rps']:,.0f}" + ("*" if r.get("disturbed") else "") for r in rs)
        print(f"| {LABEL.get(target, target)} | {conns} | **{med(rps):,.0f}** ({allr}) "
              f"| {p50:.3f} | {p99:.3f} | {cpu:.1f} | {sum(r['wrk']['non2xx'] for r in rs)} / "
              f"{sum(r['wrk']['socket_errors'] for r in rs)} | {cs} |")
    print()
    print("| ratio | conns | ratio of the medians (each round) | target |")
    print("|---|---|---|---|")
    conns_seen = sorted({c for _, c in by}, reverse=True)

    def rounds(a, b, c, key):
        """a/b of KEY in each round (runs with the same number)."""
        ra = {r["run"]: r["wrk"][key] for r in by.get((a, c), [])}
        rb = {r["run"]: r["wrk"][key] for r in by.get((b, c), [])}
        return ", ".join(f"{ra[k] / rb[k]:.2f}" for k in sorted(ra) if k in rb)

    for c in conns_seen:
        s, p, n = summary.get(("sesgate", c)), summary.get(("php", c)), summary.get(("nginx", c))
        if s and p:
            print(f"| sesgate / PHP req/s | {c} | **{s[0] / p[0]:.2f}x** "
                  f"({rounds('sesgate', 'php', c, 'rps')}) | >= 4x |")
            print(f"| sesgate p99 / PHP p99 | {c} | **{s[1] / p[1]:.2f}** "
                  f"({rounds('sesgate', 'php', c, 'p99_us')}) | <= 0.15 |")
        if s and n:
            print(f"| sesgate / nginx proxy_pass req/s | {c} | **{s[0] / n[0]:.2f}** "
                  f"({rounds('sesgate', 'nginx', c, 'rps')}) | >= 0.7 |")
            print(f"| sesgate / nginx proxy_pass CPU per request | {c} | **{s[2] / n[2]:.2f}** "
                  f"({s[2]:.1f} / {n[2]:.1f} us) | <= 1.5 |")
        b = summary.get(("base", c))
        if s and b:
            print(f"| sesgate / BASE_BIN req/s | {c} | **{s[0] / b[0]:.2f}** "
                  f"({rounds('sesgate', 'base', c, 'rps')}) | >= 1 (nothing slowed); limiter on / off: >= 0.9 |")
            print(f"| sesgate / BASE_BIN CPU per request | {c} | **{s[2] / b[2]:.2f}** "
                  f"({s[2]:.1f} / {b[2]:.1f} us) | |")
    if any(r.get("disturbed") for r in rows):
        print()
        print("\\* run disturbed: other processes on the machine used more than OTHER_MAX cores.")
    if rss_path and os.path.exists(rss_path):
        rss = json.load(open(rss_path))
        print()
        print(f"sesgate memory after all runs: VmHWM {rss['VmHWM']}, VmRSS {rss['VmRSS']}.")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "snap" and len(sys.argv) >= 3:
        snap(sys.argv[2], sys.argv[3:])
    elif cmd == "check" and len(sys.argv) == 3:
        check(sys.argv[2])
    elif cmd == "busy" and len(sys.argv) == 3:
        busy(sys.argv[2])
    elif cmd == "rss" and len(sys.argv) == 4:
        rss(*sys.argv[2:])
    elif cmd == "record" and len(sys.argv) == 12:
        record(*sys.argv[2:])
    elif cmd == "table" and len(sys.argv) in (3, 4):
        table(*sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
