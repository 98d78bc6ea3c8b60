"""Pause, resume and cancel of a batch in Redis's scripts (src/lua/gate.lua,
control.lua, and what outcome.lua, load.lua and stats.lua do with them)
against a real redis-server, driven as test_queue_scripts.py drives the
queue's scripts."""

import pytest

from test_queue_scripts import (D, LUA, PRE, Q, QS, RECENT, TTL, Redis, RedisError, addresses,
                                enqueue, keys_of, num, read_group, tkey)


@pytest.fixture
def r(tmp_path):
    """A fresh redis-server for one test."""
    srv = Redis(tmp_path)
    yield srv
    srv.stop()


def hkey(batch):
    return PRE + "h:" + batch


def fkey(batch):
    return PRE + "f:" + batch


def gate(r, batch, triples, ttl=TTL, stream=Q):
    """Run gate.lua for (entry, index, attempt) triples of batch."""
    b, lst, o = keys_of(batch)
    args = [ttl]
    for t in triples:
        args += list(t)
    return r.script("gate", [b, o, stream, hkey(batch), fkey(batch), lst, tkey(batch),
                             PRE + "n:" + num(r, batch), PRE + "e:" + batch], args)


def control(r, batch, cmd, step=5000, more=False, ttl=TTL):
    """Run control.lua: [state, in_flight, held]."""
    return r.script("control", [PRE + "b:" + batch, PRE],
                    [cmd, ttl, step] + (["more"] if more else []))


def control_all(r, batch, cmd, step=5000):
    """control.lua as the operator tools run it: again while units are held;
    the answers of every call."""
    got = [control(r, batch, cmd, step)]
    want = {"resume": "running", "cancel": "cancelled"}.get(cmd)
    while want and got[-1][2] > 0 and got[-1][0] == want:
        got.append(control(r, batch, cmd, step, more=True))
    return got


def outcome(r, batch, entry, index, kind, *args, ttl=TTL):
    """outcome.lua with the in-flight set and held list (as the worker runs it)."""
    b, lst, o = keys_of(batch)
    return r.script("outcome", [b, o, Q, D, PRE + "dlq", lst, tkey(batch), PRE + "n:" + num(r, batch),
                                fkey(batch), hkey(batch)],
                    [entry, index, kind, *args, ttl])


def contents(r):
    """Every key's type and value, without its time to live (which runs)."""
    return {k: v[:2] for k, v in r.snapshot().items()}


def triples(entries):
    return [(eid, f["i"], f.get("a", "0")) for eid, f in entries]


def test_new_scripts_open_with_their_contract():
    for name in ("gate", "control"):
        text = (LUA / f"{name}.lua").read_text()
        head = text.split("\nlocal ")[0]
        assert text.startswith("-- "), name
        for word in ("KEYS[1]", "ARGV[1]", "Returns", "Errors", "Atomicity"):
            assert word in head, (name, word)


def test_gate_running_batch_goes_and_tracks_in_flight(r):
    enqueue(r, "B1", addresses(3))
    e = read_group(r)
    assert gate(r, "B1", triples(e[:2])) == ["go", "go"]
    assert sorted(r.cmd("SMEMBERS", fkey("B1"))) == ["0", "1"]
    assert r.cmd("XPENDING", Q, "w")[0] == 3  # nothing acknowledged
    # every kind of outcome takes the index out of the in-flight set
    assert outcome(r, "B1", e[0][0], 0, "sent", "m0") == 1
    assert outcome(r, "B1", e[1][0], 1, "retry", 5000, 1) == 1
    assert r.cmd("SCARD", fkey("B1")) == 0


def test_gate_replay_acknowledges(r):
    enqueue(r, "B1", addresses(2))
    e = read_group(r)
    outcome(r, "B1", e[0][0], 0, "sent", "m0")
    r.cmd("XADD", Q, "*", "b", num(r, "B1"), "i", 0)
    again = read_group(r)
    assert gate(r, "B1", triples(again) + triples(e[1:])) == ["replay", "go"]
    assert r.cmd("XLEN", Q) == 1 and r.cmd("XPENDING", Q, "w")[0] == 1


