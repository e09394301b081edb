"""Hostile peers and sick processes (issue #11): what a client can send or
hold, and what can go wrong with a worker, must neither mislead quoterd nor
take it down for good. Each test drives one such case against the real
daemon on loopback and checks that the service recovers or refuses.

Loads here are bounded (counts, not durations) and every process a test
starts is killed by the quoterd fixture."""

import os
import select
import signal
import socket
import subprocess
import threading
import time
import uuid

import grpc
import pytest

from conftest import (H2, QUOTERD, Load, channel, child_env, comm, free_port,
                      get_quote, kill_tagged, pids_with_env, process_alive,
                      raw_call, unix_daemon, wait_until)
from test_hostile_db import Injected

GET = "/quotes.Quoter/GetQuote"
LIST = "/quotes.Quoter/ListAuthors"
CHECK = "/grpc.health.v1.Health/Check"
REFLECT = {"v1alpha": "/grpc.reflection.v1alpha.ServerReflection/"
                      "ServerReflectionInfo",
           "v1": "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"}


def field(number, data):
    """A length-delimited protobuf field (number < 16, len < 128)."""
    assert number < 16 and len(data) < 128
    return bytes([number << 3 | 2, len(data)]) + data


def status_of(addr, method, body):
    try:
        raw_call(addr, method, body)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def reflect_raw(addr, body, version="v1alpha"):
    """One raw request on a reflection stream: (status, replies)."""
    with channel(addr) as ch:
        call = ch.stream_stream(REFLECT[version])(iter([body]), timeout=5)
        try:
            replies = list(call)
        except grpc.RpcError as e:
            return e.code(), []
    return grpc.StatusCode.OK, replies


# ------------------------------------------------------ strings by length

@pytest.mark.parametrize("tail", [b"\x00", b"\x00\xff", b"\x00tail"])
def test_nul_in_request_strings_is_refused(served, tail):
    twain = b"Mark Twain"
    # Without the NUL, the name is a plain known author.
    assert status_of(served.addr, GET, field(1, twain)) == grpc.StatusCode.OK
    bad = twain + tail
    inv = grpc.StatusCode.INVALID_ARGUMENT
    assert status_of(served.addr, GET, field(1, twain + b"\xff")) == inv
    assert status_of(served.addr, GET, field(1, bad)) == inv
    assert status_of(served.addr, LIST, field(2, bad)) == inv
    assert status_of(served.addr, CHECK, field(1, b"quotes.Quoter" + tail)) \
        == inv
    for version in REFLECT:
        # file_containing_symbol (4) and host (1)
        for body in (field(4, b"quotes.Quoter" + tail),
                     field(1, b"h" + tail) + field(7, b"")):
            code, _ = reflect_raw(served.addr, body, version)
            assert code == inv, (version, body)


# --------------------------------------------------------------- the log

FORGED = "2030-01-01T00:00:00.000Z error [1] master: forged by a client"


def h2_headers(extra, path=GET):
    """An HPACK block for a call to path with extra (name, value) pairs,
    each a literal without indexing (values may hold any byte)."""
    def literal(name, value):
        assert len(name) < 127 and len(value) < 127
        return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value
    pairs = [(b":method", b"POST"), (b":scheme", b"http"),
             (b":path", path.encode()), (b":authority", b"test"),
             (b"content-type", b"application/grpc"), (b"te", b"trailers")]
    return b"".join(literal(k, v) for k, v in pairs + list(extra))


def send_bad_headers(addr, calls):
    """calls GetQuote calls on one connection, each with a grpc-timeout
    gRPC cannot parse, holding a newline and a line of our choosing."""
    h = H2(addr)
    block = h2_headers([(b"grpc-timeout", ("1x\n" + FORGED).encode())])
    for i in range(calls):
        sid = 2 * i + 1
        h.sock.sendall(h.frame(1, 4, sid, block)
                       + h.frame(0, 1, sid, b"\x00\x00\x00\x00\x00"))
    # The server takes frames in order: once it has answered this PING it
    # has read every call above. Closing sooner, with its replies unread,
    # resets the connection, and the server may never see the later calls
    # (then too few lines were logged to need suppressing).
    h.sock.sendall(h.frame(6, 0, 0, b"allread!"))
    deadline = time.monotonic() + 60
    while (f := h.next_frame(deadline)) is not None:
        if f[0] == 6 and f[1] & 1 and f[2] == b"allread!":
            break
    h.close()


