"""The quoterd master: workers and their replacement, graceful and
immediate stops (also under load), start-up errors, the configuration
file, --test, the pidfile and --signal, and the log format."""

import os
import random
import re
import signal
import socket
import subprocess
import time
import uuid

import grpc
import pytest

from conftest import (H2, LOG_LINE, QUOTERD, SRC, Load, channel, child_env,
                      free_port, get_quote, make_corpus, run_quoterd,
                      wait_until, worker_calls)


# ------------------------------------------------------------------ workers

def test_workers_are_direct_children(quoterd, corpus, pb):
    d = quoterd(db=corpus.db, workers=3)
    d.wait_ready(pb)
    assert len(d.wait_workers(3)) == 3


def test_killed_worker_is_replaced(quoterd, corpus, pb):
    d = quoterd(db=corpus.db)
    d.wait_ready(pb)
    before = d.wait_workers(2)
    victim = before[0]
    os.kill(victim, signal.SIGKILL)
    after = d.wait_workers(2, exclude=[victim])
    assert len(set(after) - set(before)) == 1
    for _ in range(20):
        d.wait_ready(pb)
    names_victim = re.compile(rf"\[{d.pid}\] master: .*\b{victim}\b")
    wait_until(lambda: names_victim.search(d.log()), 5,
               lambda: f"a master log line naming worker {victim}:\n{d.log()}")
    assert d.proc.poll() is None


def test_workers_stop_when_the_master_is_killed(quoterd, corpus, pb):
    """A master killed outright can tell no one: its workers learn it
    from their channel, which the kernel closes with the master, and
    stop by themselves rather than serve on unsupervised."""
    d = quoterd(db=corpus.db)
    d.wait_ready(pb)
    workers = d.wait_workers(2)
    os.kill(d.pid, signal.SIGKILL)
    d.proc.wait(5)
    wait_until(lambda: d.leftovers() == [], 30,
               lambda: f"workers {d.leftovers()} outlived their master:\n"
               f"{d.log()}")
    for pid in workers:
        assert re.search(rf"\[{pid}\] worker \d+: the master is gone: "
                         "stopping", d.log()), d.log()


def test_worker_ignores_sighup(quoterd, corpus, pb):
    """SIGHUP is the master's (a terminal's hangup reaches the whole
    process group): a worker that gets it neither stops nor reloads."""
    d = quoterd(db=corpus.db)
    d.wait_ready(pb)
    workers = d.wait_workers(2)
    for pid in workers:
        os.kill(pid, signal.SIGHUP)
    for pid in workers:
        line = re.compile(rf"\[{pid}\] worker \d+: SIGHUP is the master's")
        wait_until(lambda: line.search(d.log()), 10,
                   lambda: f"worker {pid} taking SIGHUP:\n{d.log()}")
    for _ in range(10):
        d.wait_ready(pb)
    assert set(d.wait_workers(2)) == set(workers), d.log()
    assert not re.search(r"worker \d+: (reload|stopping|draining)", d.log()), \
        d.log()


# -------------------------------------------------------------------- stops

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_graceful_stop_idle(quoterd, corpus, pb, sig):
    d = quoterd(db=corpus.db)
    d.wait_ready(pb)
    d.wait_workers(2)
    assert d.stop(sig) == 0, d.log()
    assert d.leftovers() == []


def test_idle_connections_do_not_hold_a_stop(quoterd, corpus, pb):
    """Connections with no call in progress (an idle gRPC channel, a TCP
    peer that never speaks HTTP/2) are closed once the worker's own calls
    are done, not kept until shutdown_timeout: with it at 60 s, the stop
    must end well within the harness's 15 s wait, without the warning
    that calls were cancelled."""
    d = quoterd(db=corpus.db, workers=1, config="shutdown_timeout = 60\n")
    d.wait_ready(pb)
    pb2, pb2_grpc = pb
    host, port = d.addr.split(":")
    with channel(d.addr) as ch, \
            socket.create_connection((host, int(port)), timeout=5):
        pb2_grpc.QuoterStub(ch).GetQuote(pb2.QuoteRequest(), timeout=5)
        d.send(signal.SIGTERM)
        assert d.wait_exit() == 0, d.log()
    assert "still in flight" not in d.log(), d.log()


