"""The relay scripts (src/lua/relay_outcome.lua, relay_due.lua,
relay_retry.lua) against a real redis-server: each outcome recorded with
its entry acknowledged and deleted in one step, an entry finished elsewhere
left alone, the retry member round trip (bodies with any bytes), due order,
a clock stepped back, an unreadable member kept, dead relays sent again,
bad arguments refused with nothing written."""

import pytest

from test_queue_scripts import PRE, Redis, RedisError

RL, RD, RDLQ = PRE + "relay", PRE + "relay:d", PRE + "relay:dlq"
BODY = '{\r\n  "Type" : "Notification",\r\n  "Message" : "{\\"a\\":\\"\u00fc:7:x\\"}"\r\n}'


@pytest.fixture
def r(tmp_path):
    srv = Redis(tmp_path)
    yield srv
    srv.stop()


def add(r, client="app", mid="m-1", sub="arn:sub", body=BODY, attempt="0"):
    """XADD a relay as events.lua writes it (creating the group first); its id."""
    if not r.cmd("EXISTS", RL):
        r.cmd("XGROUP", "CREATE", RL, "w", "0", "MKSTREAM")
    return r.cmd("XADD", RL, "*", "c", client, "t", "arn:aws:sns:us-east-1:1:t", "y", "Notification",
                 "i", mid, "s", sub, "b", body, "a", attempt)


def read(r, count=10):
    """XREADGROUP as a relay process reads: [(id, {field: value})]."""
    out = r.cmd("XREADGROUP", "GROUP", "w", "c1", "COUNT", count, "STREAMS", RL, ">")
    if not out:
        return []
    entries = out[RL] if isinstance(out, dict) else out[0][1]
    return [(e[0], dict(zip(e[1][::2], e[1][1::2]))) for e in entries]


def entries(r, key):
    return [(e[0], dict(zip(e[1][::2], e[1][1::2]))) for e in r.cmd("XRANGE", key, "-", "+")]


def pending(r):
    return r.cmd("XPENDING", RL, "w")[0]


def outcome(r, eid, kind, arg=None):
    return r.script("relay_outcome", [RL, RD, RDLQ], [eid, kind] + ([arg] if arg is not None else []))


def due(r, *args):
    return r.script("relay_due", [RD, RL, RDLQ], list(args) or [1000])


def redis_ms(r):
    t = r.cmd("TIME")
    return int(t[0]) * 1000 + int(t[1]) // 1000


def test_done_acks_and_deletes_once(r):
    eid = add(r)
    assert [e for e, _ in read(r)] == [eid]
    assert pending(r) == 1
    assert outcome(r, eid, "done") == 1
    assert r.cmd("XLEN", RL) == 0 and pending(r) == 0
    assert not r.cmd("EXISTS", RD) and not r.cmd("EXISTS", RDLQ)
    before = r.snapshot()
    for kind, arg in (("done", None), ("retry", 100), ("dead", "HTTP 500")):
        assert outcome(r, eid, kind, arg) == 0  # finished by another process: nothing
    assert r.snapshot() == before


def test_retry_round_trip_through_the_retry_set(r):
    eid = add(r, sub="", attempt="4")
    read(r)
    t0 = redis_ms(r)
    assert outcome(r, eid, "retry", 60000) == 1
    assert r.cmd("XLEN", RL) == 0 and pending(r) == 0
    [member] = r.cmd("ZRANGE", RD, 0, -1)
    score = float(r.cmd("ZSCORE", RD, member))
    assert t0 + 60000 <= score <= redis_ms(r) + 60000
    assert member.startswith("%d:%s" % (len(eid), eid))
    assert due(r) == 0  # not due for a minute
    assert r.cmd("ZCARD", RD) == 1 and r.cmd("XLEN", RL) == 0
    r.cmd("ZADD", RD, t0 - 1, member)  # now due
    assert due(r) == 1
    assert r.cmd("ZCARD", RD) == 0
    [(_, f)] = read(r)
    assert f == {"c": "app", "t": "arn:aws:sns:us-east-1:1:t", "y": "Notification", "i": "m-1", "s": "",
                 "b": BODY, "a": "5"}


def test_due_order_limit_and_a_clock_stepped_back(r):
    ids = [add(r, mid="m-%d" % k) for k in range(3)]
    read(r)
    for eid in ids:
        assert outcome(r, eid, "retry", 0) == 1
    members = r.cmd("ZRANGE", RD, 0, -1)
    now = redis_ms(r)
    for k, m in enumerate(members):  # due in reverse order of arrival
        r.cmd("ZADD", RD, now - 1000 * (k + 1), m)
    r.cmd("DEL", RL)  # the stream and its group are made again
    assert due(r, 2) == 2
    assert [f["i"] for _, f in entries(r, RL)] == ["m-2", "m-1"]
    assert r.cmd("XINFO", "GROUPS", RL)[0]["name"] == "w"
    # A member due long after the longest delay was written before Redis's
    # clock went back: it is due now.
    r.cmd("ZADD", RD, now + 10 * 86400000, members[0])
    assert due(r, 10, 400000) == 1
    assert [f["i"] for _, f in entries(r, RL)] == ["m-2", "m-1", "m-0"]
    assert r.cmd("ZCARD", RD) == 0