def test_clients_cannot_forge_or_flood_log_lines(served, pb):
    send_bad_headers(served.addr, 300)
    get_quote(pb, served.addr)  # still serving
    # Something was logged about them, escaped and limited.
    wait_until(lambda: "1x\\n2030" in served.log(), 10, "the escaped value")
    log = served.log()
    assert not any(line.startswith(FORGED[:20]) for line in log.splitlines())
    assert log.count("1x\\n2030") < 100, log[-3000:]
    served.stop_cleanly()
    assert "suppressed" in served.log()


# ------------------------------------------------------- a second quoterd

@pytest.mark.parametrize("unix", [False, True])
def test_second_instance_on_the_same_address_is_refused(
        quoterd, corpus, pb, tmp_path, unix):
    first = quoterd(db=corpus.db, workers=1) if not unix else None
    if unix:
        first = unix_daemon(quoterd, corpus.db, tmp_path / "q.sock",
                            workers=1)
    first.wait_ready(pb)
    # Another pidfile, or none: the address alone must refuse it.
    second = quoterd(args=["--listen", first.addr, "--workers", "1",
                           "--db", str(corpus.db),
                           "--pidfile", str(tmp_path / "second.pid")])
    log = second.expect_exit(1)
    assert f"cannot listen on {first.addr}" in log, log
    assert "in use" in log, log
    # The first one still has the address, and all of it.
    for _ in range(20):
        get_quote(pb, first.addr)
    first.stop_cleanly()


# ------------------------------------------------------------ hung workers

def fresh_calls_succeed(pb, addr, n, timeout=2.0):
    """True if n GetQuotes, each on a new connection, all succeed."""
    try:
        for _ in range(n):
            get_quote(pb, addr, timeout=timeout)
    except grpc.RpcError:
        return False
    return True


def test_stopped_worker_is_killed_and_replaced(quoterd, corpus, pb):
    d = quoterd(db=corpus.db, extra=["--worker-timeout", "2"])
    d.wait_ready(pb)
    victim = d.wait_workers(2)[0]
    load = Load(pb, d.addr, corpus.pairs, threads=2, per_channel=5)
    try:
        load.wait_for(50, "calls before the stop")
        os.kill(victim, signal.SIGSTOP)
        wait_until(lambda: not process_alive(victim), 20,
                   lambda: f"worker {victim} killed; log:\n{d.log()}")
        d.wait_workers(2, timeout=20, exclude=[victim])
        assert "has not answered for" in d.log()
        wait_until(lambda: fresh_calls_succeed(pb, d.addr, 20), 20,
                   "new calls served by the replacement")
        load.wait_for(50, "calls after the replacement")
    finally:
        load.finish()
    d.stop_cleanly()


def test_unix_listener_passes_over_a_stopped_worker(quoterd, corpus, pb,
                                                    tmp_path):
    # Never killed: only the hand-off is being tested.
    d = unix_daemon(quoterd, corpus.db, tmp_path / "q.sock",
                    extra=["--worker-timeout", "0"])
    d.wait_ready(pb)
    victim = d.wait_workers(2)[1]
    os.kill(victim, signal.SIGSTOP)
    try:
        wait_until(lambda: fresh_calls_succeed(pb, d.addr, 20), 30,
                   "20 calls in a row served with a worker stopped")
        assert process_alive(victim)
    finally:
        os.kill(victim, signal.SIGCONT)
    d.stop_cleanly()


# ------------------------------------------------------------- descriptors

def flood_connections(addr, n):
    """n TCP connections that say nothing, held open by the caller."""
    host, port = addr.rsplit(":", 1)
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.settimeout(5)
        try:
            s.connect((host, int(port)))
        except OSError:
            s.close()
            break
        socks.append(s)
    return socks


