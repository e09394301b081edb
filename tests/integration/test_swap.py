"""Hot-swapping the database: quoterd serving one file while another is
renamed onto its path (as quotes-import does), or on SIGHUP.

- Under steady load from the C client and a Python client, 50 swaps
  alternating between two databases with disjoint author sets (A, B): no
  call fails, every reply is a pair from A or B, and once the master logs
  `database generation G: ... 2 of 2 workers switched`, new calls get the
  new set only. The swap latency (rename -> log line) is printed.
- SIGHUP and `quoterd --signal reload` swap a changed file.
- `quoterd --signal reload` returns once the reload is over, as systemd's
  ExecReload needs: 0 once every worker serves the new file (logged by
  then), 1 with the master's reason for a refused file or a worker that
  did not switch.
- A corrupt or truncated replacement is refused and the old data keeps
  being served, also by workers respawned after it, and after the file
  is deleted.
- watch_database = no: a rename is ignored until SIGHUP.
- After 100 swaps each worker maps at most two database files (the
  current one among them) and the master holds one database descriptor;
  a worker holds no descriptor to a replaced file it no longer maps.
- Back-to-back swaps: a generation line saying every worker switched is
  logged only once every worker has opened that generation's file.

Each test serves a private copy of a database from a directory of its
own (so that /proc/PID/maps and /proc/PID/fd can be filtered by that
directory), and swaps by copying a prepared file to a temporary name in
that directory and renaming it onto the served path. Every wait is a
bounded poll.
"""

import os
import random
import re
import shutil
import signal
import statistics
import threading
import time

import grpc
import pytest

from conftest import (AUTHORS, channel, get_quote, make_corpus, parse_lines,
                      reload_command, run_quote, run_quoterd, wait_until)

# Generation lines, as the master logs them once every worker reported.
GEN_LINE = re.compile(
    r"master: database generation (\d+): (.*): (\d+) quotes, (\d+) authors; "
    r"(\d+) of (\d+) workers switched in (\d+) ms(.*)$", re.M)
REFUSED = "new database refused; still serving generation"
# How long a swap may take before it counts as lost (the daemon's own
# report deadline is 5 s; this is generous on a loaded 2-core machine).
SWAP_TIMEOUT = 10.0
# A tight poll for the log line: the measured latency should be the
# daemon's, not ours.
LOG_POLL = 0.0005


# ------------------------------------------------------------------ helpers

class Databases:
    """Two prepared databases with disjoint author sets."""

    def __init__(self, root):
        half = len(AUTHORS) // 2
        # Different quote counts too, so the two files differ in their
        # counts in the generation line as well as in their authors.
        self.a = make_corpus(root / "A", {n: 2 for n in AUTHORS[:half]}, seed=2)
        self.b = make_corpus(root / "B", {n: 3 for n in AUTHORS[half:]}, seed=3)
        assert not set(self.a.authors) & set(self.b.authors)

    def which(self, pair):
        """'A', 'B' or None (a reply from neither: always a failure)."""
        if pair in self.a.pairs:
            return "A"
        if pair in self.b.pairs:
            return "B"
        return None

    def corpus(self, name):
        return self.a if name == "A" else self.b


@pytest.fixture(scope="module")
def dbs(tmp_path_factory, binaries):
    return Databases(tmp_path_factory.mktemp("swapdbs"))


