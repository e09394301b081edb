"""/metrics and the log's destinations.

- Exact counts: after known numbers of calls of each status, every
  quoterd_calls_total series holds exactly that many, the histogram's count
  equals each method's total, nothing is in flight, and `promtool check
  metrics` accepts the scrape.
- Counts survive a worker retired by SIGTTOU and one killed by SIGKILL
  (up to its last finished call); restarts and the workers gauge follow.
  A call the killed worker never finished leaves quoterd_calls_in_flight.
- The database gauges and swap counters after a good and a refused swap;
  calls before, during and after a swap counted exactly.
- The endpoint: 404 for other paths, 405 for other methods, and a slow or
  malformed HTTP client neither blocks a scrape nor takes it down; a busy
  metrics address fails the start.
- log = FILE is reopened by every process on SIGUSR1, quoterd-metrics
  included (which then still serves); --daemon logs to
  syslog, never to the terminal it was started from.
"""

import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import urllib.error
import urllib.request

import grpc
import pytest

from conftest import (QUOTERD, SRC, H2, Load, child_env, children_of,
                      comm, free_port, get_quote, make_corpus, kill_tagged,
                      raw_call, run_quoterd, wait_until)

GET_QUOTE = "/quotes.Quoter/GetQuote"
CHECK = "/grpc.health.v1.Health/Check"
WATCH = "/grpc.health.v1.Health/Watch"
SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$")


def scrape(addr, path="/metrics"):
    with urllib.request.urlopen(f"http://{addr}{path}", timeout=10) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return r.read().decode()