def test_out_of_descriptors_recovers(quoterd, corpus, pb):
    # 64 descriptors a process, hard: the master cannot raise it, and a
    # worker runs out after a few dozen connections.
    d = quoterd(db=corpus.db, workers=1, threads=1,
                wrapper=["prlimit", "--nofile=64:64", "--"])
    d.wait_ready(pb)
    first = d.wait_workers(1)
    socks = flood_connections(d.addr, 120)
    try:
        wait_until(lambda: "Failed accept4" in d.log(), 20,
                   lambda: f"accept to fail; log:\n{d.log()}")
    finally:
        for s in socks:
            s.close()
    # Once they are closed, new connections are served again.
    wait_until(lambda: fresh_calls_succeed(pb, d.addr, 10), 30,
               lambda: f"calls served again; log:\n{d.log()}")
    assert "accepts no more connections; asking to be replaced" in d.log()
    assert "asks to be replaced: replacing it" in d.log()
    assert d.wait_workers(1) != first
    d.stop_cleanly()


def test_sick_workers_replacement_is_judged_by_its_own_heartbeat(
        quoterd, corpus, pb):
    # A worker out of descriptors is replaced beside itself and drains for
    # drain_time (300 s: longer than anything below may take, so the sick
    # one is still there); its replacement, stopped, must be killed after
    # worker_timeout, while the sick one still drains. Before, the sick
    # one went on beating in the scoreboard slot its replacement was
    # given, and the replacement lived until the sick one had left.
    d = quoterd(db=corpus.db, workers=1, threads=1, extra=["-v"],
                config="worker_timeout = 2\ndrain_time = 300\n",
                wrapper=["prlimit", "--nofile=64:64", "--"])
    d.wait_ready(pb)
    sick = d.wait_workers(1)[0]
    socks = flood_connections(d.addr, 120)
    try:
        wait_until(lambda: "retires in slot" in d.log(), 20,
                   lambda: f"the sick worker replaced; log:\n{d.log()}")
    finally:
        for s in socks:
            s.close()
    # The replacement serves, and so is judged by its heartbeat.
    wait_until(lambda: d.log().count("master: worker 0 ready") >= 2, 20,
               lambda: f"the replacement ready; log:\n{d.log()}")
    new = [p for p in d.wait_workers(2) if p != sick][0]
    os.kill(new, signal.SIGSTOP)
    try:
        wait_until(lambda: not process_alive(new), 30,
                   lambda: f"worker {new} killed; log:\n{d.log()}")
        assert process_alive(sick), d.log()
        assert f"(pid {new}) has not answered for" in d.log()
        # A retiring worker is judged by its heartbeat too (it used not
        # to be judged at all): stopped while it drains, it is killed for
        # its silence, not at the deadline of a whole stop.
        os.kill(sick, signal.SIGSTOP)
        wait_until(lambda: not process_alive(sick), 60,
                   lambda: f"worker {sick} killed; log:\n{d.log()}")
        assert f"(pid {sick}) has not answered for" in d.log()
    finally:
        for pid in (new, sick):
            if process_alive(pid):
                os.kill(pid, signal.SIGCONT)
    # Not SIGTERM: the replacement's replacement would drain for 300 s.
    assert d.stop(signal.SIGQUIT) == 0, d.log()[-3000:]
    assert d.leftovers() == []


def test_replaced_worker_stops_listening_while_it_drains(quoterd, corpus,
                                                         pb):
    # A worker out of descriptors no longer accepts, but its listener
    # stayed in the SO_REUSEPORT group while it drained: the kernel went
    # on queueing about half the new connections there, and their calls
    # waited for the end of drain_time. Once its replacement serves, it
    # now leaves the group, and every new connection is served.
    d = quoterd(db=corpus.db, workers=1, threads=1,
                config="drain_time = 300\n",
                wrapper=["prlimit", "--nofile=64:64", "--"])
    d.wait_ready(pb)
    sick = d.wait_workers(1)[0]
    socks = flood_connections(d.addr, 120)
    try:
        wait_until(lambda: "replaced: no longer listening" in d.log(), 20,
                   lambda: f"the sick worker replaced; log:\n{d.log()}")
    finally:
        for s in socks:
            s.close()
    assert fresh_calls_succeed(pb, d.addr, 20, timeout=30), d.log()[-3000:]
    assert process_alive(sick)  # still draining: drain_time is 300 s
    assert "Failed accept4: Invalid argument" not in d.log()
    # Not SIGTERM: the replacement would drain for 300 s.
    assert d.stop(signal.SIGQUIT) == 0, d.log()[-3000:]


