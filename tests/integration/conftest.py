"""Harness for the quoterd integration tests (after redis's
tests/support/server.tcl).

Programs come from $QUOTERD_BUILD (default <repo>/build), the proto from
$QUOTERD_SRC (default <repo>). Everything listens on 127.0.0.1 only.

- free_port(): a port nothing listens on (bind :0, read it, close).
- Corpus / make_corpus(): a generated quote file, compiled with
  quotes-import into a database; `corpus` is the shared standard one.
- pb: Python stubs generated from proto/quote_service.proto at test time.
- Daemon / `quoterd` fixture: starts quoterd with its stderr in a file,
  waits for readiness by polling GetQuote, lists workers, stops it; at
  teardown kills whatever it started (found by an environment tag that
  forked workers inherit) and fails the test on any sanitizer report.
- run_quote(): runs the C client `quote`, bounded.

Every wait here is bounded; polls sleep POLL seconds between tries.
"""

import importlib
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import grpc
import pytest

# The tests run make themselves, as a user would: the make running them
# (`make SANITIZE=1 test`) must not hand its command-line variables down,
# which it does both in MAKEFLAGS and as variables of their own.
for _var in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES",
             "SANITIZE", "BUILD"):
    os.environ.pop(_var, None)

SRC = Path(os.environ.get("QUOTERD_SRC") or Path(__file__).resolve().parents[2])
BUILD = Path(os.environ.get("QUOTERD_BUILD") or SRC / "build")
QUOTERD = BUILD / "quoterd"
QUOTE = BUILD / "quote"
IMPORT = BUILD / "quotes-import"

POLL = 0.05
READY_TIMEOUT = 15.0
EXIT_TIMEOUT = 15.0

SANITIZER_MARKERS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer",
)

# grpc (Python and C core) honours proxy variables; tests talk to loopback.
_PROXY_VARS = {"http_proxy", "https_proxy", "grpc_proxy", "all_proxy", "no_proxy"}
CHANNEL_OPTIONS = [
    ("grpc.enable_http_proxy", 0),
    # A private subchannel per channel: a fresh channel really reconnects
    # instead of sharing another channel's connection or backoff.
    ("grpc.use_local_subchannel_pool", 1),
]

LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (error|warn|info|debug) "
    r"\[(\d+)\] (master|worker \d+): "
)


def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
    env.update(extra)
    return env


def sanitizer_reports(text):
    return [m for m in SANITIZER_MARKERS if m in text]


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what):
    """Polls pred() until truthy; returns its value or fails after timeout.
    what: a description, or a callable giving one at failure time."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            what = what() if callable(what) else what
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(POLL)


# ---------------------------------------------------------------- processes

def proc_stat(pid):
    """(state, ppid, starttime) of pid, or None if it does not exist."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may hold spaces and parentheses: fields start after the last ')'.
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[19])


def comm(pid):
    """The process's name (PR_SET_NAME), or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def tracer(pid):
    """The pid tracing pid (0: none), from /proc/PID/status."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("TracerPid:"):
                return int(line.split()[1])
    return 0


