"""src/lua/events.lua against a real redis-server: the replay guard, the
index, each recipient's state and the batch's counters (ranks, recipients
apart), the suppression list (bounces, complaints, transient bounces N in
D) and the relay entry, each written once and atomically."""

import pytest

from test_queue_scripts import PRE, Redis, RedisError, enqueue, addresses

assert Redis  # the fixture below builds on it

NOW = 1700000000000
DAY = 86400000


@pytest.fixture
def r(tmp_path):
    srv = Redis(tmp_path)
    yield srv
    srv.stop()


def apply(r, sns_id, ses_id, state="", rcpts=(), suppress="", at=NOW, relay="", now=NOW,
          tcount=3, twindow=7 * DAY, body='{"Type":"Notification"}', sub="arn:sub"):
    """Run events.lua; rcpts: (address, detail) pairs."""
    keys = [PRE + "sns:" + sns_id, PRE + "m:" + ses_id, PRE + "sup", PRE + "relay", PRE]
    args = [now, DAY, state, at, suppress, tcount, twindow, relay,
            "arn:aws:sns:us-east-1:123456789012:ses", "Notification", sns_id, sub, body,
            len(rcpts)]
    for a, d in rcpts:
        args += [a, d]
    return r.script("events", keys, args)


def index(r, ses_id, client, batch="-", unit="-", ttl=DAY):
    r.cmd("SET", PRE + "m:" + ses_id, f"{client}\t{batch}\t{unit}", "PX", ttl)


def test_state_counters_and_ranks(r):
    enqueue(r, "B1", addresses(3))
    index(r, "ses-1", "app", "B1", "1")
    a = addresses(3)[1]
    assert apply(r, "n1", "ses-1", "delayed", [(a, '{"type":"MailboxFull"}')]) == [0, "app", "B1",
                                                                                   1, 0]
    e = r.cmd("HGETALL", PRE + "e:B1")
    assert e == {f"1:{a}": f'delayed\t{NOW}\t{{"type":"MailboxFull"}}'}
    assert r.cmd("HGET", PRE + "b:B1", "delayed") == "1"
    # A Delivery replaces the delay; the counters move with it.
    assert apply(r, "n2", "ses-1", "delivered", [(a, "{}")], at=NOW + 5)[3] == 1
    assert r.cmd("HGET", PRE + "b:B1", "delayed") == "0"
    assert r.cmd("HGET", PRE + "b:B1", "delivered") == "1"
    # A Complaint follows the Delivery.
    assert apply(r, "n3", "ses-1", "complained", [(a, '{"feedback_type":"abuse"}')])[3] == 1
    assert r.cmd("HGET", PRE + "b:B1", "delivered") == "0"
    assert r.cmd("HGET", PRE + "b:B1", "complained") == "1"
    # A late Delivery never hides it.
    assert apply(r, "n4", "ses-1", "delivered", [(a, "{}")])[3] == 0
    assert r.cmd("HGET", PRE + "e:B1", f"1:{a}").startswith("complained\t")
    assert r.cmd("HGET", PRE + "b:B1", "complained") == "1"
    assert r.cmd("HGET", PRE + "b:B1", "delivered") == "0"


def test_each_recipient_alone(r):
    enqueue(r, "B2", addresses(2))
    index(r, "ses-2", "app", "B2", "0")
    # A bounce for one of two recipients of a unit (copy 0 with a rider)
    # touches that one only.
    out = apply(r, "n1", "ses-2", "bounced",
                [("cc@example.org", '{"type":"Permanent"}')], suppress="BOUNCE")
    assert out == [0, "app", "B2", 1, 1]
    assert r.cmd("HGETALL", PRE + "e:B2") == {
        "0:cc@example.org": f'bounced\t{NOW}\t{{"type":"Permanent"}}'}
    assert r.cmd("HGET", PRE + "b:B2", "bounced") == "1"
    assert r.cmd("HGET", PRE + "b:B2", "delivered") is None


def test_replay_writes_nothing(r):
    enqueue(r, "B3", addresses(2))
    index(r, "ses-3", "app", "B3", "1")
    a = addresses(2)[1]
    apply(r, "n1", "ses-3", "bounced", [(a, "{}")], suppress="BOUNCE", relay="app\n")
    def values():
        return {k: v[:2] for k, v in r.snapshot().items()}  # type and value, not the TTL

    before = values()
    assert apply(r, "n1", "ses-3", "bounced", [(a, "{}")], suppress="BOUNCE",
                 relay="app\n") == [1]
    assert values() == before
    assert 0 < r.cmd("PTTL", PRE + "sns:n1") <= DAY


def test_suppression_kinds(r):
    apply(r, "n1", "unknown-id", "bounced", [("hard@example.org", "{}")], suppress="BOUNCE")
    apply(r, "n2", "unknown-id", "complained", [("angry@example.org", "{}")],
          suppress="COMPLAINT")
    apply(r, "n3", "unknown-id", "bounced", [("maybe@example.org", "{}")], suppress="")
    sup = r.cmd("HGETALL", PRE + "sup")
    assert sup == {"hard@example.org": f"BOUNCE\t{NOW}\tevent",
                   "angry@example.org": f"COMPLAINT\t{NOW}\tevent"}
    # An address already listed keeps its first entry.
    apply(r, "n4", "unknown-id", "complained", [("hard@example.org", "{}")],
          suppress="COMPLAINT", now=NOW + 1)
    assert r.cmd("HGET", PRE + "sup", "hard@example.org") == f"BOUNCE\t{NOW}\tevent"


