"""The queue's Redis Lua scripts (src/lua/*.lua) against a real redis-server:
enqueue (all or nothing, memory per queued recipient), outcome (sent, retry,
dead, done, replays, completion cleanup and TTL), check, due and dlq_retry.

Each test gets its own redis-server on a free 127.0.0.1 port without
persistence, driven through redis-cli (--eval for the scripts, --json to read
replies)."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import harness
from harness import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
LUA = Path(__file__).resolve().parents[2] / "src" / "lua"

P = "sgt"
PRE = f"{P}:{{{P}}}:"
Q = PRE + "q:app"  # the stream of client "app", which enqueue() uses
QS = PRE + "qs"
D = PRE + "d"
DLQ = PRE + "dlq"
RECENT = PRE + "recent"
FILLING = PRE + "filling"
TTL = 604800000
# Bytes per queued recipient of the PHP system this replaces.
PHP_BYTES_PER_RECIPIENT = 70.8


def keys_of(batch):
    """The batch, recipient list and outcome keys of batch."""
    return PRE + "b:" + batch, PRE + "r:" + batch, PRE + "o:" + batch


def tkey(batch):
    """The template key of batch."""
    return PRE + "t:" + batch


def num(r, batch):
    """The number of batch (the b of its stream entries), "0" when it is gone."""
    return r.cmd("HGET", PRE + "b:" + batch, "n") or "0"


class RedisError(Exception):
    """An error reply."""


class Redis:
    """A throwaway redis-server and a redis-cli wrapper around it."""

    def __init__(self, workdir):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                if self.cmd("PING") == "PONG":
                    break
            except (RedisError, subprocess.CalledProcessError):
                pass
            if time.time() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)

    def _run(self, args):
        out = subprocess.run([harness.REDIS_CLI, "-p", str(self.port), "--json"] + args,
                             capture_output=True, check=False, timeout=60)
        # --json passes bytes that are not UTF-8 through (DUMP payloads)
        text = out.stdout.decode("utf-8", "surrogateescape").strip()
        err = out.stderr.decode("utf-8", "replace").strip()
        if out.returncode != 0 or text.startswith("error:") or text.startswith("(error)"):
            raise RedisError(text + err)
        if text == "":
            raise RedisError("no reply: " + err)
        return json.loads(text)

    def cmd(self, *args):
        """One command; the reply as JSON (RESP3: hashes are dicts)."""
        return self._run([str(a) for a in args])

    def script(self, name, keys, args):
        """Run src/lua/<name>.lua with keys and args."""
        return self._run(["--eval", str(LUA / f"{name}.lua")] + [str(k) for k in keys] + [","]
                         + [str(a) for a in args])

    def used_memory(self):
        """INFO memory used_memory."""
        info = subprocess.run([harness.REDIS_CLI, "-p", str(self.port), "INFO", "memory"],
                              capture_output=True, text=True, check=True).stdout
        for line in info.splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":")[1])
        raise RuntimeError("no used_memory in INFO")

    def snapshot(self):
        """Every key with its type and a dump of its value, for before/after checks."""
        snap = {}
        for k in self.cmd("KEYS", "*"):
            snap[k] = (self.cmd("TYPE", k), self.cmd("DUMP", k), self.cmd("PTTL", k))
        return snap


@pytest.fixture
def r(tmp_path):
    """A fresh redis-server for one test."""
    srv = Redis(tmp_path)
    yield srv
    srv.stop()


def addresses(n, start=0):
    """n distinct 20-byte addresses."""
    return [f"u{k:07d}@example.org" for k in range(start, start + n)]


def skey(batch):
    """The key of batch's staged address list."""
    return PRE + "rs:" + batch


def enqueue(r, batch, addrs, copy0="", created=1700000000000, template="Action=SendEmail&x=1",
            riders="c:cc@example.org\n", client="app", staged=0, invalid="", step=100000, index_ttl=0):
    """Run enqueue.lua for batch (copy0: the MessageId of a copy 0 already
    sent; staged: how many addresses were pushed to skey(batch) before;
    step: the most entries it queues, the rest left to fill(); index_ttl:
    copy 0's MessageId is indexed at mkey(copy0) for that many ms)."""
    b, lst, o = keys_of(batch)
    keys = [b, lst, PRE + "q:" + client, RECENT, o, tkey(batch), PRE + "seq", QS, skey(batch), FILLING]
    if copy0:
        keys.append(mkey(copy0))
    return r.script("enqueue", keys,
                    [batch, created, client, 1, "SendEmail", template, riders, "", TTL, copy0, staged,
                     invalid, step, index_ttl] + addrs)


def fill(r, batch, step, stale=None):
    """Run fill.lua: the next step of batch, or (batch "") of the batch whose
    last step is more than stale ms old. [batch id, entries left]."""
    return r.script("fill", [FILLING, PRE], [step, batch] + ([] if stale is None else [stale]))


def read_group(r, count=100000, stream=Q):
    """XREADGROUP as consumer c1 on stream: [(entry id, fields dict)]."""
    rep = r.cmd("XREADGROUP", "GROUP", "w", "c1", "COUNT", count, "STREAMS", stream, ">")
    if not rep:
        return []
    entries = rep[stream] if isinstance(rep, dict) else rep[0][1]
    out = []
    for eid, fields in entries:
        out.append((eid, dict(zip(fields[::2], fields[1::2]))))
    return out


def outcome(r, batch, entry, index, kind, *args, ttl=TTL, stream=Q, index_ttl=None):
    """Run outcome.lua for an entry of stream. index_ttl (sent only): pass
    the in-flight, held and delivery-state keys, the MessageId's index key
    (the first word of args[0]) and that index time to live (ms)."""
    b, lst, o = keys_of(batch)
    keys = [b, o, stream, D, DLQ, lst, tkey(batch), PRE + "n:" + num(r, batch)]
    if index_ttl is None:
        return r.script("outcome", keys, [entry, index, kind, *args, ttl])
    keys += [PRE + "f:" + batch, PRE + "h:" + batch, ekey(batch), mkey(args[0].split(" ")[0])]
    return r.script("outcome", keys, [entry, index, kind, args[0], index_ttl, ttl])


def mkey(message_id):
    """The index key of an SES MessageId."""
    return PRE + "m:" + message_id


def ekey(batch):
    """The delivery-state hash of batch."""
    return PRE + "e:" + batch