def children_of(ppid):
    """Pids of the live (non-zombie) direct children of ppid."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = proc_stat(int(d))
        if st and st[1] == ppid and st[0] != "Z":
            out.append(int(d))
    return sorted(out)


def process_alive(pid, starttime=None):
    st = proc_stat(pid)
    if st is None or st[0] == "Z":
        return False
    return starttime is None or st[2] == starttime


def kill_tagged(tag):
    """SIGKILLs every live process started with tag in its environment."""
    for p in pids_with_env(tag):
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


def pids_with_env(tag):
    """Live processes whose initial environment holds tag."""
    needle = tag.encode()
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{d}/environ").read_bytes()
        except OSError:
            continue
        if needle in env and process_alive(int(d)):
            out.append(int(d))
    return out


# ------------------------------------------------------------------- corpus

AUTHORS = [
    "Søren Kierkegaard", "Zoë Ångström", "Ada Lovelace", "Grace Hopper",
    "Alan Turing", "Edsger Dijkstra", "Donald Knuth", "Barbara Liskov",
    "Ken Thompson", "Dennis Ritchie", "Rob Pike", "Margaret Hamilton",
    "Frances Allen", "Niklaus Wirth", "Tony Hoare", "John McCarthy",
    "李白", "Fyodor Dostoyevsky", "Mark Twain", "Oscar Wilde",
]


class Corpus:
    """A quote file, its database, and what the database should serve."""

    def __init__(self, directory, authors):
        self.authors = authors  # author -> list of quotes
        self.pairs = {(q, a) for a, qs in authors.items() for q in qs}
        directory.mkdir(parents=True, exist_ok=True)
        self.txt = directory / "quotes.txt"
        self.db = directory / "quotes.mdb"
        self.txt.write_text(
            "".join(f"{q}~{a}\n" for a, qs in authors.items() for q in qs),
            encoding="utf-8")
        r = subprocess.run([str(IMPORT), "-q", "-o", str(self.db), str(self.txt)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, f"quotes-import failed: {r.stderr}"


def make_corpus(directory, authors=None, seed=1):
    """~20 authors with 1..5 quotes each (every count present), unless
    authors (name -> number of quotes) is given."""
    rng = random.Random(seed)
    if authors is None:
        authors = {a: (i % 5) + 1 for i, a in enumerate(AUTHORS)}
    words = ["time", "code", "truth", "love", "bugs", "proof", "life",
             "machines", "silence", "wit", "ünïcödé", "~approx~"]
    content = {}
    for a, n in authors.items():
        content[a] = [
            f"Quote {i} of {a}: {' '.join(rng.choice(words) for _ in range(6))}."
            for i in range(n)
        ]
    return Corpus(directory, content)


@pytest.fixture(scope="session")
def binaries():
    missing = [str(p) for p in (QUOTERD, QUOTE, IMPORT) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"not built: {', '.join(missing)} (run make)")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, binaries):
    return make_corpus(tmp_path_factory.mktemp("corpus"))


# ------------------------------------------------------------------- stubs

@pytest.fixture(scope="session")
def pb(tmp_path_factory):
    """(quote_service_pb2, quote_service_pb2_grpc), generated now."""
    out = tmp_path_factory.mktemp("stubs")
    proto = SRC / "proto"
    subprocess.run(
        ["/usr/bin/python3", "-m", "grpc_tools.protoc", f"-I{proto}",
         f"--python_out={out}", f"--grpc_python_out={out}",
         str(proto / "quote_service.proto")],
        check=True, timeout=60)
    sys.path.insert(0, str(out))
    try:
        pb2 = importlib.import_module("quote_service_pb2")
        pb2_grpc = importlib.import_module("quote_service_pb2_grpc")
    finally:
        sys.path.remove(str(out))
    return pb2, pb2_grpc


def channel(addr):
    return grpc.insecure_channel(addr, options=CHANNEL_OPTIONS)


def get_quote(pb, addr, author="", timeout=5.0):
    """One GetQuote on a fresh channel; returns (quote, author)."""
    pb2, pb2_grpc = pb
    with channel(addr) as ch:
        reply = pb2_grpc.QuoterStub(ch).GetQuote(
            pb2.QuoteRequest(author=author), timeout=timeout)
    return reply.quote, reply.author


def raw_call(addr, method, body, timeout=5.0):
    """Sends body (bytes) to method unserialized; returns the reply bytes
    or raises grpc.RpcError."""
    with channel(addr) as ch:
        return ch.unary_unary(method)(body, timeout=timeout)


# ------------------------------------------------------------------- daemon

class Daemon:
    """One quoterd run. args replaces the default arguments
    (--listen 127.0.0.1:PORT --workers 2 --threads 2 --db DB) when given;
    extra is appended to whichever is used. config (text) is written to
    DIR/quoterd.conf and passed with -c. The default runs two call threads
    a worker whatever the machine's CPU count, so that the threaded path
    is what most tests exercise."""

    def __init__(self, directory, db=None, args=None, extra=(), config=None,
                 workers=2, threads=2, wrapper=()):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.tag = f"QUOTERD_TEST_TAG={uuid.uuid4().hex}"
        self.logpath = self.dir / "stderr.log"
        self.config = None
        cmd = [str(QUOTERD)]
        if config is not None:
            self.config = self.dir / "quoterd.conf"
            self.config.write_text(config, encoding="utf-8")
            cmd += ["-c", str(self.config)]
        if args is None:
            args = ["--listen", self.addr, "--workers", str(workers),
                    "--threads", str(threads), "--db", str(db)]
        # wrapper: a command that execs the rest (prlimit, say).
        self.cmd = list(wrapper) + cmd + list(args) + list(extra)
        self.proc = None
        self.seen = {}  # pid -> starttime of every worker listed

    def start(self):
        key, val = self.tag.split("=", 1)
        self._log = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            self.cmd, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=self._log, env=child_env(**{key: val}), cwd=self.dir)
        return self

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        try:
            return self.logpath.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def _died(self, what):
        pytest.fail(f"quoterd exited with {self.proc.returncode} while "
                    f"waiting for {what}; its stderr:\n{self.log()}")

    def wait_ready(self, pb, timeout=READY_TIMEOUT):
        """Polls GetQuote (1 s per try) until one succeeds."""
        return self.wait_serving(
            lambda: get_quote(pb, self.addr, timeout=1.0), timeout)

    def wait_serving(self, call, timeout=READY_TIMEOUT):
        """Polls call() (one RPC) until it succeeds and returns its result,
        failing fast if the daemon died; for calls wait_ready cannot
        make (TLS, say)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._died("readiness")
            try:
                return call()
            except grpc.RpcError as e:
                last = e
            time.sleep(POLL)
        pytest.fail(f"quoterd not ready within {timeout} s (last error: "
                    f"{last}); its stderr:\n{self.log()}")

    def workers(self):
        """Pids of the master's live direct children but the metrics
        process (and a database checker, which lives for moments)."""
        pids = [p for p in children_of(self.pid) if comm(p) == "quoterd"]
        for p in pids:
            st = proc_stat(p)
            if st:
                self.seen.setdefault(p, st[2])
        return pids

    def wait_workers(self, n, timeout=READY_TIMEOUT, exclude=()):
        def check():
            if self.proc.poll() is not None:
                self._died(f"{n} workers")
            w = self.workers()
            return w if len(w) == n and not set(w) & set(exclude) else None
        return wait_until(check, timeout, lambda: f"{n} workers of {self.pid} "
                          f"(have {self.workers()}); stderr:\n{self.log()}")

    def wait_exit(self, timeout=EXIT_TIMEOUT):
        """Exit code, or fails the test if still running after timeout."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"quoterd still running {timeout} s later; its "
                        f"stderr:\n{self.log()}")

    def expect_exit(self, rc=1, timeout=EXIT_TIMEOUT):
        """Waits for the daemon to exit by itself with status rc; returns
        its log."""
        code = self.wait_exit(timeout)
        assert code == rc, f"exit {code}, want {rc}; stderr:\n{self.log()}"
        return self.log()

    def send(self, sig):
        os.kill(self.pid, sig)

    def stop(self, sig=signal.SIGTERM, timeout=EXIT_TIMEOUT):
        """Sends sig, waits up to timeout, then SIGKILL. Returns the exit
        code (negative: killed by that signal)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def stop_cleanly(self):
        """A graceful stop: exit 0, no worker left. Workers then go through
        exit(), so a sanitizer build's leak check runs over everything they
        allocated, and the fixture fails the test on its report."""
        assert self.stop() == 0, self.log()[-3000:]
        assert self.leftovers() == []

    def leftovers(self):
        """Workers seen earlier that are still alive."""
        return [p for p, t in self.seen.items() if process_alive(p, t)]

    def cleanup(self):
        """Kills everything this run started; returns sanitizer reports."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
            for _ in range(3):
                pids = pids_with_env(self.tag)
                if not pids:
                    break
                for p in pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(POLL)
            self._log.close()
        return sanitizer_reports(self.log())


@pytest.fixture
def quoterd(tmp_path, pb, binaries):
    """Factory: quoterd(db=..., args=..., extra=..., config=...) returns a
    started Daemon (not yet ready). Teardown kills it and fails the test
    if its stderr holds a sanitizer report."""
    started = []

    def start(db=None, **kw):
        d = Daemon(tmp_path / f"quoterd{len(started)}", db=db, **kw)
        started.append(d)
        return d.start()

    yield start
    bad = []
    for d in started:
        found = d.cleanup()
        if found:
            bad.append(f"{d.logpath}: {found}\n{d.log()}")
    if bad:
        pytest.fail("sanitizer report in quoterd stderr:\n" + "\n".join(bad))


def unix_daemon(quoterd, db, path, workers=2, threads=None, extra=(),
                config=None, wrapper=()):
    """quoterd (from the quoterd fixture) listening on the Unix socket at
    path, addr set to unix:path; started, not yet ready."""
    args = ["--listen", f"unix:{path}", "--workers", str(workers)]
    if threads is not None:
        args += ["--threads", str(threads)]
    d = quoterd(args=args + ["--db", str(db)], extra=extra, config=config,
                wrapper=wrapper)
    d.addr = f"unix:{path}"
    return d


@pytest.fixture
def served(quoterd, corpus, pb):
    """quoterd on the shared corpus, with its defaults, ready."""
    d = quoterd(db=corpus.db)
    d.wait_ready(pb)
    return d


def worker_calls(log):
    """{worker index: calls} from the `stopped after N calls` lines."""
    return {int(i): int(n) for i, n in
            re.findall(r"worker (\d+): stopped after (\d+) calls", log)}


def run_quoterd(args, timeout=15):
    """quoterd run to completion (flags, --test, --signal): its result."""
    return subprocess.run([str(QUOTERD)] + args, capture_output=True,
                          text=True, timeout=timeout, env=child_env(),
                          stdin=subprocess.DEVNULL)


def reload_command(pidfile):
    """quoterd --signal reload, ExecReload's command: returns once the
    reload is over."""
    return run_quoterd(["--pidfile", str(pidfile), "--signal", "reload"],
                       timeout=60)


# -------------------------------------------------------------------- load

class Load:
    """Threads calling GetQuote until finish() (each at most `calls`
    times), every reply checked against pairs. A thread takes a fresh
    channel every per_channel calls, so that new connections keep landing
    on whichever workers exist. Counts successes (ok); calls refused as a
    stopping worker refuses them (refused: gRPC core 1.51 answers
    CANCELLED to a call that reaches a worker as its shutdown begins, a
    closed port gives UNAVAILABLE); anything else, a thread's own
    exception included, goes to bad. With mixed, the calls take turns:
    GetQuote of any author, GetQuote of a named one (the reply must be
    that author's), and ListAuthors (every name one of the pairs')."""

    def __init__(self, pb, addr, pairs, threads=3, per_channel=20,
                 calls=200000, mixed=False):
        self.pb, self.addr, self.pairs = pb, addr, pairs
        self.per_channel, self.calls = per_channel, calls
        self.mixed = mixed
        self.authors = sorted({a for _, a in pairs})
        self.names = set(self.authors)
        self.n = 0
        self.lock = threading.Lock()
        self.ok = 0
        self.refused = []
        self.bad = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._guard)
                        for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _guard(self):
        try:
            self._run()
        except Exception as e:  # reported, not lost with the thread
            with self.lock:
                self.bad.append(f"load thread died: {e!r}")

    def _run(self):
        pb2, pb2_grpc = self.pb
        left = self.calls
        while left > 0 and not self.stop.is_set():
            with channel(self.addr) as ch:
                stub = pb2_grpc.QuoterStub(ch)
                for _ in range(min(self.per_channel, left)):
                    if self.stop.is_set():
                        return
                    left -= 1
                    self._one(stub, pb2)

    def _one(self, stub, pb2):
        with self.lock:
            self.n += 1
            turn = self.n % 3 if self.mixed else 0
            author = self.authors[self.n % len(self.authors)]
        try:
            if turn == 2:
                r = stub.ListAuthors(pb2.ListAuthorsRequest(), timeout=5)
                good = len(r.authors) > 0 and all(
                    a in self.names for a in r.authors)
            else:
                req = pb2.QuoteRequest(author=author if turn else "")
                r = stub.GetQuote(req, timeout=5)
                good = (r.quote, r.author) in self.pairs and (
                    turn == 0 or r.author == author)
            with self.lock:
                if good:
                    self.ok += 1
                else:
                    self.bad.append(f"wrong reply {r}")
        except grpc.RpcError as e:
            with self.lock:
                if e.code() in (grpc.StatusCode.CANCELLED,
                                grpc.StatusCode.UNAVAILABLE):
                    self.refused.append(e.details())
                else:
                    self.bad.append(f"{e.code()}: {e.details()} "
                                    f"{e.debug_error_string()}")

    def wait_for(self, n, what, timeout=30):
        start = self.ok
        wait_until(lambda: self.ok >= start + n or self.bad, timeout, what)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads)


# ------------------------------------------------------------- raw HTTP/2

class H2:
    """Just enough HTTP/2 to make one call (a Health Watch, say) and see
    the server's frames, answering PINGs only while `ack_pings` is set: a
    client that has gone silent, or (initial_window=0) one that will not
    take a reply, which no gRPC library can imitate."""

    def __init__(self, addr, initial_window=None):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=5)
        self.buf = b""
        self.ack_pings = True
        settings = b""
        if initial_window is not None:  # SETTINGS_INITIAL_WINDOW_SIZE
            settings = (4).to_bytes(2, "big") + initial_window.to_bytes(4, "big")
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
                          + self.frame(4, 0, 0, settings))

    @staticmethod
    def frame(ftype, flags, stream, payload=b""):
        return (len(payload).to_bytes(3, "big") + bytes([ftype, flags])
                + stream.to_bytes(4, "big") + payload)

    def call(self, path):
        def literal(name, value):  # HPACK: literal, not indexed, raw
            n, v = name.encode(), value.encode()
            return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v
        headers = b"".join(literal(k, v) for k, v in [
            (":method", "POST"), (":scheme", "http"),
            (":path", path), (":authority", "test"),
            ("content-type", "application/grpc"), ("te", "trailers")])
        # HEADERS (END_HEADERS), then an empty request message and
        # END_STREAM: the client has said all it will.
        self.sock.sendall(self.frame(1, 4, 1, headers)
                          + self.frame(0, 1, 1, b"\x00\x00\x00\x00\x00"))

    def watch(self):
        self.call("/grpc.health.v1.Health/Watch")

    def next_frame(self, deadline):
        """(type, flags, payload), None at end of connection, or fails at
        deadline."""
        while True:
            if len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) >= 9 + n:
                    f = (self.buf[3], self.buf[4], self.buf[9:9 + n])
                    self.buf = self.buf[9 + n:]
                    self._answer(*f)
                    return f
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail("no frame or close from the server in time")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return None
            if not data:
                return None
            self.buf += data

    def _answer(self, ftype, flags, payload):
        if ftype == 4 and not flags & 1:    # SETTINGS: ACK
            self.sock.sendall(self.frame(4, 1, 0))
        elif ftype == 6 and not flags & 1 and self.ack_pings:
            self.sock.sendall(self.frame(6, 1, 0, payload))

    def reply_headers(self, timeout=5):
        """Waits for the server's HEADERS frame on the call: it has the
        call. Initial metadata is not flow-controlled, so it comes even to
        a client with a window of 0."""
        deadline = time.monotonic() + timeout
        while True:
            f = self.next_frame(deadline)
            assert f is not None, "closed before the reply's HEADERS"
            if f[0] == 1:
                return

    def close(self):
        self.sock.close()


# ------------------------------------------------------------------- client

def run_quote(args, timeout=20):
    """Runs the C client; returns CompletedProcess (text). Fails on a
    sanitizer report in its stderr."""
    r = subprocess.run([str(QUOTE)] + list(args), capture_output=True,
                       timeout=timeout, env=child_env(), stdin=subprocess.DEVNULL)
    r.stdout = r.stdout.decode("utf-8", errors="replace")
    r.stderr = r.stderr.decode("utf-8", errors="replace")
    found = sanitizer_reports(r.stderr)
    assert not found, f"sanitizer report in quote's stderr:\n{r.stderr}"
    return r


def parse_lines(stdout):
    """`quote ~ author` lines -> [(quote, author)]. Names hold no '~', so
    the last ' ~ ' separates them."""
    out = []
    for line in stdout.splitlines():
        assert " ~ " in line, f"not a 'quote ~ author' line: {line!r}"
        q, a = line.rsplit(" ~ ", 1)
        out.append((q, a))
    return out