def test_transient_n_in_d(r):
    a = "soft@example.org"
    # Three transient bounces, the first outside the window: not yet.
    apply(r, "t1", "m1", "bounced", [(a, "{}")], suppress="TRANSIENT", at=NOW - 8 * DAY,
          now=NOW - 8 * DAY)
    apply(r, "t2", "m2", "bounced", [(a, "{}")], suppress="TRANSIENT", at=NOW - DAY,
          now=NOW - DAY)
    apply(r, "t3", "m3", "bounced", [(a, "{}")], suppress="TRANSIENT")
    assert r.cmd("HGET", PRE + "sup", a) is None
    assert r.cmd("ZCARD", PRE + "tb:" + a) == 2
    assert 0 < r.cmd("PTTL", PRE + "tb:" + a) <= 7 * DAY
    out = apply(r, "t4", "m4", "bounced", [(a, "{}")], suppress="TRANSIENT", now=NOW + 1000,
                at=NOW + 1000)
    assert out[4] == 1
    assert r.cmd("HGET", PRE + "sup", a) == f"TRANSIENT\t{NOW + 1000}\tevent"
    # transient_count 0: counted, never added.
    apply(r, "t5", "m5", "bounced", [("x@example.org", "{}")], suppress="TRANSIENT", tcount=0)
    assert r.cmd("HGET", PRE + "sup", "x@example.org") is None


def test_relay_only_for_listed_clients(r):
    body = '{"Type" : "Notification", "Message" : "{\\"x\\":1}\\n"}'
    index(r, "ses-r", "app")
    index(r, "ses-s", "other")
    apply(r, "n1", "ses-r", "delivered", [("a@example.org", "{}")], relay="x\napp\n", body=body)
    apply(r, "n2", "ses-s", "delivered", [("a@example.org", "{}")], relay="x\napp\n", body=body)
    apply(r, "n3", "not-indexed", "delivered", [("a@example.org", "{}")], relay="app\n")
    entries = r.cmd("XRANGE", PRE + "relay", "-", "+")
    assert len(entries) == 1
    fields = entries[0][1]
    assert dict(zip(fields[::2], fields[1::2])) == {
        "c": "app", "t": "arn:aws:sns:us-east-1:123456789012:ses", "y": "Notification",
        "i": "n1", "s": "arn:sub", "b": body, "a": "0"}
    groups = r.cmd("XINFO", "GROUPS", PRE + "relay")
    assert [g["name"] if isinstance(g, dict) else g[1] for g in groups] == ["w"]


def test_state_keeps_the_batch_lifetime(r):
    enqueue(r, "B4", addresses(2))
    r.cmd("PEXPIRE", PRE + "b:B4", 5000)
    index(r, "ses-4", "app", "B4", "1")
    apply(r, "n1", "ses-4", "delivered", [(addresses(2)[1], "{}")])
    assert 0 < r.cmd("PTTL", PRE + "e:B4") <= 5000
    # A batch gone: the event changes no state (and makes no state key).
    index(r, "ses-5", "app", "GONE", "0")
    assert apply(r, "n2", "ses-5", "delivered", [("a@example.org", "{}")])[3] == 0
    assert r.cmd("EXISTS", PRE + "e:GONE") == 0


def test_bad_arguments(r):
    keys = [PRE + "sns:x", PRE + "m:y", PRE + "sup", PRE + "relay", PRE]
    good = [NOW, DAY, "delivered", NOW, "", 3, DAY, "", "t", "Notification", "x", "", "{}", 0]
    for i, bad in [(2, "exploded"), (4, "MAYBE"), (13, 2), (1, 0)]:
        args = list(good)
        args[i] = bad
        with pytest.raises(RedisError, match="BADARGS"):
            r.script("events", keys, args)
    assert r.cmd("KEYS", "*") == []


def test_sync_stream_notes_each_address_added(r):
    ss = PRE + "ss"
    keys = [PRE + "sns:s1", PRE + "m:x", PRE + "sup", PRE + "relay", PRE, ss]
    args = [NOW, DAY, "bounced", NOW, "BOUNCE", 3, DAY, "", "t", "Notification", "s1", "", "{}", 2,
            "new@example.org", "{}", "old@example.org", "{}"]
    r.cmd("HSET", PRE + "sup", "old@example.org", f"MANUAL\t{NOW}\tcli")
    assert r.script("events", keys, args)[4] == 1
    entries = r.cmd("XRANGE", ss, "-", "+")
    assert [e[1] for e in entries] == [["a", "new@example.org"]]
    # without the sixth key (sync_ses off) nothing is noted
    keys, args[10] = keys[:5] + [], "s2"
    keys[0] = PRE + "sns:s2"
    args[13:] = [1, "other@example.org", "{}"]
    assert r.script("events", keys, args)[4] == 1
    assert len(r.cmd("XRANGE", ss, "-", "+")) == 1