def test_every_script_starts_with_its_contract():
    for name in ("enqueue", "fill", "outcome", "check", "due", "dlq_retry"):
        text = (LUA / f"{name}.lua").read_text()
        head = text.split("\n\n")[0]
        assert head.startswith("-- "), name
        for word in ("KEYS[1]", "ARGV[1]", "Returns", "Atomicity"):
            assert word in text.split("\nlocal ")[0], (name, word)


def test_enqueue_1000(r):
    addrs = addresses(1000)
    assert enqueue(r, "B1", addrs) == 1000
    b, lst, _ = keys_of("B1")
    assert r.cmd("XLEN", Q) == 1000
    h = r.cmd("HGETALL", b)
    assert h["total"] == "1000" and h["first"] == "0" and h["n"] == "1"
    assert r.cmd("GET", PRE + "n:1") == "B1" and r.cmd("GET", PRE + "seq") == "1"
    assert h["client"] == "app" and h["api"] == "1" and h["action"] == "SendEmail"
    assert h["created"] == "1700000000000" and "template" not in h
    assert r.cmd("GET", tkey("B1")) == "Action=SendEmail&x=1"
    assert r.cmd("OBJECT", "ENCODING", b) == "listpack"
    assert h["riders"] == "c:cc@example.org\n"
    assert (h["sent"], h["done"], h["failed"], h["dead"]) == ("0", "0", "0", "0")
    assert r.cmd("LLEN", lst) == 1000
    assert r.cmd("LINDEX", lst, 0) == addrs[0] and r.cmd("LINDEX", lst, 999) == addrs[999]
    assert r.cmd("ZSCORE", RECENT, "B1") in ("1700000000000", 1700000000000.0, 1700000000000)
    groups = r.cmd("XINFO", "GROUPS", Q)
    assert len(groups) == 1
    entries = read_group(r)
    assert len(entries) == 1000
    for k, (_, f) in enumerate(entries):
        assert f == {"b": "1", "i": str(k)}


def test_enqueue_with_copy0_sent(r):
    # copy 0 sent and nothing else to queue is not a batch
    with pytest.raises(RedisError, match="BADARGS"):
        enqueue(r, "B4", addresses(1), copy0="mid")
    assert r.snapshot() == {}
    addrs = addresses(4)
    assert enqueue(r, "B2", addrs, copy0="0100-mid-0") == 3
    b, lst, o = keys_of("B2")
    h = r.cmd("HGETALL", b)
    assert (h["total"], h["first"], h["sent"]) == ("4", "1", "1")
    assert r.cmd("LRANGE", lst, 0, -1) == addrs
    assert r.cmd("HGETALL", o) == {"0": "s 0100-mid-0"}
    entries = read_group(r)
    assert [f["i"] for _, f in entries] == ["1", "2", "3"]
    # the batch completes with the three queued outcomes
    for k, (eid, _) in enumerate(entries):
        assert outcome(r, "B2", eid, k + 1, "sent", "mid-%d" % (k + 1)) == 1
    assert r.cmd("HGET", b, "sent") == "4"
    assert r.cmd("HEXISTS", b, "template") == 0 and r.cmd("PTTL", b) > 0
    assert r.cmd("LRANGE", lst, 0, -1) == addrs and r.cmd("PTTL", lst) > 0
    # a second batch reuses the existing group
    assert enqueue(r, "B3", addresses(2)) == 2
    assert len(r.cmd("XINFO", "GROUPS", Q)) == 1
    assert [f["b"] for _, f in read_group(r)] == ["2", "2"]


def test_enqueue_staged_addresses(r):
    # A large batch arrives in chunks on the staged list, then the script
    # renames it to the recipient list and appends the rest.
    addrs = addresses(10)
    r.cmd("RPUSH", skey("B1"), *addrs[:4])
    r.cmd("RPUSH", skey("B1"), *addrs[4:7])
    r.cmd("PEXPIRE", skey("B1"), 3600000)
    assert enqueue(r, "B1", addrs[7:], staged=7, copy0="mid-0") == 9
    b, lst, o = keys_of("B1")
    assert r.cmd("EXISTS", skey("B1")) == 0
    assert r.cmd("LRANGE", lst, 0, -1) == addrs and r.cmd("PTTL", lst) == -1
    assert r.cmd("HGET", b, "total") == "10" and r.cmd("HGETALL", o) == {"0": "s mid-0"}
    assert [f["i"] for _, f in read_group(r)] == [str(k) for k in range(1, 10)]
    # everything staged, nothing inline
    r.cmd("RPUSH", skey("B2"), *addresses(3, 50))
    assert enqueue(r, "B2", [], staged=3) == 3
    assert r.cmd("LRANGE", keys_of("B2")[1], 0, -1) == addresses(3, 50)


def test_enqueue_staged_incomplete_changes_nothing(r):
    # A chunk that never arrived (refused, connection lost): nothing stored.
    r.cmd("RPUSH", skey("B1"), *addresses(4))
    before = r.snapshot()
    with pytest.raises(RedisError, match="STAGED"):
        enqueue(r, "B1", addresses(2, 10), staged=5)
    assert r.snapshot() == before
    with pytest.raises(RedisError, match="STAGED"):
        enqueue(r, "B2", addresses(2), staged=1)
    assert r.snapshot() == before
    for bad in (-1, 1.5, "x"):
        with pytest.raises(RedisError, match="BADARGS"):
            enqueue(r, "B1", addresses(2), staged=bad)
    assert r.snapshot() == before
    r.cmd("SET", skey("B3"), "not a list")
    with pytest.raises(RedisError, match="WRONGTYPE"):
        enqueue(r, "B3", addresses(2))
    assert r.cmd("EXISTS", keys_of("B3")[0]) == 0


def test_memory_per_queued_recipient(r):
    # As the PHP system was measured: 51-recipient messages (copy 0 sent at
    # once, 50 queued), 20-byte addresses, UUID batch ids, a template of a
    # small SendEmail; the stream and group exist already, as in a running
    # system.
    template = ("Action=SendEmail&Version=2010-12-01&Source=sender%40example.com&"
                "Message.Subject.Data=hi&Message.Body.Text.Data=hello")
    enqueue(r, "00000000-warm-4000-8000-000000000000", addresses(2))
    batches, per_batch = 200, 51
    before = r.used_memory()
    for k in range(batches):
        bid = "%08x-1234-4abc-8def-%012x" % (k, k * 7919)
        addrs = addresses(per_batch, k * per_batch)
        assert enqueue(r, bid, addrs, copy0="0100018c-mid-%d" % k, template=template, riders="") == per_batch - 1
    after = r.used_memory()
    n = batches * (per_batch - 1)
    per = (after - before) / n
    print(f"\nmemory per queued recipient: {per:.1f} bytes "
          f"({after - before} bytes for {n} recipients in {batches} batches of {per_batch})")
    assert per < PHP_BYTES_PER_RECIPIENT


