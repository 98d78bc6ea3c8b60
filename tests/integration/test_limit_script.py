"""The rate limiter's Redis Lua script (src/lua/limit.lua) against a real
redis-server: pacing, horizon refusals, AIMD, the rolling day window and
quota, per-client limits, errors, and a differential check against
src/ratelimit.c itself (tests/unit/ratelimit_oracle.c runs the same
operations in the same order, so answers are bit-equal).

Each test gets its own redis-server on a free 127.0.0.1 port without
persistence. The script is driven over one RESP connection (EVALSHA), since
some scenarios make thousands of calls; time is moved by hand (now is an
argument)."""

import math
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import harness
from harness import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
LUA = Path(__file__).resolve().parents[2] / "src" / "lua" / "limit.lua"

P = "sgt"
PRE = f"{P}:{{{P}}}:"
RL = PRE + "rl"
DAYK = PRE + "day"
T0 = 1700000000000
BIG = 1 << 41
MIN = 60000
DAY = 86400000

BUCKETS = 1441  # RATELIMIT_DAY_BUCKETS


RedisError = harness.RedisClient.Error


class Redis(harness.RedisClient):
    """A throwaway redis-server and one RESP2 connection to it."""

    def __init__(self, workdir):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while True:
            try:
                super().__init__(port=self.port, timeout=30)
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)
        assert self.cmd("PING") == "PONG"
        self.sha = self.cmd("SCRIPT", "LOAD", LUA.read_text())

    def stop(self):
        self.close()
        self.proc.terminate()
        self.proc.wait(10)

    def limit(self, keys, *args):
        """Run limit.lua with keys and args."""
        return self.cmd("EVALSHA", self.sha, len(keys), *keys, *args)

    def snapshot(self):
        """Every key with its type and a dump of its value."""
        return {k: (self.cmd("TYPE", k), self.cmd("DUMP", k)) for k in self.cmd("KEYS", "*")}


@pytest.fixture
def r(tmp_path):
    """A fresh redis-server for one test."""
    srv = Redis(tmp_path)
    yield srv
    srv.stop()


def client_keys(name):
    """A client's limiter and day keys."""
    return [RL, DAYK, PRE + "rl:c:" + name, PRE + "day:c:" + name]


def fmt(x):
    """A number as the script's arguments carry it (exact round trip)."""
    return repr(float(x)) if isinstance(x, float) else str(x)


def take(r, cost, horizon, rate, now, quota=0, client=None, c_rate="", c_quota=""):
    """One take through the script: (granted, wait, reason, rate, used)."""
    keys = client_keys(client) if client is not None else [RL, DAYK]
    g, w, why, eff, used, at = r.limit(keys, "take", cost, fmt(horizon), fmt(rate), quota,
                                       fmt(c_rate) if c_rate != "" else "",
                                       c_quota, now)
    if now == "":  # the server's TIME
        assert abs(at - time.time() * 1000) < 5000, at
    else:
        assert at == now, "the script answers with the time it used"
    return g == 1, float(w), why, float(eff), used


# -- The oracle: src/ratelimit.c, driven by build-unit/ratelimit_oracle. -----

ROOT = Path(__file__).resolve().parents[2]
ORACLE = ROOT / "build-unit" / "ratelimit_oracle"


def _oracle_value(x, kind=float):
    """One field of an oracle answer ("-": absent, "")."""
    return "" if x == "-" else kind(x)