def soft_nofile(pid):
    limits = open(f"/proc/{pid}/limits").read()
    return int([ln for ln in limits.splitlines()
                if ln.startswith("Max open files")][0].split()[3])


def test_full_worker_is_replaced_before_accept_fails(quoterd, corpus, pb):
    # max_connections is when a worker is full, not its descriptor limit:
    # counted once a second, it asks to be replaced, and the new worker
    # serves while the connections are still held. A burst comes faster
    # than the count, so the worker keeps the master's limit (1024 here):
    # lowered to max_connections + 64, as it used to be, the 100 or so
    # connections each worker takes below ran it out first, and gRPC
    # never accepted on that listener again.
    d = quoterd(db=corpus.db, workers=2, threads=1,
                config="max_connections = 20\n",
                wrapper=["prlimit", "--nofile=1024:1024", "--"])
    d.wait_ready(pb)
    first = d.wait_workers(2)
    assert [soft_nofile(p) for p in first] == [1024, 1024]
    socks = flood_connections(d.addr, 200)
    try:
        assert len(socks) == 200
        wait_until(lambda: "asks to be replaced: replacing it" in d.log(),
                   20, lambda: f"a replacement; log:\n{d.log()}")
        assert "max_connections is 20; asking to be replaced" in d.log()
        wait_until(lambda: fresh_calls_succeed(pb, d.addr, 10), 30,
                   lambda: f"calls served; log:\n{d.log()}")
    finally:
        for s in socks:
            s.close()
    assert set(d.wait_workers(2)) != set(first)
    assert "Failed accept4" not in d.log()
    d.stop_cleanly()


def test_stop_lets_a_replaced_worker_drain(quoterd, corpus, pb):
    # A full worker whose replacement never serves (stopped by strace as
    # it starts) waits for it for 10 s at most. A graceful stop in that
    # window must give the worker the stop's drain_time, not that wait:
    # it used to be killed 10 s in, its calls cut short.
    d = quoterd(db=corpus.db, workers=1, threads=1,
                config=("max_connections = 5\ndrain_time = 14\n"
                        "shutdown_timeout = 1\nworker_timeout = 0\n"))
    d.wait_ready(pb)
    old = d.wait_workers(1)[0]
    # Only processes forked from now on: the replacement, stopped at the
    # first epoll_create1 of its gRPC poller.
    strace = Injected(d.pid, "signal=SIGSTOP", syscall="epoll_create1")
    socks = []
    try:
        socks = flood_connections(d.addr, 20)
        wait_until(lambda: "asks to be replaced: replacing it" in d.log(),
                   20, lambda: f"a replacement; log:\n{d.log()}")
        d.send(signal.SIGTERM)
        # 1: the stopped replacement is killed at the stop's deadline.
        d.wait_exit(timeout=60)
    finally:
        for s in socks:
            s.close()
        strace.detach()
    log = d.log()
    assert "is still retiring" not in log, log
    assert any(f"[{old}] " in line and "stopped after" in line
               for line in log.splitlines()), log


def unix_connections(path, n):
    """n connections to the Unix socket at path, held by the caller."""
    socks = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(str(path))
        socks.append(s)
    return socks


def served_and_refused(socks):
    """Waits until each socket has heard from the server: gRPC's first
    SETTINGS frame (served) or the end of the connection (refused)."""
    told = {}

    def all_told():
        ready, _, _ = select.select(
            [s for s in socks if s not in told], [], [], 0)
        for s in ready:
            try:
                told[s] = s.recv(64) != b""
            except ConnectionResetError:
                told[s] = False
        return len(told) == len(socks)
    wait_until(all_told, 30, lambda: f"{len(socks) - len(told)} sockets "
               "to hear from the server")
    served = sum(told.values())
    return served, len(socks) - served


