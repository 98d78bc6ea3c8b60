"""The command line: version, keygen, check (effective configuration with
secrets masked, file:line errors), smtp-password, and refusal to start
without upstream credentials."""

import base64
import hashlib
import hmac
import re
import subprocess

import harness


def run(args, env=None, cwd=None):
    """Run the sesgate binary; returns CompletedProcess (text)."""
    return subprocess.run([str(harness.sesgate_bin())] + args, capture_output=True, text=True,
                          env=harness.clean_env(env), cwd=cwd, timeout=30)


def test_version():
    r = run(["version"])
    assert r.returncode == 0 and re.match(r"^sesgate \d+\.\d+\.\d+\n$", r.stdout)


def test_keygen_is_random_and_well_formed():
    a, b = run(["keygen"]), run(["keygen"])
    assert a.returncode == 0 and b.returncode == 0
    ida = re.search(r"^access_key_id = ([A-Z0-9]{20})$", a.stdout, re.M)
    seca = re.search(r"^secret_access_key = ([A-Za-z0-9+/]{40})$", a.stdout, re.M)
    assert ida and seca, a.stdout
    assert a.stdout != b.stdout


def test_check_prints_masked_configuration(tmp_path):
    key = run(["keygen"]).stdout
    secret = re.search(r"secret_access_key = (\S+)", key).group(1)
    upstream_secret = harness.new_secret()
    ini = tmp_path / "s.ini"
    ini.write_text("[upstream]\nendpoint = http://127.0.0.1:9\naccess_key_id = AKIAEXAMPLE0000000000\n"
                   "secret_access_key = %s\n\n[client.app]\n%s" % (upstream_secret, key))
    r = run(["check", "-c", str(ini)])
    assert r.returncode == 0, r.stderr
    assert "[client.app]" in r.stdout and "listen = 127.0.0.1:8025" in r.stdout
    assert secret not in r.stdout and upstream_secret not in r.stdout
    assert re.search(r"^secret_access_key = %s\*\*\*\*$" % re.escape(secret[:4]), r.stdout, re.M)
    # SESGATE_CONFIG and an environment override
    r = run(["check"], env={"SESGATE_CONFIG": str(ini), "SESGATE_SERVER_LISTEN": "127.0.0.1:9999"})
    assert r.returncode == 0 and "listen = 127.0.0.1:9999" in r.stdout


def test_check_reports_every_error_with_its_line(tmp_path):
    ini = tmp_path / "bad.ini"
    ini.write_text("[server]\nlisen = 1.2.3.4:5\nclock_skew = soon\n[send]\nmax_body = 1\n"
                   "[client.a]\naccess_key_id = SGAAAAAAAAAAAAAAAAAA\nsecret_access_key = %s\n"
                   "[client.b]\naccess_key_id = SGAAAAAAAAAAAAAAAAAA\n" % harness.new_secret())
    r = run(["check", "-c", str(ini)])
    harness.assert_exit(r, 1)
    err = r.stderr
    assert re.search(r"bad\.ini:2: .*lisen", err), err
    assert re.search(r"bad\.ini:3: .*clock_skew", err), err
    assert re.search(r"bad\.ini:5: .*max_body", err), err
    assert re.search(r"bad\.ini:\d+: .*duplicate access key id|bad\.ini:\d+: .*SGAAAAAAAAAAAAAAAAAA", err, re.I), err
    assert re.search(r"bad\.ini:9: .*secret", err), err


def test_check_unreadable_file(tmp_path):
    r = run(["check", "-c", str(tmp_path / "missing.ini")])
    harness.assert_exit(r, 1)
    assert "missing.ini" in r.stderr


def test_serve_refuses_an_endpoint_without_upstream_credentials(tmp_path):
    """No source of the credential chain at all (the instance role too is
    turned off): serve refuses to start, and check says why."""
    ini = tmp_path / "s.ini"
    ini.write_text("[server]\nlisten = 127.0.0.1:0\nadmin_listen =\n"
                   "[upstream]\nendpoint = https://email.us-east-1.amazonaws.com\n"
                   "[redis]\ndata_dir = %s\n" % (tmp_path / "var"))
    env = {"HOME": str(tmp_path), "AWS_EC2_METADATA_DISABLED": "true"}
    r = run(["serve", "-c", str(ini)], env=env, cwd=str(tmp_path))
    harness.assert_exit(r, 1)
    assert "no upstream credentials" in r.stderr
    r = run(["check", "-c", str(ini)], env=env, cwd=str(tmp_path))
    harness.assert_exit(r, 1)
    assert "no upstream credentials" in r.stderr