def test_sigquit_stops_at_once(quoterd, corpus, pb):
    """SIGQUIT waits for nothing: with a call held in flight (its client
    takes no reply) and shutdown_timeout = 60, which a graceful stop would
    wait out, master and workers are gone within the harness's wait."""
    d = quoterd(db=corpus.db, config="shutdown_timeout = 60\n")
    d.wait_ready(pb)
    d.wait_workers(2)
    h2 = H2(d.addr, initial_window=0)
    try:
        h2.call("/quotes.Quoter/GetQuote")
        h2.reply_headers()
        d.send(signal.SIGQUIT)
        d.wait_exit()
    finally:
        h2.close()
    wait_until(lambda: d.leftovers() == [], 5, "workers to be gone")


@pytest.mark.parametrize("threads", [1, 3])
def test_sigterm_under_load(quoterd, corpus, pb, threads):
    d = quoterd(db=corpus.db, threads=threads)
    d.wait_ready(pb)
    workers = d.wait_workers(2)
    # One channel a thread for the whole run, as long-lived clients have.
    load = Load(pb, d.addr, corpus.pairs, threads=4, per_channel=20000,
                calls=20000)
    try:
        load.wait_for(200, "200 calls under load", timeout=15)
        d.send(signal.SIGTERM)
        rc = d.wait_exit()
        # Let the clients see the closed server for a moment.
        seen = len(load.refused)
        deadline = time.monotonic() + 2
        while len(load.refused) == seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        load.finish()
    assert rc == 0, d.log()
    assert load.bad == [], f"{len(load.bad)} calls: {load.bad[:5]}\nstderr:\n{d.log()}"
    assert load.ok >= 200
    assert d.leftovers() == [], f"workers {workers} left: {d.leftovers()}"


def test_call_threads_share_one_worker(quoterd, corpus, pb):
    """Three call threads in one worker answer concurrent calls on many
    connections correctly (each thread reads through its own LMDB
    transaction), and every thread leaves at a stop."""
    d = quoterd(db=corpus.db, workers=1, threads=3, extra=["-v"])
    d.wait_ready(pb)
    assert "with 3 call threads" in d.log(), d.log()
    pb2, pb2_grpc = pb
    authors = sorted(corpus.authors)
    chans = [channel(d.addr) for _ in range(8)]
    try:
        stubs = [pb2_grpc.QuoterStub(ch) for ch in chans]
        asked = [authors[i % len(authors)] if i % 3 else ""
                 for i in range(4000)]
        futures = [stubs[i % len(stubs)].GetQuote.future(
            pb2.QuoteRequest(author=a), timeout=20)
            for i, a in enumerate(asked)]
        replies = [f.result() for f in futures]
    finally:
        for ch in chans:
            ch.close()
    for a, r in zip(asked, replies):
        assert (r.quote, r.author) in corpus.pairs, r
        assert a == "" or r.author == a, (a, r)
    assert d.stop() == 0, d.log()
    counts = worker_calls(d.log())
    assert list(counts) == [0] and counts[0] >= len(asked), d.log()


# ---------------------------------------------------------- start-up errors

def test_missing_database(quoterd, tmp_path):
    db = tmp_path / "no-such.mdb"
    log = quoterd(db=db).expect_exit()
    assert str(db) in log and "No such file or directory" in log, log


def test_corrupt_database(quoterd, tmp_path):
    db = tmp_path / "random.mdb"
    db.write_bytes(random.Random(7).randbytes(65536))
    log = quoterd(db=db).expect_exit()
    # The checker names what it found first: not an LMDB meta page.
    assert "not an LMDB" in log or "not a quoterd database" in log, log
    assert "signal" not in log, log


def test_empty_file_database(quoterd, tmp_path):
    db = tmp_path / "empty.mdb"
    db.write_bytes(b"")
    log = quoterd(db=db).expect_exit()
    assert str(db) in log, log


def test_unknown_config_key(quoterd, corpus):
    d = quoterd(db=corpus.db, config="# comment\nworkers = 2\nbogus_key = 1\n")
    log = d.expect_exit()
    assert "unknown key" in log and "bogus_key" in log, log


def test_address_in_use(quoterd, corpus):
    with socket.socket() as s:  # no SO_REUSEPORT
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        d = quoterd(args=["--listen", f"127.0.0.1:{port}", "--workers", "2",
                          "--db", str(corpus.db)])
        log = d.expect_exit()
    assert "Address already in use" in log or "cannot listen" in log, log