def test_batch_exists_changes_nothing(r):
    enqueue(r, "B1", addresses(5))
    before = r.snapshot()
    with pytest.raises(RedisError, match="BATCHEXISTS"):
        enqueue(r, "B1", addresses(7, 100))
    assert r.snapshot() == before


def test_failed_enqueue_leaves_nothing(r):
    r.cmd("SET", Q, "not a stream")
    before = r.snapshot()
    with pytest.raises(RedisError, match="WRONGTYPE"):
        enqueue(r, "B1", addresses(5))
    assert r.snapshot() == before
    with pytest.raises(RedisError, match="BADARGS"):
        enqueue(r, "B9", [])
    assert r.snapshot() == before


def test_enqueue_under_oom_leaves_nothing(r):
    enqueue(r, "WARM", addresses(2))
    r.cmd("CONFIG", "SET", "maxmemory-policy", "noeviction")
    r.cmd("CONFIG", "SET", "maxmemory", 1)
    before = r.snapshot()
    with pytest.raises(RedisError, match="OOM"):
        enqueue(r, "B1", addresses(5))
    r.cmd("CONFIG", "SET", "maxmemory", 0)
    assert r.snapshot() == before


def test_outcome_sent_and_replay(r):
    enqueue(r, "B1", addresses(3))
    e = read_group(r)
    b, lst, o = keys_of("B1")
    assert outcome(r, "B1", e[0][0], 0, "sent", "msg-0") == 1
    assert r.cmd("HGET", o, 0) == "s msg-0"
    assert r.cmd("HGET", b, "sent") == "1"
    assert r.cmd("XLEN", Q) == 2
    assert r.cmd("XPENDING", Q, "w")[0] == 2
    # a reclaimed entry whose outcome is there: check says do not send
    r.cmd("XADD", Q, "*", "b", "1", "i", 0)
    again = read_group(r)[0][0]
    assert r.script("check", [o, Q], [again, 0]) == 1
    assert r.cmd("XLEN", Q) == 2 and r.cmd("XPENDING", Q, "w")[0] == 2
    assert r.script("check", [o, Q], [e[1][0], 1]) == 0
    # replaying an outcome records nothing more
    r.cmd("XADD", Q, "*", "b", "1", "i", 0)
    again = read_group(r)[0][0]
    assert outcome(r, "B1", again, 0, "sent", "msg-other") == 0
    assert r.cmd("HGET", o, 0) == "s msg-0" and r.cmd("HGET", b, "sent") == "1"
    assert outcome(r, "B1", again, 0, "dead", "MessageRejected", "no", 1) == 0
    assert r.cmd("HGET", b, "dead") == "0" and r.cmd("XLEN", DLQ) == 0
    assert r.cmd("XLEN", Q) == 2 and r.cmd("XPENDING", Q, "w")[0] == 2
    assert r.cmd("TTL", b) == -1


def test_outcome_retry(r):
    enqueue(r, "B:x", addresses(2))
    e = read_group(r)
    b, _, o = keys_of("B:x")
    assert outcome(r, "B:x", e[1][0], 1, "retry", 5000, 2) == 1
    assert r.cmd("ZRANGE", D, 0, -1, "WITHSCORES") in ([["1:1:2", 5000.0]], ["1:1:2", "5000"])
    assert r.cmd("HEXISTS", o, 1) == 0
    assert r.cmd("HGET", b, "failed") == "1"
    assert r.cmd("XLEN", Q) == 1 and r.cmd("XPENDING", Q, "w")[0] == 1
    # the same retry again (the entry is no longer pending): nothing more
    assert outcome(r, "B:x", e[1][0], 1, "retry", 9000, 2) == 0
    assert r.cmd("ZCARD", D) == 1 and r.cmd("HGET", b, "failed") == "1"


def test_outcome_retry_after_delay_on_redis_clock(r):
    # "+<ms>": due that long after Redis's TIME, whatever the caller's clock.
    enqueue(r, "B1", addresses(2))
    e = read_group(r)
    sec, usec = r.cmd("TIME")
    t0 = int(sec) * 1000 + int(usec) // 1000
    assert outcome(r, "B1", e[0][0], 0, "retry", "+7000", 1) == 1
    got = r.cmd("ZRANGE", D, 0, -1, "WITHSCORES")
    member, score = got[0] if isinstance(got[0], list) else got
    assert member == "1:0:1"
    assert t0 + 7000 <= float(score) <= t0 + 7000 + 2000, (t0, score)
    assert float(score) == int(float(score))
    for bad in ("+", "+-5", "+1.5", "soon", "+ 5"):
        with pytest.raises(RedisError, match="BADARGS"):
            outcome(r, "B1", e[1][0], 1, "retry", bad, 1)
    assert r.cmd("ZCARD", D) == 1


def test_outcome_dead(r):
    enqueue(r, "B1", addresses(2))
    e = read_group(r)
    b, lst, o = keys_of("B1")
    assert outcome(r, "B1", e[0][0], 0, "dead", "MessageRejected", "Email address is not verified.", 3) == 1
    assert r.cmd("HGET", o, 0) == "f MessageRejected Email address is not verified."
    assert r.cmd("HGET", b, "dead") == "1"
    dl = r.cmd("XRANGE", DLQ, "-", "+")
    assert len(dl) == 1
    f = dict(zip(dl[0][1][::2], dl[0][1][1::2]))
    assert f == {"b": "B1", "i": "0", "code": "MessageRejected",
                 "message": "Email address is not verified.", "attempts": "3"}
    assert r.cmd("XLEN", Q) == 1


def test_outcome_bad_args_write_nothing(r):
    enqueue(r, "B1", addresses(2))
    e = read_group(r)
    before = r.snapshot()
    with pytest.raises(RedisError, match="BADARGS"):
        outcome(r, "B1", e[0][0], 0, "sent")
    with pytest.raises(RedisError, match="BADARGS"):
        outcome(r, "B1", e[0][0], 0, "bogus", "x")
    with pytest.raises(RedisError, match="NOBATCH"):
        outcome(r, "NOPE", e[0][0], 0, "sent", "m")
    assert r.snapshot() == before