def test_unix_listener_refuses_past_max_connections(quoterd, corpus, pb,
                                                    tmp_path):
    path = tmp_path / "q.sock"
    d = unix_daemon(quoterd, corpus.db, path, threads=1,
                    config="max_connections = 5\n")
    d.wait_ready(pb)
    wait_until(lambda: "with 2 workers" in d.log(), 20, "both workers")
    socks = unix_connections(path, 30)
    try:
        # At most five each, counted by the master as it hands them over
        # (fewer if a worker's last count still holds the connection
        # wait_ready made); the rest are closed at once.
        served, refused = served_and_refused(socks)
        assert 5 <= served <= 10, (served, refused)
        assert "every worker holds max_connections (5): connection " \
            "refused" in d.log()
    finally:
        for s in socks:
            s.close()
    # The workers count what they hold once a second: room again.
    wait_until(lambda: fresh_calls_succeed(pb, d.addr, 10), 30,
               lambda: f"calls served again; log:\n{d.log()}")
    d.stop_cleanly()


def test_unix_flood_out_of_descriptors_logs_a_bounded_number_of_lines(
        quoterd, corpus, pb, tmp_path):
    # 64 descriptors a process leave no room for max_connections: the
    # worker runs out, and each connection handed to it then arrives
    # without its descriptor (MSG_CTRUNC). That used to be logged, one
    # line each and unthrottled, as "a malformed message".
    path = tmp_path / "q.sock"
    d = unix_daemon(quoterd, corpus.db, path, workers=1, threads=1,
                    wrapper=["prlimit", "--nofile=64:64", "--"])
    d.wait_ready(pb)
    assert "max_connections: none" in d.log()
    socks = unix_connections(path, 400)
    try:
        wait_until(lambda: "(connections not received)" in d.log(), 30,
                   lambda: f"a count of suppressed lines; log:\n{d.log()}")
    finally:
        for s in socks:
            s.close()
    log = d.log()
    lines = log.count("a connection from the master could not be "
                      "received: out of descriptors")
    assert 0 < lines < 100, log[-3000:]
    assert "malformed" not in log
    wait_until(lambda: fresh_calls_succeed(pb, d.addr, 10), 30,
               lambda: f"calls served again; log:\n{d.log()}")
    d.stop_cleanly()


def test_unix_connections_no_worker_takes_log_a_bounded_number_of_lines(
        quoterd, corpus, pb, tmp_path):
    # The only worker stopped (and never killed): the master hands it
    # connections until its channel is full, then has nowhere to put
    # them. One line each used to flood the log.
    path = tmp_path / "q.sock"
    d = unix_daemon(quoterd, corpus.db, path, workers=1, threads=1,
                    extra=["--worker-timeout", "0"])
    d.wait_ready(pb)
    worker = d.wait_workers(1)[0]
    os.kill(worker, signal.SIGSTOP)
    try:
        for _ in range(3):
            for s in unix_connections(path, 500):
                s.close()
        wait_until(lambda: "no worker to take a connection" in d.log(), 30,
                   "connections no worker took")
    finally:
        os.kill(worker, signal.SIGCONT)
    d.stop_cleanly()
    log = d.log()
    assert log.count("no worker to take a connection") < 100, log[-3000:]
    assert "(connections no worker took)" in log, log[-3000:]


@pytest.mark.parametrize("test", [True, False])
def test_max_connections_must_fit_under_the_limit(corpus, tmp_path,
                                                  binaries, test):
    # Tagged like the quoterd fixture's daemons: should a regression let
    # the start (test False) serve, what it started is found and killed.
    tag = f"QUOTERD_TEST_TAG={uuid.uuid4().hex}"

    def run(value):
        conf = tmp_path / "quoterd.conf"
        conf.write_text(f"max_connections = {value}\n")
        return subprocess.run(
            ["prlimit", "--nofile=1024:1024", "--", str(QUOTERD), "-c",
             str(conf), "--db", str(corpus.db), "--listen",
             f"127.0.0.1:{free_port()}"] + (["--test"] if test else []),
            capture_output=True, text=True, timeout=30,
            env=child_env(**dict([tag.split("=", 1)])),
            stdin=subprocess.DEVNULL)
    try:
        r = run(961)
        assert r.returncode == 1, r
        assert "max_connections: 961 does not fit under the descriptor " \
            "limit of 1024 with the 64 each worker keeps for itself (at " \
            "most 960" in r.stderr, r.stderr
        if test:
            r = run(960)
            assert r.returncode == 0 and "configuration ok" in r.stdout, r
    finally:
        kill_tagged(tag)