class Served:
    """The served path, alone in its directory, and swaps onto it."""

    def __init__(self, directory, first):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.dir_real = os.path.realpath(self.dir)
        self.path = self.dir / "quotes.mdb"
        self.n = 0
        self.install(first)

    def _rename_in(self, write):
        # What quotes-import does: a complete file under another name in
        # the same directory, then one atomic rename onto the path.
        self.n += 1
        tmp = self.dir / f".quotes.mdb.tmp{self.n}"
        write(tmp)
        os.rename(tmp, self.path)
        return time.monotonic()

    def install(self, src):
        """Renames a fresh copy of src onto the path; returns the time of
        the rename. A copy, so every swap brings a new inode."""
        return self._rename_in(lambda tmp: shutil.copyfile(src, tmp))

    def install_bytes(self, data):
        return self._rename_in(lambda tmp: tmp.write_bytes(data))

    def inode(self):
        return os.stat(self.path).st_ino

    def _in_dir(self, target):
        if target.endswith(" (deleted)"):
            target = target[:-len(" (deleted)")]
        return os.path.dirname(target) == self.dir_real

    def mapped(self, pid):
        """Inodes of the files in the served directory that pid maps."""
        inodes = set()
        with open(f"/proc/{pid}/maps") as f:
            for line in f:
                # start-end perms offset dev inode [path]
                parts = line.rstrip("\n").split(None, 5)
                if len(parts) == 6 and self._in_dir(parts[5]):
                    inodes.add(int(parts[4]))
        return inodes

    def fds(self, pid):
        """Inodes of pid's descriptors on files in the served directory,
        one entry per descriptor."""
        out = []
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if self._in_dir(target):
                    out.append(os.stat(f"/proc/{pid}/fd/{fd}").st_ino)
            except FileNotFoundError:
                pass  # closed meanwhile (gRPC's own descriptors come and go)
        return out


def generations(d):
    """{generation: match} of every generation line logged so far."""
    return {int(m.group(1)): m for m in GEN_LINE.finditer(d.log())}


def wait_generation(d, gen, since, corpus=None, workers=2):
    """Waits for the line of generation gen; checks it names the served
    path, every worker switched and, given corpus, its counts. Returns
    the seconds from since (a monotonic time) to the line being seen."""
    deadline = time.monotonic() + SWAP_TIMEOUT
    while True:
        m = generations(d).get(gen)
        if m:
            seen = time.monotonic()
            break
        if d.proc.poll() is not None:
            pytest.fail(f"quoterd exited {d.proc.returncode} waiting for "
                        f"generation {gen}:\n{d.log()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no 'database generation {gen}' line within "
                        f"{SWAP_TIMEOUT} s:\n{d.log()[-4000:]}")
        time.sleep(LOG_POLL)
    line = m.group(0)
    assert m.group(5) == m.group(6) == str(workers), line
    assert m.group(8) == "", line
    if corpus is not None:
        assert int(m.group(3)) == len(corpus.pairs), line
        assert int(m.group(4)) == len(corpus.authors), line
    return seen - since


def fresh_calls(pb, addr, n):
    """n GetQuote calls, each on a new channel (so a new connection, and
    SO_REUSEPORT spreads them over the workers)."""
    return [get_quote(pb, addr) for _ in range(n)]


def assert_all_from(dbs, name, pairs, d):
    wrong = [(p, dbs.which(p)) for p in pairs if dbs.which(p) != name]
    assert wrong == [], (f"{len(wrong)} of {len(pairs)} replies not from "
                         f"{name}: {wrong[:3]}\n{d.log()[-3000:]}")


def refusals(d):
    return d.log().count(REFUSED)


def sighup_config():
    # Swaps only on SIGHUP: lets a test change the file without a swap.
    return "watch_database = no\n"


def start(quoterd, pb, served, **kw):
    d = quoterd(db=served.path, **kw)
    d.wait_ready(pb)
    d.wait_workers(2)
    return d


# ------------------------------------------------------ swaps under load

