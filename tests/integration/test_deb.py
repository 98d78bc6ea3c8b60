"""The Debian package (make deb): built, checked with lintian when it is
installed, installed with dpkg -i on this machine, run from its packaged
paths as its user, removed, then purged; the machine is left as it was.

It needs root (dpkg). It refuses to run (a skip that says why) when a
sesgate package, /etc/sesgate or the package's record of what it made is
already on the machine, so it never touches an installation it did not
make. conftest.py runs it alone (SERIAL_FILES): dpkg takes a lock, and the
before/after comparison of /etc and /var/lib must see only this package."""

import grp
import os
import pwd
import re
import shutil
import signal
import subprocess
from pathlib import Path

import boto3
import botocore.config
import pytest

import harness

ROOT = Path(__file__).resolve().parents[2]
VERSION = (ROOT / "VERSION").read_text().strip()
MADE = Path("/var/lib/sesgate.dpkg-made")
INI = Path("/etc/sesgate/sesgate.ini")
DATA = Path("/var/lib/sesgate")
UNIT = Path("/lib/systemd/system/sesgate.service")
# Trees compared before installation and after purge (by name, owner, mode).
# /var/lib/dpkg and /var/lib/apt are the package manager's own records;
# /etc/passwd- and its siblings are the shadow tools' backups.
TREES = ["/etc", "/var/lib", "/lib/systemd", "/usr/bin", "/usr/share/doc", "/usr/share/lintian"]
SKIP_TREES = ("/var/lib/dpkg", "/var/lib/apt")
SHADOW_BACKUPS = {"/etc/passwd-", "/etc/group-", "/etc/shadow-", "/etc/gshadow-"}
ACCOUNTS = ["/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow"]


def run(*args, timeout=120, check=True, **kw):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check:
        assert r.returncode == 0, "%s: exit %d\n%s\n%s" % (args, r.returncode, r.stdout, r.stderr)
    return r


def package_status():
    """dpkg's status words for sesgate ('' when dpkg knows no such package)."""
    r = run("dpkg-query", "-W", "-f=${Status}", "sesgate", check=False)
    return r.stdout.strip() if r.returncode == 0 else ""


def ready(admin):
    """sesgate's /readyz on the admin port answers 200."""
    try:
        return harness.http("GET", "http://127.0.0.1:%d/readyz" % admin, timeout=2)[0] == 200
    except OSError:
        return False


def snapshot():
    """Every path under TREES with its owner and mode, and the account files' lines."""
    paths = {}
    for top in TREES:
        for d, dirs, files in os.walk(top):
            if d.startswith(SKIP_TREES):
                dirs[:] = []
                continue
            for name in dirs + files:
                p = os.path.join(d, name)
                if p in SHADOW_BACKUPS:
                    continue
                try:
                    st = os.lstat(p)
                except FileNotFoundError:
                    continue
                paths[p] = (st.st_uid, st.st_gid, st.st_mode)
    accounts = {f: set(Path(f).read_text().splitlines()) for f in ACCOUNTS if Path(f).exists()}
    return paths, accounts


def assert_same_machine(before):
    paths, accounts = snapshot()
    b_paths, b_accounts = before
    added = sorted(set(paths) - set(b_paths))
    removed = sorted(set(b_paths) - set(paths))
    changed = sorted(p for p in set(paths) & set(b_paths) if paths[p] != b_paths[p])
    assert (added, removed, changed) == ([], [], []), (added, removed, changed)
    assert accounts == b_accounts
    assert not list(Path("/var/lib/dpkg/info").glob("sesgate.*"))
    assert package_status() in ("", "unknown ok not-installed")