def test_batch_without_state_is_running(r):
    # a batch stored by sesgate 0.1.0: its hash has no state field
    enqueue(r, "B1", addresses(2))
    b, _, _ = keys_of("B1")
    assert r.cmd("HEXISTS", b, "state") == 0
    e = read_group(r)
    assert gate(r, "B1", triples(e)) == ["go", "go"]
    load = r.script("load", [PRE + "n:" + num(r, "B1")], [])
    assert len(load) == 8 and load[0] == "B1" and load[7] == "running"
    # resume of a running batch is a no-op answering its state
    before = r.snapshot()
    assert control(r, "B1", "resume") == ["running", 2, 0]
    assert r.snapshot() == before
    stats = r.script("stats", [QS, D, PRE + "dlq", RECENT, PRE], [10])
    assert stats[5][8:10] == ["", ""]  # cancelled, state: absent


def test_pause_holds_and_resume_requeues(r):
    enqueue(r, "B1", addresses(4))
    b, _, o = keys_of("B1")
    e = read_group(r)
    assert gate(r, "B1", triples(e[:1])) == ["go"]
    assert control(r, "B1", "pause") == ["paused", 1, 0]
    assert r.cmd("HGET", b, "state") == "paused"
    load = r.script("load", [PRE + "n:" + num(r, "B1")], [])
    assert load[7] == "paused"
    # the copy in flight finishes; the others are held, not sent
    assert outcome(r, "B1", e[0][0], 0, "sent", "m0") == 1
    assert gate(r, "B1", triples(e[1:3])) == ["paused", "paused"]
    # the same entry gated twice (two workers after a reclaim) is held once
    assert gate(r, "B1", triples(e[1:2])) == ["paused"]
    assert r.cmd("LRANGE", hkey("B1"), 0, -1) == ["1:0", "2:0"]
    assert r.cmd("XLEN", Q) == 1 and r.cmd("XPENDING", Q, "w")[0] == 1
    assert r.cmd("HLEN", o) == 1
    # pausing again is a no-op answering the state
    before = r.snapshot()
    assert control(r, "B1", "pause") == ["paused", 0, 2]
    assert r.snapshot() == before
    assert control(r, "B1", "resume") == ["running", 0, 0]
    assert r.cmd("HGET", b, "state") == "running"
    back = read_group(r)
    assert [(f["b"], f["i"], f["a"]) for _, f in back] == [(num(r, "B1"), "1", "0"),
                                                          (num(r, "B1"), "2", "0")]
    assert gate(r, "B1", triples(back) + triples(e[3:])) == ["go", "go", "go"]


def test_cancel_records_cancelled_and_completes(r):
    enqueue(r, "B1", addresses(5))
    b, lst, o = keys_of("B1")
    e = read_group(r)
    assert gate(r, "B1", triples(e[:1])) == ["go"]
    outcome(r, "B1", e[0][0], 0, "sent", "m0")
    assert gate(r, "B1", triples(e[1:2])) == ["go"]
    control(r, "B1", "pause")
    assert gate(r, "B1", triples(e[2:3])) == ["paused"]
    r.cmd("HSET", PRE + "e:B1", "0:u0000000@example.org", "delivered\t1700000000000\t")
    assert control(r, "B1", "cancel", ttl=60000) == ["cancelled", 1, 0]
    assert r.cmd("HGET", o, 2) == "c" and r.cmd("HGET", b, "cancelled") == "1"
    # the copy in flight is still recorded; the rest is cancelled at the gate
    outcome(r, "B1", e[1][0], 1, "sent", "m1")
    assert r.cmd("PTTL", b) == -1
    assert gate(r, "B1", triples(e[3:]), ttl=60000) == ["cancelled", "cancelled"]
    assert r.cmd("HMGET", b, "sent", "dead", "cancelled", "total") == ["2", "0", "3", "5"]
    assert r.cmd("HGETALL", o) == {"0": "s m0", "1": "s m1", "2": "c", "3": "c", "4": "c"}
    assert r.cmd("XLEN", Q) == 0 and r.cmd("XPENDING", Q, "w")[0] == 0
    # complete: the batch's keys expire, the template is gone (nothing dead)
    for k in (b, lst, o, PRE + "n:" + num(r, "B1"), PRE + "e:B1"):
        assert 0 < r.cmd("PTTL", k) <= 60000, k
    assert r.cmd("EXISTS", tkey("B1")) == 0
    # cancel again: a no-op; pause and resume are refused, nothing written
    before = contents(r)
    assert control(r, "B1", "cancel") == ["cancelled", 0, 0]
    for cmd in ("pause", "resume"):
        with pytest.raises(RedisError, match="CANCELLED"):
            control(r, "B1", cmd)
    assert contents(r) == before
    stats = r.script("stats", [QS, D, PRE + "dlq", RECENT, PRE], [10])
    assert stats[5][8:10] == ["3", "cancelled"]