def test_completion_all_sent_cleans_up(r):
    enqueue(r, "B1", addresses(3))
    b, lst, o = keys_of("B1")
    e = read_group(r)
    outcome(r, "B1", e[0][0], 0, "sent", "m0")
    outcome(r, "B1", e[1][0], 1, "done")
    assert r.cmd("EXISTS", lst) == 1 and r.cmd("EXISTS", tkey("B1")) == 1
    assert r.cmd("PTTL", b) == -1
    outcome(r, "B1", e[2][0], 2, "sent", "m2", ttl=60000)
    assert 0 < r.cmd("PTTL", lst) <= 60000 and r.cmd("LLEN", lst) == 3
    assert r.cmd("EXISTS", tkey("B1")) == 0 and r.cmd("HEXISTS", b, "riders") == 0
    assert 0 < r.cmd("PTTL", b) <= 60000 and 0 < r.cmd("PTTL", o) <= 60000
    assert 0 < r.cmd("PTTL", PRE + "n:1") <= 60000
    assert r.cmd("HGETALL", o) == {"0": "s m0", "1": "d", "2": "s m2"}
    assert r.cmd("HMGET", b, "sent", "done", "dead", "total") == ["2", "1", "0", "3"]
    assert r.cmd("XLEN", Q) == 0 and r.cmd("XPENDING", Q, "w")[0] == 0


def test_completion_with_dead_keeps_template(r):
    enqueue(r, "B1", addresses(2))
    b, lst, o = keys_of("B1")
    e = read_group(r)
    outcome(r, "B1", e[0][0], 0, "sent", "m0")
    outcome(r, "B1", e[1][0], 1, "dead", "MessageRejected", "bad", 1, ttl=60000)
    assert r.cmd("EXISTS", tkey("B1")) == 1 and r.cmd("LLEN", lst) == 2
    for k in (b, lst, o, tkey("B1"), PRE + "n:1"):
        assert 0 < r.cmd("PTTL", k) <= 60000


def test_due_moves_only_due(r):
    enqueue(r, "B1", addresses(3))
    e = read_group(r)
    outcome(r, "B1", e[0][0], 0, "retry", 1000, 0)
    outcome(r, "B1", e[1][0], 1, "retry", 2000, 1)
    outcome(r, "B1", e[2][0], 2, "retry", 3000, 4)
    assert r.script("due", [D, QS, PRE], [999, 10]) == 0
    assert r.script("due", [D, QS, PRE], [2000, 10]) == 2
    assert r.cmd("ZRANGE", D, 0, -1) == ["1:2:4"]
    got = [f for _, f in read_group(r)]
    assert got == [{"b": "1", "i": "0", "a": "0"}, {"b": "1", "i": "1", "a": "1"}]
    assert r.script("due", [D, QS, PRE], [10000, 10]) == 1
    assert r.cmd("ZCARD", D) == 0
    assert [f for _, f in read_group(r)] == [{"b": "1", "i": "2", "a": "4"}]


def test_due_takes_retries_from_before_a_clock_step_back(r):
    # With the longest delay given, a member due further ahead than that was
    # written before Redis's clock went back: it is due now.
    enqueue(r, "B1", addresses(4))
    e = read_group(r)
    outcome(r, "B1", e[0][0], 0, "retry", 1500, 0)       # due
    outcome(r, "B1", e[1][0], 1, "retry", 5000, 1)       # within the longest delay: waits
    outcome(r, "B1", e[2][0], 2, "retry", 3601000, 2)    # an hour ahead: from before the step
    outcome(r, "B1", e[3][0], 3, "retry", 3700000, 3)
    assert r.script("due", [D, QS, PRE], [2000, 10, 360000]) == 3
    assert r.cmd("ZRANGE", D, 0, -1) == ["1:1:1"]
    assert [f["i"] for _, f in read_group(r)] == ["0", "2", "3"]
    # without the longest delay, only what is due moves
    assert r.script("due", [D, QS, PRE], [2000, 10]) == 0
    assert r.script("due", [D, QS, PRE], [5000, 10]) == 1
    for bad in ("x", -1):
        with pytest.raises(RedisError, match="BADARGS"):
            r.script("due", [D, QS, PRE], [2000, 10, bad])


def test_due_max_counts_retries_from_before_a_step(r):
    enqueue(r, "B1", addresses(3))
    e = read_group(r)
    outcome(r, "B1", e[0][0], 0, "retry", 1000, 0)
    outcome(r, "B1", e[1][0], 1, "retry", 9000000, 0)
    outcome(r, "B1", e[2][0], 2, "retry", 9000001, 0)
    assert r.script("due", [D, QS, PRE], [2000, 2, 360000]) == 2
    assert r.cmd("ZRANGE", D, 0, -1) == ["1:2:0"]


def test_due_respects_max(r):
    enqueue(r, "B1", addresses(5))
    for k, (eid, _) in enumerate(read_group(r)):
        outcome(r, "B1", eid, k, "retry", 100 + k, 0)
    assert r.script("due", [D, QS, PRE], [1000, 2]) == 2
    assert r.cmd("ZCARD", D) == 3
    assert r.script("due", [D, QS, PRE], [1000, 100]) == 3
    with pytest.raises(RedisError, match="BADARGS"):
        r.script("due", [D, QS, PRE], [1000, 0])


def test_dlq_retry_moves_back(r):
    enqueue(r, "B1", addresses(3))
    b, lst, o = keys_of("B1")
    e = read_group(r)
    outcome(r, "B1", e[0][0], 0, "sent", "m0")
    outcome(r, "B1", e[1][0], 1, "dead", "MessageRejected", "bad", 2)
    outcome(r, "B1", e[2][0], 2, "dead", "InvalidParameterValue", "worse", 1, ttl=60000)
    assert r.cmd("XLEN", DLQ) == 2 and r.cmd("PTTL", b) > 0
    ids = [x[0] for x in r.cmd("XRANGE", DLQ, "-", "+")]
    # one by id
    assert r.script("dlq_retry", [DLQ, QS, PRE], [100, ids[1]]) == 1
    assert r.cmd("XLEN", DLQ) == 1
    assert r.cmd("HEXISTS", o, 2) == 0 and r.cmd("HGET", b, "dead") == "1"
    for k in (b, lst, o, tkey("B1"), PRE + "n:1"):
        assert r.cmd("PTTL", k) == -1
    assert [f for _, f in read_group(r)] == [{"b": "1", "i": "2", "a": "0"}]
    # the rest (all)
    assert r.script("dlq_retry", [DLQ, QS, PRE], [100]) == 1
    assert r.cmd("XLEN", DLQ) == 0 and r.cmd("HGET", b, "dead") == "0"
    again = read_group(r)
    assert [f for _, f in again] == [{"b": "1", "i": "1", "a": "0"}]
    assert r.script("dlq_retry", [DLQ, QS, PRE], [100]) == 0
    # both go out this time: the batch completes and is cleaned up
    outcome(r, "B1", again[0][0], 1, "sent", "m1")
    e2 = r.cmd("XPENDING", Q, "w", "-", "+", 10)
    outcome(r, "B1", e2[0][0], 2, "sent", "m2", ttl=60000)
    assert 0 < r.cmd("PTTL", lst) <= 60000 and r.cmd("EXISTS", tkey("B1")) == 0
    assert 0 < r.cmd("PTTL", b) <= 60000
    assert r.cmd("HGETALL", o) == {"0": "s m0", "1": "s m1", "2": "s m2"}


