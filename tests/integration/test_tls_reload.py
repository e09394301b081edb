"""SIGHUP reloads the TLS certificate: a checker child reads and checks
the files (the master never parses them), and every worker's next
handshake uses them; connections already open keep going. Files that are
too large, hold a NUL byte or are no regular file, and checkers that hang
or die, are refused with the old pair kept. Two CAs, each with a server
certificate for localhost and 127.0.0.1; clients trust only one."""

import os
import shutil
import signal
import subprocess
from types import SimpleNamespace

import grpc
import pytest

from conftest import (CHANNEL_OPTIONS, reload_command, run_quoterd,
                      wait_until)
from test_hostile_db import CHECKER_FAULTS, Injected

# One byte more than the checker reads of a TLS file (TLS_FILE_MAX).
TOO_LARGE = 1024 * 1024 + 1


@pytest.fixture(scope="module")
def cas(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls-reload")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
          "-nodes"]

    def openssl(*args):
        r = subprocess.run(["openssl", *args], cwd=d, capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"openssl {args}: {r.stderr}"

    (d / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth\n")
    out = {}
    for name in ("a", "b"):
        openssl("req", "-x509", *ec, "-keyout", f"{name}-ca.key", "-out",
                f"{name}-ca.pem", "-days", "2", "-subj", f"/CN=CA {name}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", "/CN=localhost")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{name}-ca.pem",
                "-CAkey", f"{name}-ca.key", "-CAcreateserial", "-days", "2",
                "-extfile", "server.ext", "-out", f"{name}.pem")
        out[name] = SimpleNamespace(ca=d / f"{name}-ca.pem",
                                    cert=d / f"{name}.pem",
                                    key=d / f"{name}.key")
    return SimpleNamespace(**out)


def tls_quote(pb, addr, ca, timeout=5.0):
    """One GetQuote on a new connection, trusting only ca."""
    pb2, pb2_grpc = pb
    creds = grpc.ssl_channel_credentials(ca.read_bytes())
    with grpc.secure_channel(addr, creds, options=CHANNEL_OPTIONS) as ch:
        return pb2_grpc.QuoterStub(ch).GetQuote(pb2.QuoteRequest(),
                                                timeout=timeout)


def refused(pb, addr, ca):
    try:
        tls_quote(pb, addr, ca, timeout=2.0)
    except grpc.RpcError as e:
        return e.code() == grpc.StatusCode.UNAVAILABLE
    return False


def install(pair, live):
    shutil.copyfile(pair.cert, live.cert)
    shutil.copyfile(pair.key, live.key)


@pytest.fixture
def live(tmp_path, cas):
    live = SimpleNamespace(cert=tmp_path / "server.pem",
                           key=tmp_path / "server.key")
    install(cas.a, live)
    return live


def start(quoterd, corpus, pb, live, ca, extra=(), config=None):
    d = quoterd(db=corpus.db, extra=["--tls-cert", str(live.cert),
                                     "--tls-key", str(live.key), *extra],
                config=config)
    d.wait_serving(lambda: tls_quote(pb, d.addr, ca))
    return d


def test_reload_new_certificate(quoterd, corpus, pb, cas, live):
    d = start(quoterd, corpus, pb, live, cas.a.ca)
    install(cas.b, live)
    d.send(signal.SIGHUP)
    wait_until(lambda: "TLS certificate reloaded" in d.log(), 10,
               lambda: f"no reload logged:\n{d.log()}")
    # Every new connection, whichever worker takes it, shows the new
    # certificate: a client trusting only the new CA gets through, one
    # trusting only the old does not.
    for _ in range(8):
        tls_quote(pb, d.addr, cas.b.ca)
        assert refused(pb, d.addr, cas.a.ca)
    # So does a worker started after the reload.
    d.send(signal.SIGTTIN)
    d.wait_workers(3)
    for _ in range(8):
        tls_quote(pb, d.addr, cas.b.ca)
    d.stop_cleanly()


@pytest.mark.parametrize("bad", ["mismatch", "empty key", "not PEM"])
def test_bad_pair_refused(quoterd, corpus, pb, cas, live, bad):
    d = start(quoterd, corpus, pb, live, cas.a.ca)
    if bad == "mismatch":
        shutil.copyfile(cas.b.cert, live.cert)  # key still a's
    elif bad == "empty key":
        live.key.write_text("")
    else:
        live.cert.write_text("not a certificate\n")
    d.send(signal.SIGHUP)
    wait_until(lambda: "new TLS certificate refused" in d.log(), 10,
               lambda: f"no refusal logged:\n{d.log()}")
    for _ in range(4):
        tls_quote(pb, d.addr, cas.a.ca)
        assert refused(pb, d.addr, cas.b.ca)
    # A later good pair is still taken.
    install(cas.b, live)
    d.send(signal.SIGHUP)
    wait_until(lambda: "TLS certificate reloaded" in d.log(), 10,
               lambda: f"no reload logged:\n{d.log()}")
    tls_quote(pb, d.addr, cas.b.ca)
    d.stop_cleanly()


def test_check_refuses_mismatched_pair(corpus, cas):
    r = run_quoterd(["--db", str(corpus.db), "--tls-cert", str(cas.a.cert),
                     "--tls-key", str(cas.b.key), "--test"])
    assert r.returncode == 1
    assert "does not match" in r.stderr
    r = run_quoterd(["--db", str(corpus.db), "--tls-cert", str(cas.a.cert),
                     "--tls-key", str(cas.a.key), "--test"])
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("bad", ["too large", "NUL byte"])
def test_crafted_file_refused(quoterd, corpus, pb, cas, live, tmp_path, bad):
    """b's own pair, but its certificate file made one OpenSSL would still
    read the first certificate of: longer than the checker reads, or with
    a NUL byte after it (where reading it as a C string stops unseen).
    Refused, with the reason, and a's pair keeps serving."""
    pidfile = tmp_path / "quoterd.pid"
    d = start(quoterd, corpus, pb, live, cas.a.ca,
              extra=["--pidfile", str(pidfile)])
    pem = cas.b.cert.read_bytes()
    if bad == "too large":
        line = b"x" * 63 + b"\n"
        pem += line * (TOO_LARGE // len(line) + 1)
        why = "larger than"
    else:
        pem += b"\0" + cas.a.cert.read_bytes()
        why = f"a NUL byte at offset {len(cas.b.cert.read_bytes())}"
    live.cert.write_bytes(pem)
    shutil.copyfile(cas.b.key, live.key)
    r = reload_command(pidfile)
    assert r.returncode == 1, r.stdout + r.stderr
    assert why in r.stderr and "new TLS certificate refused" in r.stderr, \
        r.stderr
    assert "new TLS certificate refused" in d.log()
    for _ in range(4):
        tls_quote(pb, d.addr, cas.a.ca)
        assert refused(pb, d.addr, cas.b.ca)
    # The same pair without the extra bytes is taken, and the command
    # returns once every worker has it.
    install(cas.b, live)
    r = reload_command(pidfile)
    assert r.returncode == 0, r.stderr
    assert "TLS certificate reloaded" in r.stdout
    assert "TLS certificate reloaded" in d.log()
    tls_quote(pb, d.addr, cas.b.ca)
    d.stop_cleanly()


def test_not_a_regular_file_refused(quoterd, corpus, pb, cas, live):
    """A FIFO at the certificate's path (which would hold a reader until
    a writer came) is refused unread, the old pair kept."""
    d = start(quoterd, corpus, pb, live, cas.a.ca)
    os.unlink(live.cert)
    os.mkfifo(live.cert)
    d.send(signal.SIGHUP)
    wait_until(lambda: "new TLS certificate refused" in d.log(), 10,
               lambda: f"no refusal logged:\n{d.log()}")
    assert f"tls_cert: {live.cert}: not a regular file" in d.log(), d.log()
    tls_quote(pb, d.addr, cas.a.ca)
    d.stop_cleanly()


@CHECKER_FAULTS
def test_checker_that_hangs_or_dies_refuses(quoterd, corpus, pb, cas, live,
                                            how, why, timeout):
    """A TLS checker stopped (and killed at check_timeout) or killed by a
    signal is a refusal: the old pair serves, and the next good pair is
    taken. strace stops or kills each checker at its first system call,
    as in test_hostile_db."""
    d = start(quoterd, corpus, pb, live, cas.a.ca,
              config=f"check_timeout = {timeout}\n" if timeout else None)
    install(cas.b, live)
    strace = Injected(d.pid, how)
    try:
        d.send(signal.SIGHUP)
        wait_until(lambda: "new TLS certificate refused" in d.log(), 15,
                   lambda: f"no refusal logged:\n{d.log()}")
    finally:
        strace.detach()
    line = next(x for x in d.log().splitlines()
                if "new TLS certificate refused" in x)
    assert f"keeping the old one: {why}" in line, line
    for _ in range(4):
        tls_quote(pb, d.addr, cas.a.ca)
        assert refused(pb, d.addr, cas.b.ca)
    d.send(signal.SIGHUP)
    wait_until(lambda: "TLS certificate reloaded" in d.log(), 10,
               lambda: f"no reload logged:\n{d.log()}")
    tls_quote(pb, d.addr, cas.b.ca)
    d.stop_cleanly()


def test_open_connection_survives_reload(quoterd, corpus, pb, cas, live):
    """A connection made with the old certificate keeps serving calls
    after the reload: a new one to it would fail, trusting only the old
    CA."""
    pb2, pb2_grpc = pb
    d = start(quoterd, corpus, pb, live, cas.a.ca)
    creds = grpc.ssl_channel_credentials(cas.a.ca.read_bytes())
    with grpc.secure_channel(d.addr, creds, options=CHANNEL_OPTIONS) as ch:
        stub = pb2_grpc.QuoterStub(ch)
        stub.GetQuote(pb2.QuoteRequest(), timeout=5)
        install(cas.b, live)
        d.send(signal.SIGHUP)
        wait_until(lambda: "TLS certificate reloaded" in d.log(), 10,
                   lambda: f"no reload logged:\n{d.log()}")
        assert refused(pb, d.addr, cas.a.ca)
        for _ in range(4):
            stub.GetQuote(pb2.QuoteRequest(), timeout=5)
    d.stop_cleanly()


def test_check_refuses_crafted_file(corpus, cas, tmp_path):
    """The start and --test use the same checker: a NUL byte refuses."""
    cert = tmp_path / "nul.pem"
    cert.write_bytes(cas.a.cert.read_bytes() + b"\0junk\n")
    r = run_quoterd(["--db", str(corpus.db), "--tls-cert", str(cert),
                     "--tls-key", str(cas.a.key), "--test"])
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"tls_cert: {cert}: a NUL byte at offset" in r.stderr, r.stderr


def test_daemon_reloads_relative_paths(corpus, pb, cas, tmp_path):
    """--daemon moves to /, so TLS paths given relative to where it was
    started must be made absolute first, or every later reload would
    look for them under /."""
    import uuid
    from conftest import QUOTERD, child_env, free_port, kill_tagged
    live = SimpleNamespace(cert=tmp_path / "server.pem",
                           key=tmp_path / "server.key")
    install(cas.a, live)
    pidfile, log = tmp_path / "quoterd.pid", tmp_path / "quoterd.log"
    addr = f"127.0.0.1:{free_port()}"
    tag = f"QUOTERD_TEST_TAG={uuid.uuid4().hex}"
    env = child_env(**dict([tag.split("=", 1)]))
    try:
        r = subprocess.run(
            [str(QUOTERD), "--db", str(corpus.db), "--listen", addr,
             "--workers", "2", "--daemon", "--pidfile", str(pidfile),
             "--log", str(log), "--tls-cert", "server.pem",
             "--tls-key", "server.key"],
            cwd=tmp_path, env=env, capture_output=True, text=True,
            timeout=60, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        tls_quote(pb, addr, cas.a.ca)
        install(cas.b, live)
        r = reload_command(pidfile)
        assert r.returncode == 0, f"{r.stderr}\n{log.read_text()}"
        tls_quote(pb, addr, cas.b.ca)
        assert run_quoterd(["--pidfile", str(pidfile), "--signal",
                            "stop"]).returncode == 0
    finally:
        kill_tagged(tag)