@pytest.mark.parametrize("flags", [
    ["--bogus"], ["--workers", "0"], ["--workers", "abc"], ["--workers", "-3"],
    ["--workers"], ["--listen"], ["--threads", "0"], ["--threads", "65"],
    ["--threads"],
], ids=" ".join)
def test_bad_flags_exit_2(quoterd, corpus, flags):
    d = quoterd(args=["--listen", f"127.0.0.1:{free_port()}", "--db",
                      str(corpus.db)] + flags)
    log = d.expect_exit(rc=2)
    assert log.strip(), "no usage or error message"


def test_help_and_version(binaries):
    for flag in ("--help", "--version"):
        r = run_quoterd([flag])
        assert r.returncode == 0, (flag, r.stderr)
        assert (r.stdout + r.stderr).strip(), flag


# ------------------------------------------------------------ configuration

def full_config(addr, db, workers):
    return (f"# quoterd test configuration\n\n"
            f"listen = {addr}\n"
            f"workers = {workers}\n"
            f"database = {db}\n"
            f"log_level = info\n"
            f"shutdown_timeout = 5\n"
            f"max_request_size = 4096\n")


def test_config_file_is_used(quoterd, corpus, pb):
    port = free_port()
    d = quoterd(args=[], config=full_config(f"127.0.0.1:{port}", corpus.db, 3))
    d.addr = f"127.0.0.1:{port}"
    assert d.wait_ready(pb) in corpus.pairs
    d.wait_workers(3)


def test_flags_override_config(quoterd, corpus, tmp_path, pb):
    other = make_corpus(tmp_path / "other", {"Only Author": 2})
    port = free_port()
    d = quoterd(args=["--workers", "2", "--db", str(other.db)],
                config=full_config(f"127.0.0.1:{port}", corpus.db, 3))
    d.addr = f"127.0.0.1:{port}"
    d.wait_ready(pb)
    d.wait_workers(2)
    assert get_quote(pb, d.addr)[1] == "Only Author"


def test_max_request_size_from_config(quoterd, corpus, pb):
    d = quoterd(db=corpus.db, config="max_request_size = 100\n")
    d.wait_ready(pb)
    assert get_quote(pb, d.addr, author="a" * 50) in corpus.pairs
    with pytest.raises(grpc.RpcError) as e:
        get_quote(pb, d.addr, author="a" * 200)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_workers_auto(quoterd, corpus, pb):
    d = quoterd(args=["--listen", f"127.0.0.1:{free_port()}", "--workers",
                      "auto", "--db", str(corpus.db)])
    d.addr = d.cmd[d.cmd.index("--listen") + 1]
    d.wait_ready(pb)
    # One per online CPU, as config_workers() counts them.
    d.wait_workers(min(os.sysconf("SC_NPROCESSORS_ONLN"), 1024))


def test_log_lines_format(quoterd, corpus, pb):
    d = quoterd(db=corpus.db)
    d.wait_ready(pb)
    d.wait_workers(2)
    assert d.stop() == 0
    lines = [l for l in d.log().splitlines() if l.strip()]
    assert lines, "nothing logged"
    bad = [l for l in lines if not LOG_LINE.match(l)]
    assert bad == [], bad
    assert any(f"[{d.pid}] master: " in l for l in lines), lines