def test_dlq_retry_skips_expired_batch(r):
    enqueue(r, "B1", addresses(1))
    b, lst, o = keys_of("B1")
    e = read_group(r)
    outcome(r, "B1", e[0][0], 0, "dead", "MessageRejected", "bad", 1)
    r.cmd("DEL", b, lst, o, tkey("B1"))
    assert r.script("dlq_retry", [DLQ, QS, PRE], [10]) == 0
    assert r.cmd("XLEN", DLQ) == 1 and r.cmd("XLEN", Q) == 0
    with pytest.raises(RedisError, match="BADARGS"):
        r.script("dlq_retry", [DLQ, QS, PRE], [10, "nonsense"])


def test_reclaimed_entry_is_not_sent_twice(r):
    enqueue(r, "B1", addresses(2))
    b, _, o = keys_of("B1")
    e = read_group(r)
    # worker c2 reclaims both entries from c1, which is slow, not dead
    claimed = r.cmd("XAUTOCLAIM", Q, "w", "c2", 0, "0-0")[1]
    assert [x[0] for x in claimed] == [e[0][0], e[1][0]]
    # c1 finishes entry 0 first; c2 must then not send it
    assert outcome(r, "B1", e[0][0], 0, "sent", "m0") == 1
    assert r.script("check", [o, Q], [e[0][0], 0]) == 1
    assert r.script("check", [o, Q], [e[1][0], 1]) == 0
    assert outcome(r, "B1", e[1][0], 1, "sent", "m1") == 1
    assert r.cmd("HGET", b, "sent") == "2" and r.cmd("XPENDING", Q, "w")[0] == 0


def test_enqueue_on_a_stream_without_group(r):
    r.cmd("XADD", Q, "*", "b", "OLD", "i", 0)
    assert enqueue(r, "B1", addresses(2)) == 2
    assert [f["b"] for _, f in read_group(r)] == ["OLD", "1", "1"]


def test_each_client_has_its_own_stream(r):
    assert enqueue(r, "B1", addresses(3)) == 3
    assert enqueue(r, "B2", addresses(2, 10), client="news") == 2
    news = PRE + "q:news"
    assert sorted(r.cmd("SMEMBERS", QS)) == sorted([Q, news])
    assert r.cmd("XLEN", Q) == 3 and r.cmd("XLEN", news) == 2
    assert len(r.cmd("XINFO", "GROUPS", news)) == 1
    assert [f["b"] for _, f in read_group(r, stream=news)] == ["2", "2"]
    assert [f["b"] for _, f in read_group(r)] == ["1", "1", "1"]
    assert r.cmd("HGET", PRE + "b:B2", "client") == "news"
    # a set of another type is refused before anything is written
    r.cmd("DEL", QS)
    r.cmd("SET", QS, "not a set")
    before = r.snapshot()
    with pytest.raises(RedisError, match="WRONGTYPE"):
        enqueue(r, "B3", addresses(1))
    assert r.snapshot() == before


def test_due_goes_back_to_the_clients_stream(r):
    enqueue(r, "B1", addresses(1))
    enqueue(r, "B2", addresses(1, 10), client="news")
    news = PRE + "q:news"
    (e1, _), = read_group(r)
    (e2, _), = read_group(r, stream=news)
    outcome(r, "B1", e1, 0, "retry", 100, 1)
    outcome(r, "B2", e2, 0, "retry", 100, 3, stream=news)
    # the news stream was deleted meanwhile: due makes it again, with its group
    r.cmd("DEL", news)
    r.cmd("SREM", QS, news)
    assert r.script("due", [D, QS, PRE], [1000, 10]) == 2
    assert [f for _, f in read_group(r)] == [{"b": "1", "i": "0", "a": "1"}]
    assert [f for _, f in read_group(r, stream=news)] == [{"b": "2", "i": "0", "a": "3"}]
    assert r.cmd("SISMEMBER", QS, news) == 1


def test_due_drops_a_retry_whose_batch_is_gone(r):
    enqueue(r, "B1", addresses(2))
    e = read_group(r)
    outcome(r, "B1", e[0][0], 0, "retry", 100, 1)
    outcome(r, "B1", e[1][0], 1, "retry", 100, 1)
    r.cmd("DEL", PRE + "n:1")
    assert r.script("due", [D, QS, PRE], [1000, 10]) == 0
    assert r.cmd("ZCARD", D) == 0 and read_group(r) == []


def test_due_refuses_a_stream_of_another_type(r):
    enqueue(r, "B1", addresses(1))
    (e, _), = read_group(r)
    outcome(r, "B1", e, 0, "retry", 100, 1)
    r.cmd("DEL", Q)
    r.cmd("SET", Q, "not a stream")
    before = r.snapshot()
    with pytest.raises(RedisError, match="WRONGTYPE"):
        r.script("due", [D, QS, PRE], [1000, 10])
    assert r.snapshot() == before


def test_dlq_retry_goes_back_to_the_clients_stream(r):
    enqueue(r, "B1", addresses(1), client="news")
    news = PRE + "q:news"
    (e, _), = read_group(r, stream=news)
    outcome(r, "B1", e, 0, "dead", "MessageRejected", "bad", 1, stream=news)
    r.cmd("DEL", news)
    assert r.script("dlq_retry", [DLQ, QS, PRE], [10]) == 1
    assert [f for _, f in read_group(r, stream=news)] == [{"b": "1", "i": "0", "a": "0"}]
    assert r.cmd("XLEN", Q) == 0 and r.cmd("SISMEMBER", QS, news) == 1


def indexes(entries):
    """The recipient indexes of stream entries, in stream order."""
    return [int(f["i"]) for _, f in entries]