class Oracle:
    """src/ratelimit.c holding what limit.lua keeps in Redis: the account
    and its clients (tests/unit/ratelimit_oracle.c, one line a command)."""

    def __init__(self):
        subprocess.run(["make", "-s", "-C", str(ROOT), "build-unit/ratelimit_oracle"],
                       check=True, stdout=subprocess.DEVNULL)
        self.proc = subprocess.Popen([str(ORACLE)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def __del__(self):
        if getattr(self, "proc", None) and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(10)

    def _ask(self, *words):
        self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.proc.stdin.flush()
        out = self.proc.stdout.readline().split()
        assert out and out[0] != "error", words
        return out

    def take(self, cost, horizon, rate, now, quota=0, client=None, c_rate="", c_quota=""):
        g, w, why, eff, used = self._ask(
            "take", cost, fmt(horizon), fmt(rate), now, quota,
            "-" if client is None else client,
            "-" if c_rate == "" else fmt(c_rate), "-" if c_quota == "" else c_quota)
        return g == "1", float(w), "" if why == "-" else why, float(eff), int(used)

    def throttled(self, now):
        cut, rate = self._ask("throttled", now)
        return int(cut), _oracle_value(rate)

    def status(self, now):
        eff, base, cut_rate, cut_at, used, tat = self._ask("status", now)
        return (_oracle_value(eff), _oracle_value(base), _oracle_value(cut_rate),
                _oracle_value(cut_at, lambda x: int(float(x))), int(used), _oracle_value(tat))


def num(x):
    """A script answer field as a number ("" stays "")."""
    return x if x == "" or isinstance(x, int) else float(x)


# -- Tests. ---------------------------------------------------------------------

def test_script_starts_with_its_contract():
    text = LUA.read_text()
    head = text.split("\n\n")[0]
    assert head.startswith("-- limit.lua")
    before = text.split("\nlocal ")[0]
    for word in ("KEYS[1]", "KEYS[4]", "ARGV[1]", "Returns", "Errors", "Atomicity"):
        assert word in before, word
    # The constants are the C module's.
    hdr = (LUA.parents[1] / "ratelimit.h").read_text()
    for c_name, lua_name in (("RECOVER_PER_S", "RECOVER"), ("FLOOR", "FLOOR"),
                             ("CUT_FACTOR", "CUT_FACTOR"), ("CUT_WINDOW_MS", "CUT_WINDOW"), ("STEP_MS", "STEP"),
                             ("MINUTE_MS", "MINUTE"), ("DAY_MS", "DAY"),
                             ("DAY_BUCKETS", "BUCKETS")):
        c_val = hdr.split(f"#define RATELIMIT_{c_name} ")[1].split()[0]
        lua_val = text.split(f"\nlocal {lua_name} = ")[1].split()[0]
        assert float(c_val) == float(lua_val), c_name


PACING = [  # (now offset, cost, horizon, granted, wait, reason): 50/s
    (0, 1, 100, True, 0, ""), (0, 1, 100, True, 20, ""), (0, 1, 100, True, 40, ""),
    (0, 1, 100, True, 60, ""), (0, 1, 100, True, 80, ""), (0, 1, 100, True, 100, ""),
    (0, 1, 100, False, 20, "rate"), (0, 5, 100, False, 20, "rate"),
    (5, 1, 100, False, 15, "rate"), (20, 1, 100, True, 100, ""),
    (20, 1, 2000, True, 120, ""), (20, 5, 2000, True, 140, ""),
    (20, 1, 100, False, 140, "rate"), (260, 1, 0, True, 0, ""),
    (1000, 5, 0, True, 0, ""), (1000, 1, 0, False, 100, "rate"),
    (1100, 1, 0, True, 0, ""), (5000, 3, 0, True, 0, ""),
    (5001, 1, 59, True, 59, ""), (5001, 1, 78, False, 1, "rate"),
]


@pytest.mark.parametrize("base", [T0, BIG])
def test_pacing_and_horizon(r, base):
    for i, (at, cost, horizon, granted, wait, why) in enumerate(PACING):
        before = r.snapshot()
        g, w, reason, eff, _ = take(r, cost, horizon, 50.0, base + at)
        assert (g, w, reason, eff) == (granted, wait, why, 50.0), i
        if not granted:
            assert r.snapshot() == before, i


def test_fractional_rate_exact(r):
    m = Oracle()
    for k in range(300):
        want = m.take(1, 1e9, 3.0, BIG)
        assert take(r, 1, 1e9, 3.0, BIG) == want
    # 300 recipients at 3/s: tat is 100 s ahead, to well under a microsecond.
    tat, frac = int(r.cmd("HGET", RL, "tat")), float(r.cmd("HGET", RL, "tatf"))
    assert 0 <= frac < 1
    assert abs((tat - BIG) + frac - 100000) < 1e-6


def test_exact_carry(r):
    """Fractions adding up to exactly 1 ms carry: at 4000/s, 4 recipients
    take 1 ms and the stored fraction stays in [0, 1)."""
    for _ in range(4):
        assert take(r, 1, 10, 4000.0, T0)[0]
    assert (r.cmd("HGET", RL, "tat"), r.cmd("HGET", RL, "tatf")) == (str(T0 + 1), "0")
    assert take(r, 3, 10, 4000.0, T0)[:2] == (True, 1.0)
    assert take(r, 1, 10, 4000.0, T0)[:2] == (True, 1.75)
    assert (r.cmd("HGET", RL, "tat"), r.cmd("HGET", RL, "tatf")) == (str(T0 + 2), "0")


AIMD = [  # (offset, throttle, cut, rate, set_rate): R = 100
    (0, 0, 0, 100, 0), (1000, 1, 1, 50, 0), (1500, 1, 0, 51.25, 0),
    (1999, 1, 0, 52.4975, 0), (3000, 0, 0, 55, 0), (11000, 0, 0, 75, 0),
    (20999, 0, 0, 99.9975, 0), (21000, 0, 0, 100, 0),
    (100000, 1, 1, 50, 0), (101000, 1, 1, 26.25, 0), (102000, 1, 1, 14.375, 0),
    (103000, 1, 1, 8.4375, 0), (300000, 1, 1, 50, 0), (300000, 0, 0, 30, 30),
    (302000, 0, 0, 30, 0), (302000, 0, 0, 40, 200), (303000, 0, 0, 45, 0),
    (340000, 0, 0, 200, 0),
]


@pytest.mark.parametrize("base", [T0, BIG])
def test_aimd_curve(r, base):
    assert r.limit([RL, DAYK], "throttled", base) == [0, ""]  # no state yet
    rate = 100.0
    take(r, 1, 0, rate, base)
    for i, (at, thr, cut, want, new_rate) in enumerate(AIMD):
        now = base + at
        if new_rate:
            rate = float(new_rate)
            take(r, 1, 1e12, rate, now)  # a take carries R
        if thr:
            got = r.limit([RL, DAYK], "throttled", now)
            assert got[0] == cut, i
            assert abs(float(got[1]) - want) < 1e-9, i
        st = r.limit([RL, DAYK], "status", now)
        assert abs(float(st[0]) - want) < 1e-9, (i, st)
        assert float(st[1]) == rate


def test_throttle_does_not_move_tat(r):
    take(r, 10, 0, 50.0, T0)
    tat = r.cmd("HGET", RL, "tat")
    assert r.limit([RL, DAYK], "throttled", T0) == [1, "25"]
    assert r.cmd("HGET", RL, "tat") == tat == str(T0 + 200)
    # Later reservations get the lower rate: 40 ms each.
    assert take(r, 1, 1000, 50.0, T0)[:2] == (True, 200.0)
    assert take(r, 1, 1000, 50.0, T0)[:2] == (True, 240.0)


def test_sustained_throttling_never_below(r):
    take(r, 1, 0, 100.0, T0)
    cuts = 0
    for t in range(0, 60000, 250):
        cuts += r.limit([RL, DAYK], "throttled", T0 + t)[0]
        assert float(r.limit([RL, DAYK], "status", T0 + t)[0]) >= 2.5 - 1e-9
    assert cuts == 60
    assert abs(float(r.cmd("HGET", RL, "cut_rate")) - 2.5) < 1e-9


def test_floor_of_a_stored_state(r):
    take(r, 1, 0, 100.0, T0)
    r.cmd("HSET", RL, "cut_rate", "0.001", "cut_at", T0)
    assert float(r.limit([RL, DAYK], "status", T0)[0]) == 1.0
    assert take(r, 1, 5000, 100.0, T0 + 10)[:2] == (True, 0.0)
    assert take(r, 1, 5000, 100.0, T0 + 10)[:2] == (True, 1000.0)


@pytest.mark.parametrize("base", [T0 - T0 % MIN, BIG - BIG % MIN])
def test_day_window_boundaries(r, base):
    """Minute buckets leave exactly 24 h after the end of their minute."""
    steps = [  # (offset, add, used)
        (0, 10, 10), (59999, 5, 15), (60000, 7, 22), (30 * MIN + 1234, 3, 25),
        (DAY, 0, 25), (DAY + MIN - 1, 0, 25), (DAY + MIN, 0, 10), (DAY + MIN, 1, 11),
        (DAY + 2 * MIN - 1, 0, 11), (DAY + 2 * MIN, 0, 4), (DAY + 31 * MIN - 1, 0, 4),
        (DAY + 31 * MIN, 0, 1), (2 * DAY + 2 * MIN - 1, 0, 1), (2 * DAY + 2 * MIN, 0, 0),
        (2 * DAY + 2 * MIN, 4, 4), (10 * DAY, 0, 0), (10 * DAY + 5, 2, 2),
        (10 * DAY - 5 * MIN, 3, 5), (11 * DAY + MIN - 1, 0, 5), (11 * DAY + MIN, 0, 0),
    ]
    for i, (at, add, used) in enumerate(steps):
        if add:
            g, _, _, _, u = take(r, add, 1e12, 1000.0, base + at)
            assert g and u == used, i
        assert r.limit([RL, DAYK], "status", base + at)[4] == used, i


def test_day_window_24h_plus(r):
    """One recipient a minute for a day and an hour: the count stays at 1441,
    old minutes are deleted as they leave, the hash never grows past them."""
    base = T0 - T0 % MIN
    for m in range(BUCKETS + 60):
        g, _, _, _, used = take(r, 1, 0, 10.0, base + m * MIN + 17)
        assert g and used == min(m + 1, BUCKETS), m
        assert r.limit([RL, DAYK], "status", base + m * MIN + 59999)[4] == min(m + 1, BUCKETS)
    assert r.cmd("HLEN", DAYK) == BUCKETS + 3  # the minutes, sum, old, new
    assert r.cmd("HGET", DAYK, "old") == str(base // MIN + 60)
    assert r.cmd("HEXISTS", DAYK, str(base // MIN + 59)) == 0
    assert 0 < r.cmd("PTTL", DAYK) <= DAY + 2 * MIN
    assert 0 < r.cmd("PTTL", RL) <= DAY + 1000


def test_quota_refusal_and_when_it_frees(r):
    base = T0 - T0 % MIN
    steps = [  # (offset, cost, quota, granted, wait, used)
        (0, 60, 100, True, 0, 60), (10 * MIN + 500, 40, 100, True, 0, 100),
        (60 * MIN, 1, 100, False, DAY + MIN - 60 * MIN, 100),
        (60 * MIN, 61, 100, False, DAY + 11 * MIN - 60 * MIN, 100),
        (60 * MIN, 101, 100, False, -1, 100), (60 * MIN, 1, 0, True, 0, 101),
        (60 * MIN, 1, -5, True, 0, 102), (DAY + MIN - 1, 1, 102, False, 1, 102),
        (DAY + MIN, 1, 100, True, 0, 43), (DAY + MIN, 58, 100, False, 10 * MIN, 43),
        (DAY + MIN, 57, 100, True, 0, 100),
    ]
    for i, (at, cost, quota, granted, wait, used) in enumerate(steps):
        before = r.snapshot()
        g, w, why, _, u = take(r, cost, 1e9, 1000.0, base + at, quota=quota)
        assert (g, u) == (granted, used), i
        if not granted:
            assert (w, why) == (wait, "quota"), i
            assert r.snapshot() == before, i


def test_client_limits(r):
    # Account 50/s, quota 1000; client 10/s, quota 3.
    def ct(now, horizon=2000):
        return take(r, 1, horizon, 50.0, now, quota=1000, client="app", c_rate=10.0, c_quota=3)

    assert ct(T0)[:3] == (True, 0.0, "")
    assert r.cmd("HGET", RL, "tat") == str(T0 + 20)
    assert r.cmd("HGET", PRE + "rl:c:app", "tat") == str(T0 + 100)
    before = r.snapshot()
    # retry when the account's start (T0 + 20) would have moved to the
    # client's (T0 + 100)
    assert ct(T0)[:3] == (False, 80.0, "client_rate")
    assert r.snapshot() == before
    # the account stayed idle: what is left, then it passes
    assert ct(T0 + 80)[:3] == (False, 20.0, "client_rate")
    assert r.snapshot() == before
    assert take(r, 5, 100, 50.0, T0 + 50, quota=1000)[:2] == (True, 0.0)
    assert ct(T0 + 100)[:2] == (True, 50.0)
    assert r.cmd("HGET", PRE + "rl:c:app", "tat") == str(T0 + 250)
    assert ct(T0 + 250)[0]
    before = r.snapshot()
    g, w, why, _, used = ct(T0 + 5000)
    assert (g, why, used) == (False, "client_quota", 8)
    assert w == DAY + MIN - T0 % MIN - 5000
    assert r.snapshot() == before
    # Another client has its own keys; the account's refusal comes first.
    assert take(r, 1, 0, 50.0, T0 + 6000, quota=1000, client="b", c_rate=10.0,
                c_quota=3)[:3] == (True, 0.0, "")
    assert take(r, 1, 0, 50.0, T0 + 7000, quota=9, client="b", c_rate=10.0,
                c_quota=3)[2] == "quota"
    assert r.cmd("EXISTS", PRE + "rl:c:b", PRE + "day:c:b") == 2
    assert 0 < r.cmd("PTTL", PRE + "day:c:app") <= DAY + 2 * MIN


def test_three_processes_share_50_per_second(r):
    """Three processes taking bulk blocks at 50/s over 30 simulated seconds:
    no 1-second window above 50, the total within 1 recipient of ideal."""
    base, run = T0, 30000
    rng = random.Random(7)
    procs = [{"next": base + k, "block": b, "sent": 0} for k, b in enumerate((5, 3, 1))]
    sends = []
    while True:
        p = min(procs, key=lambda q: q["next"])
        now = p["next"]
        if now >= base + run:
            break
        g, w, why, _, _ = take(r, p["block"], 100, 50.0, now)
        if not g:
            assert why == "rate"
            p["next"] = now + math.ceil(w) + rng.randrange(10)
            continue
        assert w == int(w)
        sends += [now + int(w) + 20 * j for j in range(p["block"])]
        p["sent"] += p["block"]
        p["next"] = now + 1
    sends.sort()
    assert all(b - a >= 20 for a, b in zip(sends, sends[1:]))
    assert all(sends[i + 50] - sends[i] >= 1000 for i in range(len(sends) - 50))
    in_run = sum(1 for t in sends if t < base + run)
    assert abs(in_run - run * 50 // 1000) <= 1, in_run
    assert all(p["sent"] > 0 for p in procs)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_differential_against_the_c_arithmetic(r, seed):
    """A random sequence through the script and through src/ratelimit.c
    (the oracle): every answer equal, to the last bit."""
    rng = random.Random(seed)
    m = Oracle()
    now = rng.choice([T0, BIG]) + rng.randrange(MIN)
    rate = 50.0
    for step in range(3000):
        roll = rng.random()
        if roll < 0.05:
            now += rng.choice([MIN, 3600000, DAY, DAY + MIN]) + rng.randrange(MIN)
        elif roll < 0.07:  # a clock that went back, by less or more than STEP
            now -= rng.choice([1, 999, 1000, 1001, 2500, 600000, 3600000])
        else:
            now += rng.choice([0, 0, 1, 7, 20, 33, 250, 999, 1000, 2500])
        if rng.random() < 0.02:
            rate = rng.choice([50.0, 37.5, 14.0, 200.0 / 3, 0.7, 1000.0])
        op = rng.random()
        if op < 0.08:
            got = r.limit([RL, DAYK], "throttled", now)
            want = m.throttled(now)
            assert (got[0], num(got[1])) == want, step
        elif op < 0.12:
            got = tuple(num(x) for x in r.limit([RL, DAYK], "status", now))
            assert got == m.status(now), step
        else:
            cost = rng.choice([1, 1, 1, 2, 5, 10, 50])
            horizon = rng.choice([0, 0.5, 100, 100, 2000])
            quota = rng.choice([0, 300, 2000, 100000])
            kw = {}
            if rng.random() < 0.4:
                name = rng.choice(["a", "b"])
                kw = {"client": name,
                      "c_rate": rng.choice(["", 10.0, 3.3, 100.0]),
                      "c_quota": rng.choice(["", 0, 40, 500])}
                if kw["c_rate"] == "" and kw["c_quota"] == "":
                    kw["c_quota"] = 40
            got = take(r, cost, horizon, rate, now, quota=quota, **kw)
            want = m.take(cost, horizon, rate, now, quota=quota, **kw)
            assert got == want, (step, got, want)


CLOCK_BACK = [  # (now offset, op, cost, horizon, granted, wait, reason): 50/s
    (0, "take", 5, 100, True, 0, ""),        # tat +100
    (0, "take", 5, 100, True, 100, ""),      # tat +200, written at 0
    (-999, "take", 1, 100, False, 1099, "rate"),  # back less than STEP: a plain refusal
    (-3600000, "take", 1, 100, False, 100, "rate"),  # back an hour: 200 ahead as at the write
    (-3600000 + 100, "take", 1, 100, True, 100, ""),
    (-3600000 + 100, "take", 1, 0, False, 120, "rate"),
    (-3600000 + 10000, "take", 1, 0, True, 0, ""),
]


@pytest.mark.parametrize("base", [T0, BIG])
def test_clock_back_keeps_reservations_ahead(r, base):
    """Redis's clock (or a caller's now) going back an hour: the next takes
    wait as long as the reservations stood ahead of the latest write, not an
    hour; a step back of less than STEP changes nothing."""
    m = Oracle()
    for i, (t, op, cost, horizon, granted, wait, why) in enumerate(CLOCK_BACK):
        got = take(r, cost, horizon, 50.0, base + t)
        want = m.take(cost, horizon, 50.0, base + t)
        assert got == want, (i, got, want)
        assert got[:3] == (granted, float(wait), why), (i, got)
    assert int(r.cmd("HGET", RL, "at")) == base - 3600000 + 10000
    # tat moved back with the clock: a day to live from the new now.
    assert r.cmd("PTTL", RL) <= DAY + 1000


def test_clock_back_after_a_cut_recovers(r):
    """A cut followed by the clock going back an hour: the rate recovers
    from the cut as before (cut_at moves back with the clock) and a
    Throttling answer cuts again after CUT_WINDOW, not an hour later."""
    m = Oracle()
    assert take(r, 1, 0, 100.0, T0) == m.take(1, 0, 100.0, T0)
    assert (r.limit([RL, DAYK], "throttled", T0)[0], 1) == (1, m.throttled(T0)[0])
    back = T0 + 10000 - 3600000  # 10 s after the cut, the clock an hour back
    g = take(r, 1, 0, 100.0, back)
    assert g == m.take(1, 0, 100.0, back)
    # 10 s of recovery were lost with the step (the limiter cannot know
    # them): the rate is where the cut left it, and recovers from here.
    assert g[3] == 50.0, g
    later = take(r, 1, 5000, 100.0, back + 4000)
    assert later == m.take(1, 5000, 100.0, back + 4000)
    assert later[3] == 60.0, later
    got = r.limit([RL, DAYK], "throttled", back + 4000)
    assert (got[0], num(got[1])) == m.throttled(back + 4000) == (1, 30.0)
    st = r.limit([RL, DAYK], "status", back + 4000)
    assert int(st[3]) == back + 4000


def test_server_time_when_now_is_empty(r):
    t = int(time.time() * 1000)
    g, w, why, eff, used = take(r, 1, 0, 5.0, "")
    assert (g, w, why, eff, used) == (True, 0.0, "", 5.0, 1)
    tat = int(r.cmd("HGET", RL, "tat"))
    assert t + 200 - 5000 <= tat <= t + 200 + 5000
    g, w, why, _, _ = take(r, 1, 0, 5.0, "")
    assert not g and why == "rate" and 0 < w <= 200
    st = r.limit([RL, DAYK], "status", "")
    assert st[4] == 1 and float(st[1]) == 5.0
    assert r.limit([RL, DAYK], "throttled", "")[0] == 1


@pytest.mark.parametrize("keys,args", [
    ([RL, DAYK], ["nope", T0]),
    ([RL, DAYK], ["take", 1, 0, 50, 0, "", ""]),
    ([RL, DAYK], ["take", 0, 0, 50, 0, "", "", T0]),
    ([RL, DAYK], ["take", 1.5, 0, 50, 0, "", "", T0]),
    ([RL, DAYK], ["take", 1, -1, 50, 0, "", "", T0]),
    ([RL, DAYK], ["take", 1, 0, 0, 0, "", "", T0]),
    ([RL, DAYK], ["take", 1, 0, "inf", 0, "", "", T0]),
    ([RL, DAYK], ["take", 1, 0, "nan", 0, "", "", T0]),
    ([RL, DAYK], ["take", 1, 0, 50, "x", "", "", T0]),
    ([RL, DAYK], ["take", 1, 0, 50, 0, "", "", "soon"]),
    ([RL, DAYK], ["take", 1, 0, 50, 0, "", "", T0 + 0.5]),
    ([RL, DAYK], ["take", 1, 0, 50, 0, 10, "", T0]),
    (client_keys("a"), ["take", 1, 0, 50, 0, -2, "", T0]),
    (client_keys("a"), ["take", 1, 0, 50, 0, "", "1.5", T0]),
    ([RL, "other:{other}:day"], ["take", 1, 0, 50, 0, "", "", T0]),
    ([RL], ["status", T0]),
    ([RL, DAYK], ["throttled"]),
])
def test_bad_arguments_write_nothing(r, keys, args):
    take(r, 3, 0, 50.0, T0 - 5)
    before = r.snapshot()
    with pytest.raises(RedisError, match="^BADARGS"):
        r.limit(keys, *args)
    assert r.snapshot() == before


def test_wrong_type_writes_nothing(r):
    r.cmd("SET", DAYK, "x")
    before = r.snapshot()
    with pytest.raises(RedisError, match="^WRONGTYPE"):
        take(r, 1, 0, 50.0, T0)
    assert r.snapshot() == before


def test_refund_takes_back_newest_first(r):
    """Recipients SES refused are taken back from the day window, newest
    minute first, never below zero, for the account and the client."""
    base = T0 - T0 % MIN
    assert r.limit([RL, DAYK], "refund", 3, base) == [0]  # an empty window stays empty
    take(r, 10, 1e12, 1000.0, base)
    take(r, 5, 1e12, 1000.0, base + MIN)
    assert r.limit([RL, DAYK], "refund", 7, base + MIN + 10) == [8]
    assert r.cmd("HGET", DAYK, str(base // MIN + 1)) == "0"
    assert r.cmd("HGET", DAYK, str(base // MIN)) == "8"
    # minute 0 keeps its 8 for 24 h after its end, then leaves with them
    assert r.limit([RL, DAYK], "status", base + DAY)[4] == 8
    assert r.limit([RL, DAYK], "status", base + DAY + MIN)[4] == 0
    assert r.limit([RL, DAYK], "refund", 100, base + DAY + MIN) == [0]
    # a client's window too
    keys = client_keys("app")
    take(r, 4, 1e12, 1000.0, base + 2 * DAY, quota=100, client="app", c_rate=1000.0, c_quota=10)
    assert r.limit(keys, "refund", 3, base + 2 * DAY) == [1]
    assert r.cmd("HGET", PRE + "day:c:app", "sum") == "1"
    with pytest.raises(RedisError, match="BADARGS"):
        r.limit([RL, DAYK], "refund", 0, base)