def test_no_endpoint_and_no_credentials_is_the_sandbox(tmp_path):
    ini = tmp_path / "s.ini"
    ini.write_text("[server]\nlisten = 127.0.0.1:0\n")
    r = run(["check", "-c", str(ini)], cwd=str(tmp_path))
    assert r.returncode == 0 and "endpoint = sandbox" in r.stdout.splitlines(), r.stdout
    r = run(["check", "-c", str(ini)], cwd=str(tmp_path),
            env={"AWS_ACCESS_KEY_ID": "AKIAUPSTREAM0001", "AWS_SECRET_ACCESS_KEY": "s3cr3t-0123456789",
                 "AWS_REGION": "eu-west-1"})
    assert r.returncode == 0 and "endpoint = https://email.eu-west-1.amazonaws.com" in r.stdout.splitlines()


def ses_smtp_password(secret, region):
    """SES's SMTP password for a secret key (AWS's calculate_key, written out
    here independently of sesgate's C)."""
    sig = hmac.new(("AWS4" + secret).encode(), b"11111111", hashlib.sha256).digest()
    for msg in (region, "ses", "aws4_request", "SendRawEmail"):
        sig = hmac.new(sig, msg.encode(), hashlib.sha256).digest()
    return base64.b64encode(bytes([0x04]) + sig).decode()


def test_smtp_password_of_each_client(tmp_path):
    s1, s2 = harness.new_secret(), harness.new_secret()
    ini = tmp_path / "s.ini"
    ini.write_text("[upstream]\nendpoint = sandbox\nregion = eu-west-1\n[redis]\ndata_dir = %s\n"
                   "[client.app]\naccess_key_id = SGAPPAAAAAAAAAAAAAAA\nsecret_access_key = %s\n"
                   "[client.wp]\naccess_key_id = SGWPAAAAAAAAAAAAAAAA\nsecret_access_key = %s\n"
                   % (tmp_path / "var", s1, s2))
    r = run(["smtp-password", "-c", str(ini)])
    harness.assert_exit(r, 0)
    assert r.stderr == ""
    assert r.stdout == ("client = app\nregion = eu-west-1\nusername = SGAPPAAAAAAAAAAAAAAA\npassword = %s\n\n"
                        "client = wp\nregion = eu-west-1\nusername = SGWPAAAAAAAAAAAAAAAA\npassword = %s\n"
                        % (ses_smtp_password(s1, "eu-west-1"), ses_smtp_password(s2, "eu-west-1")))
    assert s1 not in r.stdout and s2 not in r.stdout
    # one client, -c after the name; the region as configured from the environment
    r = run(["smtp-password", "wp", "-c", str(ini)], env={"SESGATE_UPSTREAM_REGION": "us-west-2"})
    harness.assert_exit(r, 0)
    assert r.stdout == "client = wp\nregion = us-west-2\nusername = SGWPAAAAAAAAAAAAAAAA\npassword = %s\n" % (
        ses_smtp_password(s2, "us-west-2"))
    r = run(["smtp-password", "-c", str(ini), "nobody"])
    harness.assert_exit(r, 1)
    assert "no client 'nobody'" in r.stderr and r.stdout == ""


def test_smtp_password_of_the_default_client(tmp_path):
    ini = tmp_path / "s.ini"
    ini.write_text("[upstream]\nendpoint = sandbox\nregion = us-east-1\n[redis]\ndata_dir = %s\n"
                   % (tmp_path / "var"))
    r = run(["smtp-password", "-c", str(ini)])
    harness.assert_exit(r, 1)
    assert "credentials" in r.stderr and not (tmp_path / "var" / "credentials").exists()
    (tmp_path / "var").mkdir()
    secret = harness.new_secret()
    (tmp_path / "var" / "credentials").write_text(
        "[sesgate]\naws_access_key_id = SGDEFAULTAAAAAAAAAAA\naws_secret_access_key = %s\n" % secret)
    r = run(["smtp-password", "-c", str(ini)])
    harness.assert_exit(r, 0)
    assert r.stdout == "client = default\nregion = us-east-1\nusername = SGDEFAULTAAAAAAAAAAA\npassword = %s\n" % (
        ses_smtp_password(secret, "us-east-1"))


def test_unknown_command():
    r = run(["frobnicate"])
    harness.assert_exit(r, 2)
    assert "unknown command" in r.stderr