def stats_row(r, batch):
    """stats.lua's row of batch: {field: value}."""
    rows = r.script("stats", [QS, D, DLQ, RECENT, PRE], [10])[5]
    names = ("id", "created", "total", "sent", "done", "dead", "client", "action", "cancelled", "state", "filling")
    for k in range(0, len(rows), len(names)):
        if rows[k] == batch:
            return dict(zip(names, rows[k:k + len(names)]))
    raise AssertionError(f"no row for {batch} in {rows}")


def test_batch_filled_in_three_steps(r):
    # 25 recipients, copy 0 sent: 24 to queue in steps of 10 -> 10, 10, 4.
    addrs = addresses(25)
    b, lst, o = keys_of("ab1")
    assert enqueue(r, "ab1", addrs, copy0="mid-0", step=10) == 10
    assert r.cmd("HGET", b, "filling") == "11"
    assert r.cmd("ZSCORE", FILLING, "ab1") is not None
    assert stats_row(r, "ab1")["filling"] == "11"
    h = r.script("show", [b, o, lst, D], ["ab1"])[0]
    assert dict(zip(h[::2], h[1::2]))["filling"] == "11"
    assert r.cmd("LRANGE", lst, 0, -1) == addrs  # the whole batch is stored at once
    assert indexes(read_group(r)) == list(range(1, 11))  # workers start on what is in
    assert fill(r, "ab1", 10) == ["ab1", 4]
    assert r.cmd("HGET", b, "filling") == "21"
    assert stats_row(r, "ab1")["filling"] == "21"
    assert fill(r, "ab1", 10) == ["ab1", 0]
    assert r.cmd("HEXISTS", b, "filling") == 0 and r.cmd("ZCARD", FILLING) == 0
    assert stats_row(r, "ab1")["filling"] == ""
    assert indexes(read_group(r)) == list(range(11, 25))
    # a step replayed on a whole batch adds nothing
    assert fill(r, "ab1", 10) == ["ab1", 0]
    assert r.cmd("XLEN", Q) == 24 and read_group(r) == []
    assert r.cmd("HGET", b, "total") == "25"


def test_fill_steps_replayed_or_run_twice_queue_each_index_once(r):
    # Two fillers (the front and a worker resuming) stepping the same batch,
    # and replays: every index is queued exactly once.
    assert enqueue(r, "B1", addresses(100), step=7) == 7
    seen = []
    while True:
        left_a = fill(r, "B1", 7)[1]
        left_b = fill(r, "B1", 13)[1]
        if left_a == 0 and left_b == 0:
            break
    seen = indexes(read_group(r))
    assert sorted(seen) == list(range(100)) and len(seen) == 100
    assert r.cmd("HEXISTS", PRE + "b:B1", "filling") == 0 and r.cmd("ZCARD", FILLING) == 0


def test_batch_of_an_earlier_release_is_whole(r):
    # Stored without "filling" (every batch before bounded steps): complete.
    assert enqueue(r, "B1", addresses(5)) == 5
    b = keys_of("B1")[0]
    assert r.cmd("HEXISTS", b, "filling") == 0 and r.cmd("ZCARD", FILLING) == 0
    read_group(r)
    assert fill(r, "B1", 10) == ["B1", 0]
    # a member left in the set for such a batch goes, and nothing is queued
    r.cmd("ZADD", FILLING, 1, "B1")
    assert fill(r, "", 10, stale=0) == ["B1", 0]
    assert r.cmd("ZCARD", FILLING) == 0 and r.cmd("XLEN", Q) == 5 and read_group(r) == []
    assert stats_row(r, "B1")["filling"] == ""


def test_fill_resumes_only_batches_left_behind(r):
    assert enqueue(r, "B1", addresses(30), step=10) == 10
    # its last step just ran: not overdue
    assert fill(r, "", 10, stale=60000) == ["", 0]
    assert r.cmd("HGET", PRE + "b:B1", "filling") == "10"
    # a filler that died long ago
    r.cmd("ZADD", FILLING, 1000, "B1")
    assert fill(r, "", 10, stale=5000) == ["B1", 10]
    assert float(r.cmd("ZSCORE", FILLING, "B1")) > 1000  # the time of this step
    assert fill(r, "B1", 10) == ["B1", 0]
    assert sorted(indexes(read_group(r))) == list(range(30))
    # a batch gone while filling: resuming drops it, the filler hears NOBATCH
    assert enqueue(r, "B2", addresses(30), step=10) == 10
    r.cmd("DEL", PRE + "b:B2")
    with pytest.raises(RedisError, match="NOBATCH"):
        fill(r, "B2", 10)
    assert r.cmd("ZCARD", FILLING) == 0


def test_fill_bad_args_write_nothing(r):
    assert enqueue(r, "B1", addresses(30), step=10) == 10
    before = r.snapshot()
    for args in ([0, "B1"], [1.5, "B1"], ["x", "B1"], [10, ""], [10, "", -1]):
        with pytest.raises(RedisError, match="BADARGS"):
            r.script("fill", [FILLING, PRE], args)
    with pytest.raises(RedisError, match="BADARGS"):
        enqueue(r, "B2", addresses(3), step=0)
    r.cmd("DEL", Q)
    r.cmd("SET", Q, "not a stream")
    before = r.snapshot()
    with pytest.raises(RedisError, match="WRONGTYPE"):
        fill(r, "B1", 10)
    assert r.snapshot() == before


def test_show_pages_and_retries(r):
    # show.lua a page at a time: outcomes and addresses of the page's
    # indexes only, and the delay set scanned a step per call; a retry is
    # found by the batch's number, as outcome.lua writes it.
    addrs = addresses(25)
    b, lst, o = keys_of("ab2")
    enqueue(r, "ab2", addrs)
    e = read_group(r)
    outcome(r, "ab2", e[0][0], 0, "sent", "m0")
    outcome(r, "ab2", e[12][0], 12, "dead", "MessageRejected", "no", 1)
    outcome(r, "ab2", e[21][0], 21, "retry", 5000, 2)
    enqueue(r, "B9", addresses(3, 100))  # another batch's retry in the same delay set
    (e9, _), = read_group(r)[:1]
    outcome(r, "B9", e9, 0, "retry", 6000, 1)
    for k in range(40):  # members of no batch, to scan past
        r.cmd("ZADD", D, 9000 + k, "77:%d:1" % k)
    outs, got, retry = {}, [], []
    cursor, first = "0", 0
    while True:
        page = r.script("show", [b, o, lst, D], ["ab2", first, 10 if first < 25 else 0, cursor, 5])
        h, po, pl, pr, nxt = page[:5]
        assert page[5:] == [[], "0"]  # no delivery-state key: none
        assert dict(zip(h[::2], h[1::2]))["total"] == "25"
        assert all(first <= int(i) < first + 10 for i in po[::2])
        outs.update(zip(po[::2], po[1::2]))
        got += pl
        retry += pr
        first += 10
        if cursor != "-":
            cursor = "-" if nxt == "0" else nxt
        if first >= 25 and cursor == "-":
            break
    assert got == addrs
    assert outs == {"0": "s m0", "12": "f MessageRejected no"}
    assert retry == ["21", "2", "5000"]
    # one call, every index and the whole scan
    whole = r.script("show", [b, o, lst, D], ["ab2"])
    assert whole[2] == addrs and whole[3] == ["21", "2", "5000"] and whole[4] == "0"
    assert r.script("show", [PRE + "b:ffff", o, lst, D], ["ffff", 0, 10, "0"]) == []
    for bad in (["ab2", -1, 10], ["ab2", 0, "x"], ["ab2", 0, 10, "abc"], ["ab2", 0, 10, "0", 0]):
        with pytest.raises(RedisError, match="BADARGS"):
            r.script("show", [b, o, lst, D], bad)