def parse(text):
    """{(name, labels): value} of a scrape."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        m = SERIES.match(line)
        assert m, f"not a sample line: {line!r}"
        out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def calls(samples, method, code):
    return samples.get(("quoterd_calls_total",
                        f'{{method="{method}",code="{code}"}}'), 0)


def method_total(samples, method):
    return sum(v for (n, l), v in samples.items()
               if n == "quoterd_calls_total" and f'method="{method}"' in l)


def value(samples, name, labels=""):
    return samples[(name, labels)]


def promtool_ok(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture
def metered(quoterd, corpus, pb):
    """quoterd with metrics on a free port, ready; (daemon, metrics addr)."""
    def start(workers=2, extra=(), db=None):
        maddr = f"127.0.0.1:{free_port()}"
        d = quoterd(db=db or corpus.db, workers=workers,
                    extra=["--metrics", maddr, *extra])
        d.wait_ready(pb)
        # The readiness probe's calls are counted too: start from here.
        return d, maddr
    return start


def make_calls(pb, addr, ok=0, invalid=0, unimplemented=0, checks=0,
               not_found=0):
    for _ in range(ok):
        get_quote(pb, addr)
    for _ in range(invalid):
        with pytest.raises(grpc.RpcError) as e:
            raw_call(addr, GET_QUOTE, b"\xff\xff\xff")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    for _ in range(unimplemented):
        with pytest.raises(grpc.RpcError) as e:
            raw_call(addr, "/quotes.Quoter/NoSuchMethod", b"")
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    for _ in range(checks):
        raw_call(addr, CHECK, b"")
    for _ in range(not_found):
        with pytest.raises(grpc.RpcError) as e:
            raw_call(addr, CHECK, b"\x0a\x07no.Such")
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_exact_counts_by_status(metered, pb):
    d, maddr = metered()
    before = parse(scrape(maddr))
    make_calls(pb, d.addr, ok=150, invalid=7, unimplemented=5, checks=4,
               not_found=3)
    text = scrape(maddr)
    after = parse(text)
    promtool_ok(text)

    def grew(method, code):
        return calls(after, method, code) - calls(before, method, code)
    assert grew(GET_QUOTE, "OK") == 150
    assert grew(GET_QUOTE, "INVALID_ARGUMENT") == 7
    assert grew("other", "UNIMPLEMENTED") == 5
    assert grew(CHECK, "OK") == 4
    assert grew(CHECK, "NOT_FOUND") == 3
    # Nothing else was counted.
    total = sum(v for (n, _), v in after.items() if n == "quoterd_calls_total")
    total0 = sum(v for (n, _), v in before.items() if n == "quoterd_calls_total")
    assert total - total0 == 150 + 7 + 5 + 4 + 3
    for method in (GET_QUOTE, CHECK, "other"):
        label = f'{{method="{method}"}}'
        count = value(after, "quoterd_call_duration_seconds_count", label)
        assert count == method_total(after, method)
        inf = value(after, "quoterd_call_duration_seconds_bucket",
                    f'{{method="{method}",le="+Inf"}}')
        assert inf == count
        assert value(after, "quoterd_call_duration_seconds_sum", label) > 0
    assert value(after, "quoterd_calls_in_flight") == 0
    assert value(after, "quoterd_workers") == 2
    assert value(after, "quoterd_database_quotes") == 60
    assert value(after, "process_open_fds") > 0
    assert any(n == "quoterd_build_info" for n, _ in after)


def test_exact_after_concurrent_load(metered, pb, corpus):
    """Calls from several threads on many connections, spread over the
    workers and their call threads: the counter is the sum, exactly."""
    d, maddr = metered()
    base = calls(parse(scrape(maddr)), GET_QUOTE, "OK")
    load = Load(pb, d.addr, corpus.pairs, threads=3, calls=400)
    for t in load.threads:
        t.join(120)
    load.finish()
    assert load.bad == [] and load.refused == []
    assert load.ok == 1200
    s = parse(scrape(maddr))
    assert calls(s, GET_QUOTE, "OK") - base == 1200
    assert value(s, "quoterd_calls_in_flight") == 0
    assert (value(s, "quoterd_call_duration_seconds_count",
                  f'{{method="{GET_QUOTE}"}}') == method_total(s, GET_QUOTE))


def test_counts_survive_retired_and_killed_workers(metered, pb):
    d, maddr = metered(workers=3)
    base = calls(parse(scrape(maddr)), GET_QUOTE, "OK")
    make_calls(pb, d.addr, ok=60)
    d.send(signal.SIGTTOU)
    d.wait_workers(2)
    s = parse(scrape(maddr))
    assert calls(s, GET_QUOTE, "OK") == base + 60   # the retired kept its
    assert value(s, "quoterd_workers") == 2
    make_calls(pb, d.addr, ok=40)
    victim = d.workers()[0]
    os.kill(victim, signal.SIGKILL)
    d.wait_workers(2, exclude=[victim])
    wait_until(lambda: value(parse(scrape(maddr)),
                             "quoterd_worker_restarts_total") == 1,
               10, "the restart to be counted")
    make_calls(pb, d.addr, ok=25)
    s = parse(scrape(maddr))
    assert calls(s, GET_QUOTE, "OK") == base + 125
    assert value(s, "quoterd_worker_restarts_total") == 1
    assert value(s, "quoterd_workers") == 2


def test_in_flight_of_a_killed_worker_ends(metered, pb):
    """A worker SIGKILLed in the middle of a call never finishes it: once
    it is reaped its call is no longer in flight, and what it counted
    stays."""
    # -v for the master's "ready" line: the replacement is waited for
    # without calls, since a probe that timed out would be counted too.
    d, maddr = metered(workers=1, extra=["-v"])
    base = parse(scrape(maddr))
    make_calls(pb, d.addr, ok=20)
    victim = d.workers()[0]
    watch = H2(d.addr)
    try:
        watch.watch()
        watch.reply_headers()   # the worker has the call
        wait_until(lambda: value(parse(scrape(maddr)),
                                 "quoterd_calls_in_flight") == 1,
                   10, "the Watch to be in flight")
        os.kill(victim, signal.SIGKILL)
        d.wait_workers(1, exclude=[victim])
        wait_until(lambda: d.log().count("master: worker 0 ready") >= 2, 20,
                   lambda: f"the replacement ready; log:\n{d.log()}")
    finally:
        watch.close()
    s = parse(scrape(maddr))
    assert value(s, "quoterd_worker_restarts_total") == 1
    assert value(s, "quoterd_calls_in_flight") == 0
    make_calls(pb, d.addr, ok=30)
    s = parse(scrape(maddr))
    assert value(s, "quoterd_calls_in_flight") == 0
    # The killed worker's calls are kept, the Watch it never ended is not
    # counted, and no other call was made.
    assert calls(s, GET_QUOTE, "OK") - calls(base, GET_QUOTE, "OK") == 50
    assert method_total(s, GET_QUOTE) - method_total(base, GET_QUOTE) == 50
    assert method_total(s, WATCH) == 0


def metered_on_a_copy(metered, tmp_path):
    """Corpus a (2 authors, 5 quotes) copied into a directory of its own
    and served with metrics, and corpus b (1 author, 4 quotes) to swap
    in: (a, b, the served path, daemon, metrics addr)."""
    served = tmp_path / "served"
    served.mkdir()
    a = make_corpus(tmp_path / "a", {"Ada Lovelace": 2, "Alan Turing": 3})
    b = make_corpus(tmp_path / "b", {"Grace Hopper": 4})
    path = served / "quotes.mdb"
    shutil.copyfile(a.db, path)
    d, maddr = metered(db=path)
    return a, b, path, d, maddr


def rename_onto(path, what):
    """what (a file's path, or bytes) written beside path, then renamed
    onto it: the way a new database is put in place."""
    tmp = path.with_name("tmp")
    if isinstance(what, bytes):
        tmp.write_bytes(what)
    else:
        shutil.copyfile(what, tmp)
    os.rename(tmp, path)


def test_database_gauges_and_swaps(metered, pb, tmp_path):
    a, b, path, d, maddr = metered_on_a_copy(metered, tmp_path)
    s = parse(scrape(maddr))
    assert value(s, "quoterd_database_generation") == 0
    assert (value(s, "quoterd_database_quotes"),
            value(s, "quoterd_database_authors")) == (5, 2)
    loaded = value(s, "quoterd_database_loaded_timestamp_seconds")
    assert loaded > 0

    rename_onto(path, b.db)
    wait_until(lambda: value(parse(scrape(maddr)),
                             "quoterd_database_generation") == 1,
               10, "generation 1")
    s = parse(scrape(maddr))
    assert (value(s, "quoterd_database_quotes"),
            value(s, "quoterd_database_authors")) == (4, 1)
    assert value(s, "quoterd_database_swaps_total", '{result="ok"}') == 1
    assert value(s, "quoterd_database_swaps_total", '{result="refused"}') == 0
    assert value(s, "quoterd_database_loaded_timestamp_seconds") >= loaded

    rename_onto(path, b"not a database" * 100)
    wait_until(lambda: value(parse(scrape(maddr)), "quoterd_database_swaps_total",
                             '{result="refused"}') == 1,
               10, "the refusal to be counted")
    s = parse(scrape(maddr))
    assert value(s, "quoterd_database_generation") == 1
    assert value(s, "quoterd_database_quotes") == 4


def test_exact_counts_across_a_swap(metered, pb, tmp_path):
    """Calls before, during and after a database swap: OK grows by
    exactly the calls made, none lost or counted twice as workers switch
    files."""
    a, b, path, d, maddr = metered_on_a_copy(metered, tmp_path)
    base = parse(scrape(maddr))
    make_calls(pb, d.addr, ok=70)
    load = Load(pb, d.addr, a.pairs | b.pairs, threads=2, calls=100000)
    try:
        load.wait_for(20, "calls before the swap")
        rename_onto(path, b.db)
        wait_until(lambda: value(parse(scrape(maddr)),
                                 "quoterd_database_generation") == 1,
                   10, "generation 1")
        load.wait_for(20, "calls after the swap")
    finally:
        load.finish()
    assert load.bad == [] and load.refused == []
    make_calls(pb, d.addr, ok=50)
    assert get_quote(pb, d.addr) in b.pairs   # the new file is served
    s = parse(scrape(maddr))
    n = 70 + load.ok + 50 + 1
    assert calls(s, GET_QUOTE, "OK") - calls(base, GET_QUOTE, "OK") == n
    assert method_total(s, GET_QUOTE) - method_total(base, GET_QUOTE) == n
    assert value(s, "quoterd_calls_in_flight") == 0
    assert value(s, "quoterd_database_swaps_total", '{result="ok"}') == 1


def http_status(maddr, method, path):
    req = urllib.request.Request(f"http://{maddr}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.headers


def test_endpoint_serves_only_metrics(metered, pb):
    d, maddr = metered()
    assert http_status(maddr, "GET", "/")[0] == 404
    assert http_status(maddr, "GET", "/metrics/x")[0] == 404
    status, headers = http_status(maddr, "POST", "/metrics")
    assert status == 405 and "GET" in headers["Allow"]
    assert http_status(maddr, "DELETE", "/metrics")[0] == 405
    assert http_status(maddr, "HEAD", "/metrics")[0] == 200


def test_endpoint_survives_slow_and_malformed_clients(metered, pb):
    d, maddr = metered()
    host, port = maddr.rsplit(":", 1)
    slow = []
    # Clients that connect and say half a request, then nothing.
    for _ in range(10):
        s = socket.create_connection((host, int(port)), timeout=5)
        s.sendall(b"GET /metr")
        slow.append(s)
    # Garbage: answered with an error or closed, never a crash.
    for junk in (b"\x00\xff" * 500 + b"\r\n\r\n", b"GET " + b"A" * 100000
                 + b" HTTP/1.1\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            try:
                s.sendall(junk)
                s.recv(4096)
            except OSError:
                pass
    promtool_ok(scrape(maddr))   # still answering, with slow ones open
    for s in slow:
        s.close()
    assert "metrics process" not in d.log(), d.log()   # never restarted
    make_calls(pb, d.addr, ok=3)


def test_busy_metrics_address_fails_start(quoterd, corpus):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = f"127.0.0.1:{s.getsockname()[1]}"
        d = quoterd(db=corpus.db, extra=["--metrics", busy])
        log = d.expect_exit(1)
    assert busy in log and "metrics" in log


def test_bad_metrics_setting(corpus):
    r = run_quoterd(["--db", str(corpus.db), "--metrics", "unix:/x", "--test"])
    assert r.returncode == 2 and "metrics_listen" in r.stderr


def metrics_pid(d):
    pids = [p for p in children_of(d.pid) if comm(p) == "quoterd-metrics"]
    assert len(pids) == 1, pids
    return pids[0]


def open_inodes(pid):
    """Inodes of the regular files pid holds open."""
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            st = os.stat(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.add(st.st_ino)
    return out


def test_log_file_reopened_on_sigusr1(quoterd, corpus, pb, tmp_path):
    log = tmp_path / "quoterd.log"
    maddr = f"127.0.0.1:{free_port()}"
    d = quoterd(db=corpus.db, extra=["--log", str(log), "--metrics", maddr])
    d.wait_ready(pb)
    workers = d.workers()
    wait_until(lambda: log.exists() and "serving" in log.read_text(), 10,
               "the master's line in the log file")
    assert "serving" not in d.log()   # the file, not stderr
    mpid = metrics_pid(d)
    old = os.stat(log).st_ino
    assert old in open_inodes(mpid)
    os.rename(log, tmp_path / "quoterd.log.1")
    d.send(signal.SIGUSR1)
    wait_until(log.exists, 10, "the log file to be opened again")
    # The metrics process writes nothing but on trouble: its descriptor
    # tells that it has let go of the old file for the new one.
    new = os.stat(log).st_ino
    wait_until(lambda: open_inodes(mpid) & {old, new} == {new}, 10,
               lambda: f"quoterd-metrics ({mpid}) to reopen the log: holds "
               f"{open_inodes(mpid)}, old {old}, new {new}")
    assert metrics_pid(d) == mpid   # the same process, still serving
    promtool_ok(scrape(maddr))
    d.stop_cleanly()
    text = log.read_text()
    # Every process wrote to the new file after the reopen.
    assert "master: stopped" in text
    for i in range(len(workers)):
        assert f"worker {i}: stopped after" in text, text
    assert "stopped" not in (tmp_path / "quoterd.log.1").read_text()


@pytest.fixture
def syslog_socket():
    """A datagram socket at /dev/log standing in for syslogd."""
    if os.path.exists("/dev/log"):
        pytest.skip("a syslog daemon owns /dev/log on this machine")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("/dev/log")
    s.settimeout(0.2)
    try:
        yield s
    finally:
        s.close()
        os.unlink("/dev/log")


def test_daemon_logs_to_syslog_not_terminal(corpus, tmp_path, syslog_socket):
    pidfile = tmp_path / "quoterd.pid"
    tag = f"QUOTERD_TEST_TAG={os.urandom(8).hex()}"
    env = child_env(**dict([tag.split("=", 1)]))
    port = free_port()
    got = []
    try:
        r = subprocess.run(
            [str(QUOTERD), "--db", str(corpus.db), "--listen",
             f"127.0.0.1:{port}", "--workers", "1", "--daemon",
             "--pidfile", str(pidfile)],
            capture_output=True, text=True, timeout=30, env=env,
            stdin=subprocess.DEVNULL)
        assert r.returncode == 0, r.stderr
        assert r.stdout == "" and r.stderr == ""   # not the terminal

        def serving():
            try:
                got.append(syslog_socket.recv(4096).decode())
            except socket.timeout:
                pass
            return any("serving" in m for m in got)
        wait_until(serving, 15, lambda: f"'serving' in syslog: {got}")
        # daemon facility (3), info (6): <30>
        line = next(m for m in got if "serving" in m)
        assert line.startswith("<30>") and "quoterd[" in line, line
        assert "master: serving" in line
    finally:
        kill_tagged(tag)


# ------------------------------------------------- shipped monitoring files

DEPLOY = SRC / "deploy"


def promtool(*args):
    r = subprocess.run(["promtool", *args], capture_output=True, text=True,
                       timeout=60, cwd=DEPLOY / "prometheus")
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_prometheus_config_and_rules():
    promtool("check", "config", "prometheus.yml")
    promtool("check", "rules", "quoterd-rules.yml")
    # Each alert fires on the series it is meant for.
    promtool("test", "rules", "quoterd-rules.test.yml")


def dashboard_exprs():
    dash = json.loads((DEPLOY / "grafana" / "quoterd.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def test_grafana_dashboard_queries_parse_and_exist(metered, pb, tmp_path):
    exprs = dashboard_exprs()
    assert len(exprs) >= 6
    # Every query is valid PromQL: promtool parses it as a recording rule
    # once Grafana's variables are given values.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:q{i}", "expr": e.replace(
            "$__rate_interval", "5m").replace("$instance", ".*")}
        for i, e in enumerate(exprs)]}]}
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules))
    r = subprocess.run(["promtool", "check", "rules", str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # And names only metrics quoterd serves.
    d, maddr = metered()
    served = {n for n, _ in parse(scrape(maddr))}
    served |= {n.rsplit("_", 1)[0] for n in served if n.endswith("_bucket")}
    used = set(re.findall(r"\b(quoterd_[a-z_]+)", " ".join(exprs)))
    assert used and used <= served, used - served
    for needed in ("quoterd_calls_total", "quoterd_call_duration_seconds_bucket",
                   "quoterd_workers", "quoterd_worker_restarts_total",
                   "quoterd_database_generation"):
        assert needed in used