class Load:
    """The two checking clients, each on its own thread, until stop()."""

    def __init__(self, d, dbs, pb):
        self.d, self.dbs, self.pb = d, dbs, pb
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.errors = []                   # failed calls and runs
        self.wrong = []                    # replies from neither A nor B
        self.seen = {"C": set(), "py": set()}   # sets each client saw
        self.calls = {"C": 0, "py": 0}
        self.threads = [threading.Thread(target=self._guard, args=(f,))
                        for f in (self._c_client, self._py_client)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        for t in self.threads:
            t.join(60)
        assert not any(t.is_alive() for t in self.threads)

    def _guard(self, f):
        # A failed assertion on a thread would otherwise vanish.
        try:
            f()
        except Exception as e:  # noqa: BLE001 - reported by the test
            with self.lock:
                self.errors.append(f"{f.__name__}: {e!r}")

    def _record(self, who, pairs):
        with self.lock:
            self.calls[who] += len(pairs)
            for p in pairs:
                name = self.dbs.which(p)
                if name is None:
                    self.wrong.append((who, p))
                else:
                    self.seen[who].add(name)

    def _c_client(self):
        # The C client: 200 calls on one connection per run, run again
        # and again.
        while not self.done.is_set():
            r = run_quote(["-s", self.d.addr, "-n", "200", "-t", "5"],
                          timeout=60)
            if r.returncode != 0:
                with self.lock:
                    self.errors.append(f"quote exited {r.returncode}: "
                                       f"{r.stderr.strip()}")
                continue
            pairs = parse_lines(r.stdout)
            if len(pairs) != 200:
                with self.lock:
                    self.errors.append(f"quote printed {len(pairs)} lines")
            self._record("C", pairs)

    def _py_client(self):
        # grpcio: calls back to back, a new channel every 50 calls so that
        # both workers are exercised on long-lived and new connections.
        pb2, pb2_grpc = self.pb
        while not self.done.is_set():
            with channel(self.d.addr) as ch:
                stub = pb2_grpc.QuoterStub(ch)
                for _ in range(50):
                    if self.done.is_set():
                        return
                    try:
                        r = stub.GetQuote(pb2.QuoteRequest(), timeout=5)
                    except grpc.RpcError as e:
                        with self.lock:
                            self.errors.append(f"GetQuote: {e.code()}: "
                                               f"{e.details()}")
                        continue
                    self._record("py", [(r.quote, r.author)])


def test_swaps_under_load(quoterd, dbs, pb, tmp_path):
    served = Served(tmp_path / "served", dbs.a.db)
    d = start(quoterd, pb, served)
    workers = d.workers()
    current, gen = "A", 0
    latencies, reported = [], []
    with Load(d, dbs, pb) as load:
        # Both clients running before the first swap.
        wait_until(lambda: load.calls["C"] >= 200 and load.calls["py"] >= 50
                   or load.errors, 30, lambda: f"load to start: {load.calls}")
        for i in range(50):
            current = "B" if current == "A" else "A"
            t = served.install(dbs.corpus(current).db)
            gen += 1
            latencies.append(wait_generation(d, gen, t, dbs.corpus(current)))
            reported.append(int(generations(d)[gen].group(7)))
            # Every new call now comes from the new set, on any worker.
            assert_all_from(dbs, current, fresh_calls(pb, d.addr, 10), d)
            if i % 10 == 9:
                # Mixed in: a forced reload of the same file, still under
                # load, must leave the data as it is.
                t = time.monotonic()
                d.send(signal.SIGHUP)
                gen += 1
                wait_generation(d, gen, t, dbs.corpus(current))
                assert_all_from(dbs, current, fresh_calls(pb, d.addr, 10), d)
        # The clients keep going a little after the last swap.
        mark = dict(load.calls)
        wait_until(lambda: all(load.calls[k] > mark[k] for k in mark)
                   or load.errors, 30, "calls after the last swap")

    print(f"\nswap latency over {len(latencies)} renames (rename -> log "
          f"line seen): min {min(latencies) * 1000:.1f} ms, median "
          f"{statistics.median(latencies) * 1000:.1f} ms, max "
          f"{max(latencies) * 1000:.1f} ms; as logged by the master: min "
          f"{min(reported)} ms, median {statistics.median(reported)} ms, max "
          f"{max(reported)} ms; calls: {load.calls}")
    assert load.errors == [], f"{len(load.errors)} failures: {load.errors[:5]}"
    assert load.wrong == [], f"{len(load.wrong)} wrong replies: {load.wrong[:5]}"
    # Both clients really ran across swaps: each saw both databases.
    assert load.seen == {"C": {"A", "B"}, "py": {"A", "B"}}, load.seen
    assert max(latencies) < SWAP_TIMEOUT
    # Swapping never restarts a worker.
    assert d.workers() == workers, d.log()
    d.stop_cleanly()


# ------------------------------------------------------- reload by signal

def reload_by_kill(d, pidfile):
    os.kill(d.pid, signal.SIGHUP)


def reload_by_flag(d, pidfile):
    r = run_quoterd(["--pidfile", str(pidfile), "--signal", "reload"])
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("reload", [reload_by_kill, reload_by_flag],
                         ids=["kill-HUP", "signal-reload"])
def test_reload_by_signal_swaps_changed_file(quoterd, dbs, pb, tmp_path, reload):
    # watch_database = no, so that the swap can only be the signal's doing.
    served = Served(tmp_path / "served", dbs.a.db)
    pidfile = tmp_path / "quoterd.pid"
    d = start(quoterd, pb, served, config=sighup_config(),
              extra=["--pidfile", str(pidfile)])
    workers = d.workers()
    for gen, name in ((1, "B"), (2, "A")):
        served.install(dbs.corpus(name).db)
        t = time.monotonic()
        reload(d, pidfile)
        wait_generation(d, gen, t, dbs.corpus(name))
        assert_all_from(dbs, name, fresh_calls(pb, d.addr, 10), d)
    assert d.workers() == workers


def test_signal_reload_returns_when_swapped(quoterd, dbs, pb, tmp_path):
    """The command's answer comes once every worker serves the new file:
    the generation line is in the log by the time it returns (a command
    that only sent SIGHUP returns before the master has logged it)."""
    served = Served(tmp_path / "served", dbs.a.db)
    pidfile = tmp_path / "quoterd.pid"
    d = start(quoterd, pb, served, config=sighup_config(),
              extra=["--pidfile", str(pidfile)])
    for gen, name in ((1, "B"), (2, "A")):
        served.install(dbs.corpus(name).db)
        r = reload_command(pidfile)
        gens = generations(d)  # read as the command returns, no waiting
        assert r.returncode == 0, r.stderr + d.log()
        assert gen in gens, f"returned before the swap:\n{d.log()}"
        assert gens[gen].group(5) == gens[gen].group(6) == "2", d.log()
        assert f"database generation {gen}: " in r.stdout, r.stdout
        assert_all_from(dbs, name, fresh_calls(pb, d.addr, 10), d)
    d.stop_cleanly()


def test_signal_reload_waits_for_every_worker(quoterd, dbs, pb, tmp_path):
    """A worker that cannot switch (stopped here) holds the answer until
    the master's report deadline, and makes it a failure that says how
    many switched."""
    served = Served(tmp_path / "served", dbs.a.db)
    pidfile = tmp_path / "quoterd.pid"
    # --worker-timeout 0: the stopped worker must not be killed (after
    # the default 10 s) and replaced while the reload waits for it.
    d = start(quoterd, pb, served, config=sighup_config(),
              extra=["--pidfile", str(pidfile), "--worker-timeout", "0"])
    stopped = d.workers()[0]
    served.install(dbs.b.db)
    os.kill(stopped, signal.SIGSTOP)
    try:
        r = reload_command(pidfile)
        log = d.log()
    finally:
        os.kill(stopped, signal.SIGCONT)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "1 of 2 workers switched" in r.stderr, r.stderr
    assert generations(d)[1].group(5) == "1", log
    d.stop_cleanly()


def test_signal_reload_answered_when_stopping(quoterd, dbs, pb, tmp_path):
    """A reload asked of a master that is stopping is answered at once,
    not after the drain: a stopped worker keeps this master in its stop
    meanwhile. Whichever signal the master reads first, the answer says
    it is stopping."""
    served = Served(tmp_path / "served", dbs.a.db)
    pidfile = tmp_path / "quoterd.pid"
    d = start(quoterd, pb, served, config=sighup_config(),
              extra=["--pidfile", str(pidfile)])
    stopped = d.workers()[0]
    os.kill(stopped, signal.SIGSTOP)
    try:
        d.send(signal.SIGTERM)
        r = reload_command(pidfile)
    finally:
        os.kill(stopped, signal.SIGCONT)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "quoterd is stopping" in r.stderr, r.stderr
    d.wait_exit()


def test_signal_reload_refused_says_why(quoterd, dbs, pb, tmp_path):
    served = Served(tmp_path / "served", dbs.a.db)
    pidfile = tmp_path / "quoterd.pid"
    d = start(quoterd, pb, served, config=sighup_config(),
              extra=["--pidfile", str(pidfile)])
    served.install_bytes(random.Random(7).randbytes(65536))
    r = reload_command(pidfile)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "reload refused" in r.stderr, r.stderr
    assert f"{served.path}: " in r.stderr and f"{REFUSED} 0" in r.stderr, \
        r.stderr
    assert refusals(d) == 1, d.log()
    assert_all_from(dbs, "A", fresh_calls(pb, d.addr, 10), d)
    # A plain SIGHUP still reloads, unanswered, once the file is good.
    served.install(dbs.b.db)
    t = time.monotonic()
    d.send(signal.SIGHUP)
    wait_generation(d, 1, t, dbs.b)
    d.stop_cleanly()


def test_sighup_reloads_unchanged_file(quoterd, dbs, pb, tmp_path):
    # SIGHUP forces a reload even with the file as it was (and watching on).
    served = Served(tmp_path / "served", dbs.a.db)
    d = start(quoterd, pb, served)
    t = time.monotonic()
    d.send(signal.SIGHUP)
    wait_generation(d, 1, t, dbs.a)
    assert_all_from(dbs, "A", fresh_calls(pb, d.addr, 10), d)


# ----------------------------------------------------------- bad databases

def master_db_inode(d, served):
    fds = served.fds(d.pid)
    assert len(fds) == 1, f"master holds {len(fds)} database fds: {fds}"
    return fds[0]


def replace_workers(d, pb, served, good_inode):
    """SIGKILLs each worker in turn and waits for its replacement; checks
    every replacement maps the last good file. Afterwards every serving
    worker is one started after the change."""
    for victim in d.workers():
        os.kill(victim, signal.SIGKILL)
        after = d.wait_workers(2, exclude=[victim])
        for pid in after:
            # Mapped once it has opened the database, before it serves.
            wait_until(lambda: good_inode in served.mapped(pid), 10,
                       lambda: f"worker {pid} to map inode {good_inode} "
                       f"(maps {served.mapped(pid)}):\n{d.log()[-3000:]}")
    d.wait_ready(pb)


def test_bad_database_refused(quoterd, dbs, pb, tmp_path):
    served = Served(tmp_path / "served", dbs.a.db)
    d = start(quoterd, pb, served)
    workers = d.workers()
    good = served.inode()
    assert master_db_inode(d, served) == good

    bad_files = {
        "random bytes": random.Random(7).randbytes(65536),
        "truncated copy": dbs.b.db.read_bytes()[:dbs.b.db.stat().st_size // 2],
    }
    for what, data in bad_files.items():
        before = refusals(d)
        served.install_bytes(data)
        wait_until(lambda: refusals(d) > before, SWAP_TIMEOUT,
                   lambda: f"the {what} file to be refused:\n{d.log()}")
        log = d.log()
        # The reason names the path; the data and generation are unchanged.
        assert re.search(rf"warn .*master: .*: {re.escape(str(served.path))}: "
                         r"\S", log), log
        assert f"{REFUSED} 0" in log, log
        assert_all_from(dbs, "A", fresh_calls(pb, d.addr, 20), d)
        assert master_db_inode(d, served) == good
    assert generations(d) == {}, d.log()
    assert d.workers() == workers  # a refused file never reaches a worker

    # Workers started after the bad file was renamed in get the last good
    # database, not the file at the path.
    replace_workers(d, pb, served, good)
    assert_all_from(dbs, "A", fresh_calls(pb, d.addr, 20), d)

    # Even with no file at the path at all.
    os.unlink(served.path)
    replace_workers(d, pb, served, good)
    assert_all_from(dbs, "A", fresh_calls(pb, d.addr, 20), d)
    assert master_db_inode(d, served) == good

    # And a good file renamed in afterwards is taken as usual.
    t = served.install(dbs.b.db)
    wait_generation(d, 1, t, dbs.b)
    assert_all_from(dbs, "B", fresh_calls(pb, d.addr, 20), d)
    assert master_db_inode(d, served) == served.inode()
    d.stop_cleanly()


# -------------------------------------------------------- watching is off

def test_watch_database_no_ignores_rename(quoterd, dbs, pb, tmp_path):
    served = Served(tmp_path / "served", dbs.a.db)
    d = start(quoterd, pb, served, config=sighup_config())
    served.install(dbs.b.db)
    # A bounded negative check: ~50 calls spread over ~1 s, none of them
    # from the renamed-in file.
    pairs = []
    for _ in range(50):
        pairs += fresh_calls(pb, d.addr, 1)
        time.sleep(0.02)
    assert_all_from(dbs, "A", pairs, d)
    assert generations(d) == {}, d.log()

    t = time.monotonic()
    d.send(signal.SIGHUP)
    wait_generation(d, 1, t, dbs.b)
    assert_all_from(dbs, "B", fresh_calls(pb, d.addr, 10), d)


# ------------------------------------------------------- memory after swaps

def test_mappings_bounded_after_many_swaps(quoterd, dbs, pb, tmp_path):
    # Watching off and a new copy before every SIGHUP: each of the 100
    # swaps brings a new inode, so a leaked map would show as one more
    # distinct file in /proc/PID/maps.
    served = Served(tmp_path / "served", dbs.a.db)
    d = start(quoterd, pb, served, config=sighup_config())
    workers = d.workers()
    name = "A"
    for gen in range(1, 101):
        name = "B" if name == "A" else "A"
        served.install(dbs.corpus(name).db)
        t = time.monotonic()
        d.send(signal.SIGHUP)
        wait_generation(d, gen, t, dbs.corpus(name))
        if gen % 10 == 0:
            # Some swaps with calls in between, some with idle workers
            # (which hold their previous map until their next call).
            assert_all_from(dbs, name, fresh_calls(pb, d.addr, 3), d)
    assert d.workers() == workers

    current = served.inode()
    assert_all_from(dbs, name, fresh_calls(pb, d.addr, 10), d)
    for pid in workers:
        maps = served.mapped(pid)
        assert len(maps) <= 2 and current in maps, (
            f"worker {pid} maps {len(maps)} database files {maps}, current "
            f"{current}")
    assert master_db_inode(d, served) == current

    # Once a worker has had a call and its replies are released, only the
    # current file is left. Keep making calls (new connections land on
    # either worker) until that holds for both.
    def settled():
        get_quote(pb, d.addr)
        return all(served.mapped(pid) == {current} for pid in workers)
    wait_until(settled, 10, lambda: "only the current file mapped: " + str(
        {pid: served.mapped(pid) for pid in workers}))
    d.stop_cleanly()


def test_workers_hold_no_replaced_file_open(quoterd, dbs, pb, tmp_path):
    # A replaced database's disk space comes back only once nothing holds
    # it: a worker may hold a database file open only as one of its open
    # databases (the ones it maps), never a stray descriptor to a file
    # that was replaced long ago (such as one inherited across fork).
    served = Served(tmp_path / "served", dbs.a.db)
    d = start(quoterd, pb, served, config=sighup_config())
    workers = d.workers()
    name = "A"
    for gen in (1, 2, 3):
        name = "B" if name == "A" else "A"
        served.install(dbs.corpus(name).db)
        t = time.monotonic()
        d.send(signal.SIGHUP)
        wait_generation(d, gen, t, dbs.corpus(name))
        assert_all_from(dbs, name, fresh_calls(pb, d.addr, 10), d)
    for pid in workers:
        # LMDB keeps the file it maps open: seen here, so fds() sees.
        assert served.inode() in served.fds(pid), served.fds(pid)
        stray = set(served.fds(pid)) - served.mapped(pid)
        assert stray == set(), (
            f"worker {pid} holds database files it does not map (inodes "
            f"{stray}; current {served.inode()}): "
            + str({fd: os.readlink(f"/proc/{pid}/fd/{fd}")
                   for fd in os.listdir(f"/proc/{pid}/fd")
                   if "quotes.mdb" in os.readlink(f"/proc/{pid}/fd/{fd}")}))


# ------------------------------------------------------ back-to-back swaps

RELOAD_LINE = re.compile(r"\[(\d+)\] worker \d+: reload: .*: (\d+) quotes$")


def test_back_to_back_swaps_reported_only_when_switched(quoterd, dbs, pb,
                                                        tmp_path):
    # Two renames a moment apart (two imports in a row) start a second
    # swap while the first one's reports may still be on their way. The
    # generation line must still mean what it says: when the master logs
    # "N of N workers switched" for generation G, every worker has opened
    # G's file. With log_level = debug each worker logs `reload: PATH: Q
    # quotes` after opening the file and before reporting, so the log
    # order shows what each worker had opened when the master logged.
    served = Served(tmp_path / "served", dbs.a.db)
    final = make_corpus(tmp_path / "C", {"Final Author": 4})
    d = start(quoterd, pb, served, config="log_level = debug\n")
    workers = d.workers()
    rng = random.Random(5)
    for _ in range(100):
        served.install(dbs.b.db)
        pause = time.perf_counter() + rng.uniform(0, 0.0006)
        while time.perf_counter() < pause:  # sub-millisecond gap
            pass
        served.install(dbs.a.db)
        time.sleep(0.003)  # pacing between pairs, not a readiness wait
    # Then one last, unhurried swap to a third database: every worker
    # ends up on it.
    served.install(final.db)
    wait_until(lambda: any(int(m.group(3)) == len(final.pairs) and
                           m.group(5) == m.group(6) == "2"
                           for m in GEN_LINE.finditer(d.log())),
               SWAP_TIMEOUT, lambda: f"the final swap:\n{d.log()[-3000:]}")
    assert {a for _, a in fresh_calls(pb, d.addr, 10)} == {"Final Author"}
    assert d.workers() == workers

    opened = {}   # worker pid -> quote count of the file it last opened
    early = []
    lines = d.log().splitlines()
    for n, line in enumerate(lines):
        m = RELOAD_LINE.search(line)
        if m:
            opened[int(m.group(1))] = int(m.group(2))
        m = GEN_LINE.search(line)
        if m and m.group(5) == m.group(6):
            stale = {p: q for p, q in opened.items()
                     if q != int(m.group(3))}
            if stale:
                early.append("\n".join(lines[max(0, n - 6):n + 1]) +
                             f"\n  -> workers still on another file: {stale}")
    gens = len(GEN_LINE.findall(d.log()))
    # The check below means something only if the log showed every
    # worker opening files, the last of them the final one.
    assert gens > 0 and set(opened) == set(workers), (opened, workers)
    assert all(q == len(final.pairs) for q in opened.values()), opened
    assert early == [], (
        f"{len(early)} of {gens} generation lines said every worker had "
        f"switched before every worker had opened the new file; first:\n"
        + "\n".join(early[:2]))
    d.stop_cleanly()


def test_signal_reload_unacknowledged_does_not_wait(tmp_path):
    """A master that does not acknowledge the marked SIGHUP (one older
    than the protocol, or a SIGHUP already pending that swallowed this
    one) gets the signal, and the command says it cannot wait instead of
    failing after a long wait: an upgrade's new ExecReload= meets the old
    master that way."""
    import subprocess
    import sys
    pidfile = tmp_path / "old.pid"
    # It holds its pidfile's lock, as a running master does.
    old = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, signal, sys\n"
         "f = open(sys.argv[1], 'w')\n"
         "fcntl.flock(f, fcntl.LOCK_EX)\n"
         "f.write(f'{os.getpid()}\\n'); f.flush()\n"
         "seen = []\n"
         "signal.signal(signal.SIGHUP, lambda *a: seen.append(1))\n"
         "print('ready', flush=True)\n"
         "while not seen: signal.pause()\n"
         "print('got SIGHUP', flush=True)\n", str(pidfile)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert old.stdout.readline() == "ready\n"
        r = reload_command(pidfile)
        assert r.returncode == 0, r.stderr
        assert "did not acknowledge" in r.stderr, r.stderr
        assert old.stdout.readline() == "got SIGHUP\n"
    finally:
        old.kill()
        old.wait()