def test_dlq_retry_pages_past_letters_that_stay(r):
    # "from:<start>": at most ARGV[1] letters looked at per call, moved or
    # not, and where to go on; letters of an expired batch stay in place.
    enqueue(r, "B1", addresses(3))
    for eid, f in read_group(r):
        outcome(r, "B1", eid, int(f["i"]), "dead", "MessageRejected", "bad", 1)
    r.cmd("DEL", *keys_of("B1"), tkey("B1"))  # expired
    enqueue(r, "B2", addresses(1, 10))
    (eid, _), = read_group(r)
    outcome(r, "B2", eid, 0, "dead", "MessageRejected", "bad", 1)
    ids = [x[0] for x in r.cmd("XRANGE", DLQ, "-", "+")]
    assert len(ids) == 4
    assert r.script("dlq_retry", [DLQ, QS, PRE], [2, "from:-"]) == [0, "(" + ids[1]]
    assert r.script("dlq_retry", [DLQ, QS, PRE], [2, "from:(" + ids[1]]) == [1, "(" + ids[3]]
    assert r.script("dlq_retry", [DLQ, QS, PRE], [2, "from:(" + ids[3]]) == [0, ""]
    assert r.cmd("XLEN", DLQ) == 3 and [f for _, f in read_group(r)] == [{"b": "2", "i": "0", "a": "0"}]
    for bad in ("from:", "from:x", "from:(1"):
        with pytest.raises(RedisError, match="BADARGS"):
            r.script("dlq_retry", [DLQ, QS, PRE], [2, bad])
    with pytest.raises(RedisError, match="BADARGS"):
        r.script("dlq_retry", [DLQ, QS, PRE], [2, "from:-", ids[0]])


# An SES MessageId as SES gives them: 16 hex digits of time, a UUID, a
# 6-digit suffix (60 characters).
def ses_message_id(k):
    return "0100018c%08x-%08x-%04x-4%03x-%04x-%012x-000000" % (
        0x4b5e7a1f + k, k * 2654435761 % 2**32, k % 65536, k % 4096, 0x8000 | k % 16384, k * 40503)


def test_message_ids_are_indexed_by_enqueue_and_outcome(r):
    m0, m1, m2 = (ses_message_id(k) for k in range(3))
    assert len(m0) == 60
    enqueue(r, "B1", addresses(3), copy0=m0, index_ttl=3600000)
    assert r.cmd("GET", mkey(m0)) == "app\tB1\t0"
    assert 3590000 < r.cmd("PTTL", mkey(m0)) <= 3600000
    e = read_group(r)
    # a note after the MessageId (the sandbox's) is not part of the key
    assert outcome(r, "B1", e[0][0], 1, "sent", m1 + " complaint", index_ttl=60000) == 1
    assert r.cmd("HGET", keys_of("B1")[2], 1) == "s " + m1 + " complaint"
    assert r.cmd("GET", mkey(m1)) == "app\tB1\t1"
    assert 0 < r.cmd("PTTL", mkey(m1)) <= 60000
    # index_ttl 0: recorded, not indexed
    assert outcome(r, "B1", e[1][0], 2, "sent", m2, index_ttl=0) == 1
    assert r.cmd("EXISTS", mkey(m2)) == 0
    # a copy sent twice (a reclaimed entry) has two MessageIds: both indexed
    r.cmd("XADD", Q, "*", "b", "1", "i", 1)
    again = read_group(r)[0][0]
    m1b = ses_message_id(7)
    assert outcome(r, "B1", again, 1, "sent", m1b, index_ttl=60000) == 0
    assert r.cmd("GET", mkey(m1b)) == "app\tB1\t1"
    assert r.cmd("HGET", keys_of("B1")[2], 1) == "s " + m1 + " complaint"
    # a malformed index time to live writes nothing
    r.cmd("XADD", Q, "*", "b", "1", "i", 2)
    again = read_group(r)[0][0]
    with pytest.raises(RedisError, match="BADARGS"):
        outcome(r, "B1", again, 2, "sent", ses_message_id(8), index_ttl="x")
    assert r.cmd("EXISTS", mkey(ses_message_id(8))) == 0


def test_enqueue_without_index_ttl_writes_no_index(r):
    m0 = ses_message_id(0)
    assert enqueue(r, "B1", addresses(2), copy0=m0, index_ttl=0) == 1
    assert r.cmd("EXISTS", mkey(m0)) == 0
    assert r.cmd("HGET", keys_of("B1")[2], 0) == "s " + m0
    with pytest.raises(RedisError, match="BADARGS"):
        enqueue(r, "B2", addresses(2), copy0=ses_message_id(1), index_ttl=-1)
    assert r.cmd("EXISTS", keys_of("B2")[0], mkey(ses_message_id(1))) == 0


def test_completion_gives_the_delivery_states_the_batch_ttl(r):
    enqueue(r, "B1", addresses(2))
    b, lst, o = keys_of("B1")
    e = read_group(r)
    outcome(r, "B1", e[0][0], 0, "sent", "m0", index_ttl=60000)
    # events.lua writes the states as SES's events arrive
    r.cmd("HSET", ekey("B1"), "0:u0000000@example.org", "delivered\t1700000000000\t")
    assert r.cmd("PTTL", ekey("B1")) == -1
    keys = [b, o, Q, D, DLQ, lst, tkey("B1"), PRE + "n:1", PRE + "f:B1", PRE + "h:B1", ekey("B1")]
    assert r.script("outcome", keys, [e[1][0], 1, "dead", "MessageRejected", "bad", 1, 60000]) == 1
    for k in (b, lst, o, ekey("B1")):
        assert 0 < r.cmd("PTTL", k) <= 60000, k
    # a dead letter sent again: the batch is in progress, nothing expires
    assert r.script("dlq_retry", [DLQ, QS, PRE], [100]) == 1
    for k in (b, lst, o, ekey("B1")):
        assert r.cmd("PTTL", k) == -1, k