@pytest.fixture(scope="module")
def deb():
    if os.geteuid() != 0:
        pytest.skip("installs a package with dpkg -i: needs root")
    status = package_status()
    if status not in ("", "unknown ok not-installed"):
        pytest.skip("a sesgate package is on this machine (%s): this test installs and purges "
                    "its own, so it leaves the machine alone" % status)
    for p in (Path("/etc/sesgate"), MADE):
        if p.exists():
            pytest.skip("%s exists without the package: this test leaves it alone" % p)
    r = run("nice", "-n", "10", "make", "-s", "deb", cwd=ROOT, timeout=900)
    path = ROOT / r.stdout.strip().splitlines()[-1]
    arch = run("dpkg", "--print-architecture").stdout.strip()
    assert path == ROOT / "build" / ("sesgate_%s_%s.deb" % (VERSION, arch))
    return path


@pytest.fixture
def installed(deb):
    """The package installed; purged afterwards whatever happened."""
    before = snapshot()
    try:
        run("dpkg", "-i", str(deb), stdin=subprocess.DEVNULL)
        assert package_status() == "install ok installed"
        yield before
    finally:
        if package_status() not in ("", "unknown ok not-installed"):
            run("dpkg", "--purge", "sesgate", check=False, stdin=subprocess.DEVNULL)


def test_control_fields(deb):
    fields = run("dpkg-deb", "-f", str(deb), "Package", "Version", "Depends", "Recommends").stdout
    assert "Package: sesgate\n" in fields and "Version: %s\n" % VERSION in fields
    depends = re.search(r"^Depends: (.*)$", fields, re.M).group(1)
    # from dpkg-shlibdeps: the libraries the binary links, with versions
    for lib in ("libc6 (>= ", "libevent-2.1-7", "libhiredis0.14", "libcurl4", "libjansson4",
                "libssl3", "libhttp-parser2.9", "libinih1"):
        assert lib in depends, depends
    assert re.search(r"^Recommends: redis-server$", fields, re.M), fields
    assert run("dpkg-deb", "-I", str(deb), "conffiles").stdout == "/etc/sesgate/sesgate.ini\n"
    contents = run("dpkg-deb", "-c", str(deb)).stdout
    for p in ("./usr/bin/sesgate", "./etc/sesgate/sesgate.ini", "./lib/systemd/system/sesgate.service",
              "./usr/share/doc/sesgate/copyright", "./usr/share/doc/sesgate/changelog.gz",
              "./usr/share/man/man1/sesgate.1.gz"):
        assert re.search(r" %s$" % re.escape(p), contents, re.M), p
    # /var/lib/sesgate is made by postinst, so that purge can tell whether it made it
    assert "./var/" not in contents


def test_lintian(deb):
    if shutil.which("lintian") is None:
        pytest.skip("lintian is not installed (scripts/deps test installs it)")
    r = run("lintian", "--fail-on", "error,warning", str(deb), check=False, timeout=600)
    assert r.returncode == 0 and not re.search(r"^[EW]: ", r.stdout, re.M), r.stdout + r.stderr


