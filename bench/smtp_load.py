#!/usr/bin/python3
"""SMTP load for bench/smtp.sh: SESSIONS sessions at once, each sending
messages of RCPTS recipients back to back for SECONDS seconds, the way
Postfix's smtp-source does (-s SESSIONS -r RCPTS), plus what smtp-source
cannot: STARTTLS and AUTH PLAIN (sesgate takes mail only after both), and
the time of every message, from MAIL FROM to the answer after the data.

MAIL, the RCPTs and DATA go in one write (PIPELINING, announced by both
sesgate and Postfix), the data in a second.

usage: smtp_load.py HOST:PORT SESSIONS RCPTS SECONDS [--tls CA] [--auth USER PASSFILE] [--procs N] [--size BYTES]

Prints one JSON object: messages, seconds, per_second, p50_ms, p99_ms,
max_ms, errors (answers other than expected, with the first few), and the
driver's own CPU seconds.
"""

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import ssl
import time


async def reply(reader):
    """One SMTP reply: (code, last line)."""
    while True:
        line = await reader.readline()
        if not line:
            raise EOFError("closed")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), line.decode("latin-1").rstrip()


async def session(host, port, sid, rcpts, deadline, ctx, auth, size, lat, errors):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        code, text = await reply(reader)
        assert code == 220, text
        writer.write(b"EHLO load.sesgate.test\r\n")
        code, text = await reply(reader)
        assert code == 250, text
        if ctx is not None:
            writer.write(b"STARTTLS\r\n")
            code, text = await reply(reader)
            assert code == 220, text
            await writer.start_tls(ctx, server_hostname="localhost")
            writer.write(b"EHLO load.sesgate.test\r\n")
            code, text = await reply(reader)
            assert code == 250, text
        if auth is not None:
            tok = base64.b64encode(b"\0" + auth[0].encode() + b"\0" + auth[1].encode())
            writer.write(b"AUTH PLAIN " + tok + b"\r\n")
            code, text = await reply(reader)
            assert code == 235, text
        n = 0
        while time.monotonic() < deadline:
            to = [b"r%d-%d-%d@example.com" % (sid, n, i) for i in range(rcpts)]
            head = (b"From: Load <load@example.com>\r\nTo: " + b", ".join(to) + b"\r\nSubject: load %d %d\r\n"
                    b"Message-ID: <load.%d.%d.%d@example.com>\r\n\r\n" % (sid, n, os.getpid(), sid, n))
            body = (b"x" * 70 + b"\r\n") * max(1, (size - len(head)) // 72)
            t0 = time.perf_counter()
            writer.write(b"MAIL FROM:<load@example.com>\r\n" + b"".join(b"RCPT TO:<%s>\r\n" % a for a in to)
                         + b"DATA\r\n")
            ok = True
            for want in [250] * (1 + rcpts) + [354]:
                code, text = await reply(reader)
                if code != want:
                    ok = False
                    if len(errors) < 5:
                        errors.append(text)
            if not ok:
                writer.write(b"RSET\r\n")
                await reply(reader)
                errors.append(None)
                continue
            writer.write(head + body + b".\r\n")
            code, text = await reply(reader)
            if code != 250:
                if len(errors) < 5:
                    errors.append(text)
                errors.append(None)
                continue
            lat.append(time.perf_counter() - t0)
            n += 1
        writer.write(b"QUIT\r\n")
        await reply(reader)
    finally:
        writer.close()


def run_proc(args, first_sid, count, start_at, out):
    ctx = None
    if args.tls:
        ctx = ssl.create_default_context(cafile=args.tls)
    auth = None
    if args.auth:
        auth = (args.auth[0], open(args.auth[1]).read().strip())
    host, port = args.target.rsplit(":", 1)
    lat, errors = [], []

    async def main():
        await asyncio.sleep(max(0.0, start_at - time.time()))
        deadline = time.monotonic() + args.seconds
        res = await asyncio.gather(*[session(host, int(port), first_sid + i, args.rcpts, deadline, ctx, auth,
                                             args.size, lat, errors) for i in range(count)],
                                   return_exceptions=True)
        for r in res:
            if isinstance(r, BaseException):
                errors.append("session: %r" % r)

    t0 = time.time()
    asyncio.run(main())
    cpu = os.times()
    out.put({"lat": lat, "errors": errors, "cpu": cpu.user + cpu.system, "wall": time.time() - t0})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("target")
    ap.add_argument("sessions", type=int)
    ap.add_argument("rcpts", type=int)
    ap.add_argument("seconds", type=float)
    ap.add_argument("--tls", metavar="CA")
    ap.add_argument("--auth", nargs=2, metavar=("USER", "PASSFILE"))
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--size", type=int, default=1000)
    args = ap.parse_args()
    procs = max(1, min(args.procs, args.sessions))
    out = multiprocessing.Queue()
    start_at = time.time() + 0.5
    ps = []
    sid = 0
    for k in range(procs):
        count = args.sessions // procs + (1 if k < args.sessions % procs else 0)
        p = multiprocessing.Process(target=run_proc, args=(args, sid, count, start_at, out))
        sid += count
        p.start()
        ps.append(p)
    parts = [out.get() for _ in ps]
    for p in ps:
        p.join()
    lat = sorted(x for r in parts for x in r["lat"])
    errs = [e for r in parts for e in r["errors"]]

    def pct(q):
        return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2) if lat else None

    print(json.dumps({
        "messages": len(lat), "recipients": len(lat) * args.rcpts, "seconds": args.seconds,
        "per_second": round(len(lat) / args.seconds, 1), "p50_ms": pct(0.50), "p99_ms": pct(0.99),
        "max_ms": round(lat[-1] * 1000, 2) if lat else None,
        "errors": sum(1 for e in errs if e is None or e.startswith("session")),
        "first_errors": [e for e in errs if e][:5],
        "driver_cpu_s": round(sum(r["cpu"] for r in parts), 2),
    }))


if __name__ == "__main__":
    main()