def test_soft_descriptor_limit_raised_to_hard(quoterd, corpus, pb):
    d = quoterd(db=corpus.db, workers=1,
                wrapper=["prlimit", "--nofile=256:4096", "--"])
    d.wait_ready(pb)
    assert "descriptors: 4096 a process (raised from 256)" in d.log()
    worker = d.wait_workers(1)[0]
    limits = open(f"/proc/{worker}/limits").read()
    assert [ln for ln in limits.splitlines()
            if ln.startswith("Max open files")][0].split()[3:5] == \
        ["4096", "4096"], limits
    d.stop_cleanly()


# ----------------------------------------------------------------- streams

WATCH = "/grpc.health.v1.Health/Watch"


def hold_streams(addr, path, n, per_conn=100):
    """n streams on path that send nothing after their headers, over
    connections of per_conn streams; returns the open sockets."""
    socks = []
    block = h2_headers([], path)
    while n > 0:
        h = H2(addr)
        k = min(n, per_conn)
        # Then a PING: its ACK means the server has read every HEADERS
        # frame before it, so the calls exist once it comes.
        h.sock.sendall(b"".join(h.frame(1, 4, 2 * i + 1, block)
                                for i in range(k))
                       + h.frame(6, 0, 0, b"barrier!"))
        deadline = time.monotonic() + 10
        while True:
            f = h.next_frame(deadline)
            assert f is not None, "connection closed"
            if f[0] == 6 and f[1] & 1:
                break
        socks.append(h)
        n -= k
    return socks


def watches_say_serving(addr, n):
    """n Watch streams open at once on one channel each get SERVING."""
    with channel(addr) as ch:
        calls = [ch.unary_stream(WATCH)(b"", timeout=10) for _ in range(n)]
        try:
            return [next(c) for c in calls] == [b"\x08\x01"] * n
        finally:
            for c in calls:
                c.cancel()


def test_idle_reflection_streams_do_not_starve_watch(quoterd, corpus, pb):
    d = quoterd(db=corpus.db, workers=1)
    d.wait_ready(pb)
    held = hold_streams(d.addr, REFLECT["v1alpha"], 1100)
    try:
        # Wait until the worker has taken what it will of them.
        code, _ = reflect_raw(d.addr, field(7, b""), "v1")
        assert code == grpc.StatusCode.OK
        assert watches_say_serving(d.addr, 5)
        get_quote(pb, d.addr)
    finally:
        for h in held:
            h.close()
    d.stop_cleanly()


def test_idle_reflection_stream_is_ended(quoterd, corpus, pb):
    d = quoterd(db=corpus.db, workers=1,
                extra=["-v"], config="reflection_idle_timeout = 1\n")
    d.wait_ready(pb)
    with channel(d.addr) as ch:
        done = threading.Event()

        def requests():
            yield field(7, b"")
            done.wait(60)  # then nothing: idle
        call = ch.stream_stream(REFLECT["v1"])(requests(), timeout=60)
        try:
            first = next(call)
            assert first
            with pytest.raises(grpc.RpcError) as e:
                next(call)
            assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "idle" in e.value.details()
        finally:
            done.set()
    get_quote(pb, d.addr)
    d.stop_cleanly()


# ------------------------------------------------------------- compression

def gzip_status(pb, addr, author, method="GetQuote"):
    pb2, pb2_grpc = pb
    with channel(addr) as ch:
        stub = pb2_grpc.QuoterStub(ch)
        try:
            getattr(stub, method)(pb2.QuoteRequest(author=author), timeout=10,
                                  compression=grpc.Compression.Gzip)
        except grpc.RpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def test_compressed_requests_refused_by_default(served, pb):
    assert gzip_status(pb, served.addr, "Mark Twain") == \
        grpc.StatusCode.UNIMPLEMENTED
    get_quote(pb, served.addr, "Mark Twain")