def test_bundled_quotes_import(quoterd, tmp_path, pb):
    db = tmp_path / "bundled.mdb"
    r = subprocess.run([str(QUOTERD.parent / "quotes-import"), "-q", "-o",
                        str(db), str(SRC / "etc" / "quotes.txt")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    authors = set()
    for line in (SRC / "etc" / "quotes.txt").read_text(encoding="utf-8").splitlines():
        if "~" in line.strip():
            authors.add(line.rsplit("~", 1)[1].strip())
    d = quoterd(db=db)
    d.wait_ready(pb)
    name = sorted(authors)[0]
    assert get_quote(pb, d.addr, author=name)[1] == name


# ------------------------------------------------------- --test and pidfile

def test_check_config_ok(corpus, tmp_path, binaries):
    conf = tmp_path / "ok.conf"
    conf.write_text(full_config(f"127.0.0.1:{free_port()}", corpus.db, 2))
    r = run_quoterd(["-c", str(conf), "--test"])
    assert r.returncode == 0, r.stderr
    assert "configuration ok" in r.stdout + r.stderr


def test_check_config_missing_db(tmp_path, binaries):
    db = tmp_path / "missing.mdb"
    r = run_quoterd(["--db", str(db), "--test"])
    assert r.returncode == 1, r.stdout + r.stderr
    assert str(db) in r.stderr
    assert "configuration ok" not in r.stdout + r.stderr


def test_check_config_unknown_key(tmp_path, corpus, binaries):
    conf = tmp_path / "bad.conf"
    conf.write_text(f"database = {corpus.db}\nlisten_port = 5\n")
    r = run_quoterd(["-c", str(conf), "--test"])
    assert r.returncode == 1
    assert "unknown key" in r.stderr and "listen_port" in r.stderr


def test_pidfile_lock_and_signal_stop(quoterd, corpus, tmp_path, pb):
    pidfile = tmp_path / "quoterd.pid"
    d = quoterd(db=corpus.db, extra=["--pidfile", str(pidfile)])
    d.wait_ready(pb)
    d.wait_workers(2)
    assert int(pidfile.read_text().strip()) == d.pid

    second = quoterd(db=corpus.db, extra=["--pidfile", str(pidfile)])
    log = second.expect_exit()
    assert str(pidfile) in log or "already running" in log, log
    assert int(pidfile.read_text().strip()) == d.pid
    d.wait_ready(pb)

    r = run_quoterd(["--pidfile", str(pidfile), "--signal", "stop"])
    assert r.returncode == 0, r.stderr
    assert d.wait_exit() == 0, d.log()
    assert not pidfile.exists()
    assert d.leftovers() == []


def test_signal_without_running_master(tmp_path, binaries):
    r = run_quoterd(["--pidfile", str(tmp_path / "none.pid"), "--signal", "stop"])
    assert r.returncode != 0
    assert r.stderr.strip()


# ------------------------------------------------------------------ daemon

def test_daemon_detaches_once_serving(corpus, tmp_path):
    """--daemon returns only once the daemon serves (0) or has failed (1),
    so a script can rely on its exit status."""
    from conftest import kill_tagged, run_quote, sanitizer_reports
    pidfile, log = tmp_path / "quoterd.pid", tmp_path / "stderr.log"
    port = free_port()
    # Whatever the daemon forks inherits this, so that all of it can be
    # found and killed however the test ends.
    tag = f"QUOTERD_TEST_TAG={uuid.uuid4().hex}"
    env = child_env(**dict([tag.split("=", 1)]))
    pid = None
    try:
        with open(log, "w") as err:
            launcher = subprocess.Popen(
                [str(QUOTERD), "--db", str(corpus.db), "--listen",
                 f"127.0.0.1:{port}", "--workers", "2", "--daemon",
                 "--pidfile", str(pidfile)],
                stderr=err, stdin=subprocess.DEVNULL, env=env)
            rc = launcher.wait(30)
        pid = int(pidfile.read_text()) if pidfile.exists() else None
        assert rc == 0, log.read_text()
        # The master is another process than the one started, which has
        # exited: it detached.
        assert pid is not None and pid != launcher.pid
        assert os.path.exists(f"/proc/{pid}")
        # Serving already: no waiting needed after --daemon returned.
        assert run_quote(["-s", f"127.0.0.1:{port}", "-n", "2"]).returncode == 0
        assert run_quoterd(["--pidfile", str(pidfile), "--signal",
                            "stop"]).returncode == 0
        wait_until(lambda: not os.path.exists(f"/proc/{pid}"), 15,
                   "the daemon to exit")
        assert not pidfile.exists()

        # A daemon that cannot start says so with its parent's exit
        # status.
        r = subprocess.run([str(QUOTERD), "--db", str(tmp_path / "missing.mdb"),
                            "--listen", f"127.0.0.1:{port}", "--daemon"],
                           capture_output=True, text=True, timeout=30,
                           env=env, stdin=subprocess.DEVNULL)
        assert r.returncode == 1 and "missing.mdb" in r.stderr
    finally:
        kill_tagged(tag)
    assert not sanitizer_reports(log.read_text()), log.read_text()