def test_completion_by_outcome_counts_cancelled(r):
    enqueue(r, "B1", addresses(3))
    b, lst, o = keys_of("B1")
    e = read_group(r)
    assert gate(r, "B1", triples(e[:1])) == ["go"]
    control(r, "B1", "cancel")
    assert gate(r, "B1", triples(e[1:])) == ["cancelled", "cancelled"]
    assert r.cmd("PTTL", b) == -1  # copy 0 still in flight
    outcome(r, "B1", e[0][0], 0, "dead", "MessageRejected", "no", 1, ttl=60000)
    for k in (b, lst, o, tkey("B1")):
        assert 0 < r.cmd("PTTL", k) <= 60000, k  # dead: the template stays until the TTL


def test_complete_batch_refuses_and_unknown_batch(r):
    enqueue(r, "B1", addresses(1))
    e = read_group(r)
    outcome(r, "B1", e[0][0], 0, "sent", "m0")
    before = contents(r)
    for cmd in ("pause", "resume", "cancel"):
        with pytest.raises(RedisError, match="COMPLETE"):
            control(r, "B1", cmd)
        with pytest.raises(RedisError, match="NOBATCH"):
            control(r, "NOPE", cmd)
    with pytest.raises(RedisError, match="BADARGS"):
        control(r, "B1", "stop")
    with pytest.raises(RedisError, match="BADARGS"):
        control(r, "B1", "pause", step=0)
    with pytest.raises(RedisError, match="NOBATCH"):
        gate(r, "NOPE", [(e[0][0], 0, 0)])
    with pytest.raises(RedisError, match="BADARGS"):
        gate(r, "B1", [(e[0][0], "x", 0)])
    assert contents(r) == before


def test_bounded_steps_on_20000_held_units(r):
    n = 20000
    enqueue(r, "B1", addresses(n))
    b, _, o = keys_of("B1")
    control(r, "B1", "pause")
    e = read_group(r)
    for k in range(0, n, 5000):
        assert set(gate(r, "B1", triples(e[k:k + 5000]))) == {"paused"}
    assert r.cmd("LLEN", hkey("B1")) == n and r.cmd("XLEN", Q) == 0
    got = control_all(r, "B1", "resume", step=5000)
    # every call moved at most one step; the first set the state
    assert [g[2] for g in got] == [15000, 10000, 5000, 0]
    assert r.cmd("XLEN", Q) == n and r.cmd("EXISTS", hkey("B1")) == 0
    # a pause between steps stops a resume's later steps
    control(r, "B1", "pause")
    e = read_group(r)
    for k in range(0, n, 5000):
        gate(r, "B1", triples(e[k:k + 5000]))
    control(r, "B1", "resume", step=5000)
    control(r, "B1", "pause")
    assert control(r, "B1", "resume", step=5000, more=True) == ["paused", 0, 15000]
    assert r.cmd("XLEN", Q) == 5000
    # cancel in steps: every held unit is recorded cancelled
    got = control_all(r, "B1", "cancel", step=5000)
    assert [g[2] for g in got] == [10000, 5000, 0]
    assert r.cmd("HGET", b, "cancelled") == "15000" and r.cmd("HLEN", o) == 15000
    e = read_group(r)
    assert set(gate(r, "B1", triples(e))) == {"cancelled"}
    assert r.cmd("HGET", b, "cancelled") == str(n) and r.cmd("PTTL", b) > 0


def test_cancel_of_held_units_completes_with_the_delivery_states(r):
    # control.lua's own completion (the last units were held) gives the
    # delivery-state hash the batch's time to live too
    enqueue(r, "B1", addresses(2))
    b, lst, o = keys_of("B1")
    e = read_group(r)
    assert gate(r, "B1", triples(e[:1])) == ["go"]
    outcome(r, "B1", e[0][0], 0, "sent", "m0")
    r.cmd("HSET", PRE + "e:B1", "0:u0000000@example.org", "delivered\t1700000000000\t")
    control(r, "B1", "pause")
    assert gate(r, "B1", triples(e[1:])) == ["paused"]
    assert r.cmd("PTTL", PRE + "e:B1") == -1
    assert control(r, "B1", "cancel", ttl=60000) == ["cancelled", 0, 0]
    for k in (b, lst, o, PRE + "e:B1"):
        assert 0 < r.cmd("PTTL", k) <= 60000, k