def test_install_run_remove_purge(deb, installed, tmp_path):
    before = installed
    r = run("/usr/bin/sesgate", "version", env=harness.clean_env())
    assert r.stdout == "sesgate %s\n" % VERSION

    # The user and group the package made, recorded as made.
    user = pwd.getpwnam("sesgate")
    assert grp.getgrgid(user.pw_gid).gr_name == "sesgate"
    assert user.pw_uid < 1000 and user.pw_dir == str(DATA) and user.pw_shell == "/usr/sbin/nologin"
    assert MADE.read_text().split() == ["group", "user", "datadir"]

    # The configuration: a conffile, root:sesgate 0640, the example with the package's data_dir.
    st = INI.stat()
    assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)) == (0, user.pw_gid, "0o640")
    example = (ROOT / "sesgate.example.ini").read_text()
    assert INI.read_text() == re.sub(r"(?m)^data_dir = .*$", "data_dir = /var/lib/sesgate", example)
    assert "/etc/sesgate/sesgate.ini" in run("dpkg-query", "-W", "-f=${Conffiles}", "sesgate").stdout
    st = DATA.stat()
    assert (st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)) == (user.pw_uid, user.pw_gid, "0o750")

    # sesgate check, as root and as the service's user
    for kw in ({}, {"user": "sesgate", "group": "sesgate", "extra_groups": []}):
        r = run("/usr/bin/sesgate", "check", "-c", str(INI), env=harness.clean_env(), cwd="/", **kw)
        assert re.search(r"(?m)^data_dir = /var/lib/sesgate$", r.stdout), r.stdout
    # the configuration is not for other users
    r = run("/usr/bin/sesgate", "check", "-c", str(INI), env=harness.clean_env(), cwd="/",
            user="nobody", group="nogroup", extra_groups=[], check=False)
    assert r.returncode != 0

    # The unit: the packaged paths, the hardened sandbox, not enabled.
    unit = UNIT.read_text()
    assert "ExecStart=/usr/bin/sesgate run -c /etc/sesgate/sesgate.ini\n" in unit
    assert "/usr/local" not in unit
    for line in ("User=sesgate", "StateDirectory=sesgate", "ProtectSystem=strict", "NoNewPrivileges=yes"):
        assert "\n%s\n" % line in unit, line
    assert not list(Path("/etc/systemd/system").glob("*.wants/sesgate.service"))
    if shutil.which("systemd-analyze"):
        r = run("systemd-analyze", "verify", str(UNIT), check=False, timeout=60)
        assert r.returncode == 0 and "sesgate.service" not in r.stderr, r.stdout + r.stderr

    # The packaged binary and configuration run as sesgate: its managed Redis
    # and the sandbox's outbox under /var/lib/sesgate, a send through boto3.
    port, admin = harness.free_port(), harness.free_port()
    env = harness.clean_env({"SESGATE_SERVER_LISTEN": "127.0.0.1:%d" % port,
                             "SESGATE_SERVER_ADMIN_LISTEN": "127.0.0.1:%d" % admin})
    log = open(tmp_path / "sesgate.log", "w")
    proc = subprocess.Popen(["/usr/bin/sesgate", "run", "-c", str(INI)], env=env, cwd=str(DATA),
                            user="sesgate", group="sesgate", extra_groups=[], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert harness.wait_for(lambda: ready(admin), timeout=30), (tmp_path / "sesgate.log").read_text()
        creds = (DATA / "credentials").read_text()
        key = re.search(r"(?m)^aws_access_key_id = (\S+)$", creds).group(1)
        secret = re.search(r"(?m)^aws_secret_access_key = (\S+)$", creds).group(1)
        ses = boto3.client("ses", region_name="us-east-1", endpoint_url="http://127.0.0.1:%d" % port,
                           aws_access_key_id=key, aws_secret_access_key=secret,
                           config=botocore.config.Config(retries={"max_attempts": 1}))
        mid = ses.send_email(Source="app@example.com", Destination={"ToAddresses": ["a@example.net"]},
                             Message={"Subject": {"Data": "packaged"},
                                      "Body": {"Text": {"Data": "from the .deb"}}})["MessageId"]
        assert mid
        assert harness.wait_for(lambda: harness.outbox(DATA / "outbox"), timeout=20)
        for p in [DATA / "credentials", DATA / "redis"] + harness.outbox(DATA / "outbox"):
            assert p.stat().st_uid == user.pw_uid, p
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode == 0, (tmp_path / "sesgate.log").read_text()

    # An administrator's edit survives a reinstallation, with its mode.
    INI.write_text(INI.read_text().replace("listen = 127.0.0.1:8025", "listen = 127.0.0.1:8125", 1))
    run("dpkg", "-i", str(deb), stdin=subprocess.DEVNULL)
    assert "listen = 127.0.0.1:8125\n" in INI.read_text()
    st = INI.stat()
    assert (st.st_gid, oct(st.st_mode & 0o7777)) == (user.pw_gid, "0o640")
    assert MADE.read_text().split() == ["group", "user", "datadir"]

    # remove: the program goes; the configuration, the data and the user stay.
    run("dpkg", "-r", "sesgate", stdin=subprocess.DEVNULL)
    assert package_status() == "deinstall ok config-files"
    assert not Path("/usr/bin/sesgate").exists() and not UNIT.exists()
    assert INI.exists() and (DATA / "credentials").exists() and (DATA / "outbox").is_dir()
    assert pwd.getpwnam("sesgate").pw_uid == user.pw_uid
    # installed again, it carries on with them
    creds = (DATA / "credentials").read_text()
    run("dpkg", "-i", str(deb), stdin=subprocess.DEVNULL)
    assert "listen = 127.0.0.1:8125\n" in INI.read_text()
    assert (DATA / "credentials").read_text() == creds
    assert MADE.read_text().split() == ["group", "user", "datadir"]
    run("dpkg", "-r", "sesgate", stdin=subprocess.DEVNULL)

    # purge: everything the package made is gone, and nothing else.
    run("dpkg", "--purge", "sesgate", stdin=subprocess.DEVNULL)
    for p in (Path("/etc/sesgate"), DATA, MADE):
        assert not p.exists(), p
    with pytest.raises(KeyError):
        pwd.getpwnam("sesgate")
    with pytest.raises(KeyError):
        grp.getgrnam("sesgate")
    assert_same_machine(before)


@pytest.fixture
def own_user():
    """A sesgate user, group and /var/lib/sesgate that exist before the
    package (as a manual install from contrib/systemd leaves them); removed
    afterwards."""
    for probe in (lambda: pwd.getpwnam("sesgate"), lambda: grp.getgrnam("sesgate")):
        try:
            probe()
        except KeyError:
            continue
        pytest.skip("a sesgate user or group is on this machine: this test leaves it alone")
    if DATA.exists():
        pytest.skip("%s exists: this test leaves it alone" % DATA)
    try:
        run("useradd", "--system", "--user-group", "--home-dir", str(DATA), "--no-create-home",
            "--shell", "/usr/sbin/nologin", "sesgate")
        DATA.mkdir(mode=0o700)
        (DATA / "kept").write_text("the administrator's\n")
        yield pwd.getpwnam("sesgate")
    finally:
        shutil.rmtree(DATA, ignore_errors=True)
        if run("getent", "passwd", "sesgate", check=False).returncode == 0:
            run("userdel", "sesgate", check=False)
        if run("getent", "group", "sesgate", check=False).returncode == 0:
            run("groupdel", "sesgate", check=False)


def test_purge_keeps_what_was_there_before(own_user, deb):
    """A user, group and data directory from before, and a file the
    administrator added to /etc/sesgate, outlive a purge."""
    before = snapshot()
    env_file = Path("/etc/sesgate/sesgate.env")
    try:
        run("dpkg", "-i", str(deb), stdin=subprocess.DEVNULL)
        assert not MADE.exists()
        assert pwd.getpwnam("sesgate") == own_user
        assert oct(DATA.stat().st_mode & 0o7777) == "0o700"
        assert INI.stat().st_gid == own_user.pw_gid
        env_file.write_text("AWS_REGION=eu-west-1\n")
        r = run("dpkg", "--purge", "sesgate", stdin=subprocess.DEVNULL)
        assert "/var/lib/sesgate kept" in r.stderr + r.stdout
        assert "/etc/sesgate kept" in r.stderr + r.stdout
        assert sorted(p.name for p in Path("/etc/sesgate").iterdir()) == ["sesgate.env"]
    finally:
        if package_status() not in ("", "unknown ok not-installed"):
            run("dpkg", "--purge", "sesgate", check=False, stdin=subprocess.DEVNULL)
        env_file.unlink(missing_ok=True)
        if Path("/etc/sesgate").exists():
            Path("/etc/sesgate").rmdir()
    assert pwd.getpwnam("sesgate") == own_user
    assert grp.getgrnam("sesgate").gr_gid == own_user.pw_gid
    assert (DATA / "kept").read_text() == "the administrator's\n"
    assert_same_machine(before)