def test_unreadable_member_is_kept_as_a_dead_relay(r):
    r.cmd("ZADD", RD, 1, "3:abc")
    r.cmd("ZADD", RD, 2, "99:short")
    assert due(r) == 0
    assert r.cmd("ZCARD", RD) == 0 and not r.cmd("EXISTS", RL)
    dead = entries(r, RDLQ)
    assert sorted(f["b"] for _, f in dead) == ["3:abc", "99:short"]
    assert all(f["e"] == "unreadable retry member" for _, f in dead)


def test_dead_keeps_every_field_and_the_error(r):
    eid = add(r, attempt="2")
    read(r)
    assert outcome(r, eid, "dead", "HTTP 503") == 1
    assert r.cmd("XLEN", RL) == 0 and pending(r) == 0
    [(_, f)] = entries(r, RDLQ)
    assert f == {"c": "app", "t": "arn:aws:sns:us-east-1:1:t", "y": "Notification", "i": "m-1",
                 "s": "arn:sub", "b": BODY, "a": "2", "e": "HTTP 503"}


def test_relay_retry_by_id_and_in_pages(r):
    ids = [add(r, mid="m-%d" % k, attempt="7") for k in range(5)]
    read(r)
    for eid in ids:
        outcome(r, eid, "dead", "HTTP 500")
    dead = [e for e, _ in entries(r, RDLQ)]
    assert r.script("relay_retry", [RDLQ, RL], [1000, dead[1], "0-1"]) == 1
    [(_, f)] = entries(r, RL)
    assert f["i"] == "m-1" and f["a"] == "0" and f["b"] == BODY and "e" not in f
    assert r.script("relay_retry", [RDLQ, RL], [2, "from:-"]) == [2, "(" + dead[2]]
    assert r.script("relay_retry", [RDLQ, RL], [2, "from:(" + dead[2]]) == [2, "(" + dead[4]]
    assert r.script("relay_retry", [RDLQ, RL], [2, "from:(" + dead[4]]) == [0, ""]
    assert r.cmd("XLEN", RDLQ) == 0
    assert [f["i"] for _, f in entries(r, RL)] == ["m-1", "m-0", "m-2", "m-3", "m-4"]
    assert len(read(r)) == 5  # the group reads them


def test_relay_retry_makes_the_stream_and_group(r):
    r.cmd("XADD", RDLQ, "*", "c", "app", "t", "t", "y", "Notification", "i", "m", "s", "", "b", BODY,
          "a", "3", "e", "x")
    assert r.script("relay_retry", [RDLQ, RL], [10, "from:-"]) == [1, ""]
    assert [f["i"] for _, f in read(r)] == ["m"]


@pytest.mark.parametrize("script,keys,args", [
    ("relay_outcome", [RL, RD, RDLQ], ["1-1", "sent"]),
    ("relay_outcome", [RL, RD, RDLQ], ["nope", "done"]),
    ("relay_outcome", [RL, RD, RDLQ], ["1-1", "retry", "soon"]),
    ("relay_outcome", [RL, RD, RDLQ], ["1-1", "dead"]),
    ("relay_due", [RD, RL, RDLQ], [0]),
    ("relay_due", [RD, RL, RDLQ], [10, "x"]),
    ("relay_retry", [RDLQ, RL], [0]),
    ("relay_retry", [RDLQ, RL], [10, "x-y"]),
    ("relay_retry", [RDLQ, RL], [10, "from:-", "1-1"]),
])
def test_bad_arguments_write_nothing(r, script, keys, args):
    add(r)
    before = r.snapshot()
    with pytest.raises(RedisError, match="BADARGS"):
        r.script(script, keys, args)
    assert r.snapshot() == before


@pytest.mark.parametrize("script,keys,args", [
    ("relay_outcome", [RL, RD, RDLQ], ["1-1", "done"]),
    ("relay_due", [RD, RL, RDLQ], [10]),
    ("relay_retry", [RDLQ, RL], [10, "from:-"]),
])
def test_wrong_types_write_nothing(r, script, keys, args):
    r.cmd("SET", RD, "x")
    r.cmd("SET", RDLQ, "x")
    before = r.snapshot()
    with pytest.raises(RedisError, match="WRONGTYPE"):
        r.script(script, keys, args)
    assert r.snapshot() == before