def test_show_returns_the_delivery_states_a_scan_step_per_page(r):
    # 300 recipients with a state each (more than a listpack holds, so the
    # hash is scanned in steps) and two on index 0 (a Cc rider): every field
    # comes back once over the pages, whatever the page size.
    addrs = addresses(300)
    b, lst, o = keys_of("ab3")
    enqueue(r, "ab3", addrs)
    want = {}
    for i, a in enumerate(addrs):
        want["%d:%s" % (i, a)] = "delivered\t%d\t" % (1700000000000 + i)
    want["0:cc@example.org"] = 'bounced\t1700000000999\t{"type":"Permanent","subtype":"General"}'
    r.cmd("CONFIG", "SET", "hash-max-listpack-entries", 128)  # Redis's own default
    r.cmd("HSET", ekey("ab3"), *[x for kv in want.items() for x in kv])
    assert r.cmd("OBJECT", "ENCODING", ekey("ab3")) == "hashtable"
    keys = [b, o, lst, D, ekey("ab3")]
    got, calls = {}, 0
    first, cursor, ecursor = 0, "0", "0"
    while True:
        page = r.script("show", keys, ["ab3", first, 100 if first < 300 else 0, cursor, 50, ecursor, 40])
        calls += 1
        pairs = page[5]
        assert len(pairs) // 2 <= 200  # one step of COUNT 40 (Redis may return a few more)
        got.update(zip(pairs[::2], pairs[1::2]))
        first += 100
        if cursor != "-":
            cursor = "-" if page[4] == "0" else page[4]
        if ecursor != "-":
            ecursor = "-" if page[6] == "0" else page[6]
        if first >= 300 and cursor == "-" and ecursor == "-":
            break
    assert got == want
    assert calls > 3  # the scan took more calls than the index pages
    whole = r.script("show", keys, ["ab3"])
    assert dict(zip(whole[5][::2], whole[5][1::2])) == want and whole[6] == "0"
    # "-": no scan
    assert r.script("show", keys, ["ab3", 0, 10, "-", 50, "-", 40])[5:] == [[], "0"]
    with pytest.raises(RedisError, match="BADARGS"):
        r.script("show", keys, ["ab3", 0, 10, "0", 50, "x", 40])


# What one indexed MessageId costs, and one recipient's delivery state,
# measured on a real redis-server (bench/RESULTS.md, docs/QUEUE.md):
#   pytest -s tests/integration/test_queue_scripts.py -k memory_per_indexed
# 100,000 keys P:{P}:m:<MessageId> with the default prefix, MessageIds of
# SES's shape (60 characters), values "<client>\t<batch id>\t<index>" of
# batches of 1,000 with sesgate's batch ids, each with a time to live (SET
# ... PX, as outcome.lua writes them); then 100,000 delivery states of one
# batch as events.lua writes them (a Delivery with SES's SMTP response).
INDEX_KEYS = 100000
INDEX_WRITE = """
local pfx, n, ttl = ARGV[1], tonumber(ARGV[2]), ARGV[3]
for k = 0, n - 1 do
    local b = math.floor(k / 1000)
    local mid = string.format('0100018c%08x-%08x-%04x-4%03x-%04x-%012x-000000', 1263368735 + k,
        (k * 2654435761) % 4294967296, k % 65536, k % 4096, 32768 + k % 16384, k * 40503)
    local batch = string.format('%08x-%04x-4%03x-%04x-%012x', (b * 2246822519) % 4294967296,
        b % 65536, b % 4096, 32768 + b % 16384, b * 3266489917)
    redis.call('SET', pfx .. 'm:' .. mid, 'app\t' .. batch .. '\t' .. (k % 1000), 'PX', ttl)
end
return n
"""
STATE_WRITE = """
local key, n = KEYS[1], tonumber(ARGV[1])
for k = 0, n - 1 do
    redis.call('HSET', key, k .. ':' .. string.format('u%07d@example.org', k),
        'delivered\t' .. (1765000000000 + k) .. '\t' ..
        '{"smtp_response":"250 2.0.0 OK  1765000000 d2-20020a05622a0142si2360917qtw.183 - gsmtp"}')
end
return n
"""


def test_memory_per_indexed_message(r):
    pfx = "sesgate:{sesgate}:"
    before = r.used_memory()
    assert r.cmd("EVAL", INDEX_WRITE, 0, pfx, INDEX_KEYS, 7 * 86400000) == INDEX_KEYS
    after = r.used_memory()
    assert r.cmd("DBSIZE") == INDEX_KEYS
    sample = r.cmd("SCAN", 0, "MATCH", pfx + "m:*", "COUNT", 10)[1][0]
    assert len(sample) - len(pfx + "m:") == 60 and 0 < r.cmd("PTTL", sample) <= 7 * 86400000
    assert r.cmd("GET", sample).startswith("app\t")
    per_key = (after - before) / INDEX_KEYS
    usage = r.cmd("MEMORY", "USAGE", sample, "SAMPLES", 0)
    print(f"\nmemory per indexed MessageId: {per_key:.1f} bytes (INFO used_memory delta "
          f"{after - before} for {INDEX_KEYS} keys); MEMORY USAGE of one key {usage} bytes "
          f"(the key's time to live not counted)")
    r.cmd("FLUSHALL", "SYNC")
    ekey_ = pfx + "e:00000000-1234-4abc-8def-000000000000"
    before = r.used_memory()
    assert r.cmd("EVAL", STATE_WRITE, 1, ekey_, INDEX_KEYS) == INDEX_KEYS
    after = r.used_memory()
    per_state = (after - before) / INDEX_KEYS
    print(f"memory per delivery state: {per_state:.1f} bytes (INFO used_memory delta {after - before} "
          f"for {INDEX_KEYS} fields of one batch's state hash, a Delivery with SES's SMTP response)")
    # the figures in bench/RESULTS.md and docs/QUEUE.md, with room for the
    # allocator's rounding on another machine
    assert 150 < per_key < 300, per_key
    assert 100 < per_state < 400, per_state