def test_compressed_request_inflated_only_up_to_the_limit(quoterd, corpus,
                                                          pb):
    d = quoterd(db=corpus.db, config="accept_compressed = yes\n")
    d.wait_ready(pb)
    assert gzip_status(pb, d.addr, "Mark Twain") == grpc.StatusCode.OK
    # 3.9 MB of one letter: about 4 KB compressed, under the 4096-byte
    # limit on what arrives, far over it once inflated.
    big = "a" * 3_900_000
    assert gzip_status(pb, d.addr, big) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert gzip_status(pb, d.addr, "a" * 5000) == \
        grpc.StatusCode.RESOURCE_EXHAUSTED
    assert gzip_status(pb, d.addr, "a" * 4000) == grpc.StatusCode.OK
    d.stop_cleanly()


# --------------------------------------------------------- process hygiene

def test_inherited_descriptors_do_not_reach_workers(quoterd, corpus, pb,
                                                    tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("the launcher's\n")
    # The launcher leaves descriptor 7 open (not close-on-exec).
    d = quoterd(db=corpus.db, wrapper=[
        "sh", "-c", f'exec 7<"{secret}"; exec "$@"', "sh"])
    d.wait_ready(pb)
    for pid in [d.pid] + d.wait_workers(2):
        targets = [os.readlink(f"/proc/{pid}/fd/{fd}")
                   for fd in os.listdir(f"/proc/{pid}/fd")
                   if os.path.exists(f"/proc/{pid}/fd/{fd}")]
        assert str(secret) not in targets, (pid, targets)
    d.stop_cleanly()


# A launcher that leaves argv[1] open as descriptor 1500, then runs the
# rest of its arguments.
LEAVE_1500 = """
import os, resource, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < 4096:
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
os.dup2(os.open(sys.argv[1], os.O_RDONLY), 1500)
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_inherited_descriptors_closed_without_close_range(quoterd, corpus, pb,
                                                         tmp_path):
    # close_range() refused (a kernel before 5.9, or a seccomp filter):
    # the fallback must close a descriptor above 1024 too.
    secret = tmp_path / "secret"
    secret.write_text("the launcher's\n")
    d = quoterd(db=corpus.db, wrapper=inject("close_range", "error=ENOSYS") + [
        "/usr/bin/python3", "-c", LEAVE_1500, str(secret)])
    d.wait_ready(pb)
    # Under strace, the master is strace's child: take every quoterd.
    pids = [p for p in pids_with_env(d.tag) if comm(p) == "quoterd"]
    assert len(pids) >= 3, pids  # the master and two workers
    for pid in pids:
        targets = [os.readlink(f"/proc/{pid}/fd/{fd}")
                   for fd in os.listdir(f"/proc/{pid}/fd")
                   if os.path.exists(f"/proc/{pid}/fd/{fd}")]
        assert str(secret) not in targets, (pid, targets)


# strace's fault injection, on a system call only workers make: gRPC's
# poller is the one user of epoll_create1 in every quoterd process. (An
# exhausted descriptor limit, tried before, hit the master or the workers
# depending on one descriptor's worth of slack.)
def inject(syscall, how):
    return ["strace", "-f", "-qq", "-o", "/dev/null", "-e",
            f"trace={syscall}", "-e", f"inject={syscall}:{how}", "--"]


def test_daemon_gives_up_when_workers_cannot_start(quoterd, corpus):
    # Every worker is killed as it starts and restarted, again and again:
    # the --daemon parent must not wait forever, and says why it stopped.
    d = quoterd(args=["--listen", f"127.0.0.1:{free_port()}", "--workers",
                      "1", "--db", str(corpus.db), "--daemon"],
                config="start_timeout = 2\nwatch_database = no\n",
                wrapper=inject("epoll_create1", "signal=SIGKILL"))
    log = d.expect_exit(1, timeout=30)
    assert "workers did not start within 2 s" in log, log


def test_daemon_parent_says_why_a_worker_cannot_serve(quoterd, corpus):
    # A worker that cannot listen exits for good (its status 2), and the
    # daemon stops before serving: the parent repeats the reason.
    d = quoterd(args=["--listen", f"127.0.0.1:{free_port()}", "--workers",
                      "1", "--db", str(corpus.db), "--daemon"],
                config="start_timeout = 20\nwatch_database = no\n",
                wrapper=inject("listen", "error=EACCES"))
    log = d.expect_exit(1, timeout=30)
    assert "cannot serve, so quoterd stops" in log, log
    assert "exited with status 2" in log, log
