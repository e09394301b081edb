"""Hostile database files: a file can at most be refused.

Files are made from the bundled sample (etc/quotes.txt) and damaged on
purpose with lmdbfile.py: a stored value length that lies (past its page,
or wrapped to 0xffffffff), a node offset past its page, a child page past
the file, a flipped byte in the current meta page or in a root page, a
flipped byte in a quote's text, and a truncated copy. Then a seeded loop
of single flipped bytes over the whole file.

Each is tried as quoterd would meet it:
- `quoterd --test` and a start on it: exit status 1 with the path and a
  reason, never death by a signal;
- renamed over the served file under load (inotify, and SIGHUP with
  watch_database = no): refused with a reason in the log, zero failed
  calls, the same master and workers throughout (none died), and every
  reply a stored quote of the sample (GetQuote with and without an
  author, ListAuthors).
A flipped byte that changes nothing a reader sees (slack inside a page,
say) may be accepted: then it swaps, and replies are still the sample's;
a few flipped files of each verdict are also started on.

Then what is no database file at all (a FIFO, a directory, a device, a
socket), the sample with a sparse tail of 15 TB, the served file written
in place, and a checker that stops or is killed.
"""

import os
import random
import re
import signal
import socket
import struct
import subprocess

import pytest

from conftest import (SRC, IMPORT, Load, children_of,
                      comm, run_quoterd, tracer, wait_until)
from lmdbfile import P_BRANCH, LmdbFile, Page, MM_DBS, MDB_DB_SIZE, MD_ROOT

REFUSED = "new database refused; still serving generation"
GENERATION = re.compile(r"master: database generation \d+:")
TIMEOUT = 20.0


class Sample:
    def __init__(self, directory):
        self.db = directory / "sample.mdb"
        src = SRC / "etc" / "quotes.txt"
        r = __import__("subprocess").run(
            [str(IMPORT), "-q", "-o", str(self.db), str(src)],
            capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        self.bytes = self.db.read_bytes()
        self.pairs = set()
        for line in src.read_text(encoding="utf-8").splitlines():
            if line.strip():
                q, a = line.rsplit("~", 1)
                self.pairs.add((q.strip(), a.strip()))

    def lmdb(self):
        return LmdbFile(self.bytes)


@pytest.fixture(scope="module")
def sample(tmp_path_factory, binaries):
    return Sample(tmp_path_factory.mktemp("hostile"))


# ----------------------------------------------------------- crafted files

def quote_of(f, author):
    for n in f.records(b"quotes"):
        if author.encode() in f.data[n.value_offset:n.value_offset + n.dsize]:
            return n
    raise KeyError(author)


def lying_length(f):
    # The record's stored size runs past its page: a reader trusting it
    # would send what follows in memory.
    f.set_dsize(quote_of(f, "Harold Wilson"), 26500)


def wrapped_size(f):
    f.set_dsize(quote_of(f, "Harold Wilson"), 0xFFFFFFFF)


def node_past_page(f):
    leaf = f.leaves(f.named_root(b"quotes"))[0]
    f.set_ptr(leaf, 0, f.psize - 4)


def child_past_file(f):
    root = Page(f, f.named_root(b"quotes"))
    assert root.flags & P_BRANCH
    node = root.nodes()[-1]
    struct.pack_into("<HH", f.data, node.offset, 0xFFF0, 0x7FFF)


def meta_root_flip(f):
    f.data[f.meta_offset(MM_DBS + MDB_DB_SIZE + MD_ROOT)] ^= 0x40


def root_page_flip(f):
    root = f.named_root(b"authors")
    f.data[root * f.psize + 12] ^= 0x10        # mp_lower


def quote_text_flip(f):
    n = quote_of(f, "Harold Wilson")
    f.data[n.value_offset + 4] ^= 0x01         # a letter of the quote


def truncated(f):
    del f.data[len(f.data) // 2:]


CRAFTED = [lying_length, wrapped_size, node_past_page, child_past_file,
           meta_root_flip, root_page_flip, quote_text_flip, truncated]


def crafted(sample, how):
    f = sample.lmdb()
    how(f)
    return bytes(f.data)


# ---------------------------------------------------------------- helpers

def write(path, data):
    path.write_bytes(data)
    return path


def assert_refused(r, path):
    """A CompletedProcess of quoterd refusing the database at path."""
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert str(path) in r.stderr, r.stderr
    assert "signal" not in r.stderr, r.stderr


class Served:
    """The served path, and renames of crafted bytes onto it."""

    def __init__(self, directory, sample):
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = directory / "quotes.mdb"
        self.n = 0
        self.install(sample.bytes)

    def install(self, data):
        self.n += 1
        tmp = self.dir / f".tmp{self.n}"
        tmp.write_bytes(data)
        os.rename(tmp, self.path)


def outcomes(d):
    log = d.log()
    return log.count(REFUSED) + len(GENERATION.findall(log))


def serve_under_load(quoterd, pb, sample, tmp_path, config=None):
    served = Served(tmp_path / "served", sample)
    d = quoterd(db=served.path, config=config)
    d.wait_ready(pb)
    workers = d.workers()
    load = Load(pb, d.addr, sample.pairs, threads=2, mixed=True)
    load.wait_for(50, "calls before the first file")
    return served, d, workers, load


def install_and_wait(d, served, data, load, what, sighup=False):
    before = outcomes(d)
    calls = load.ok
    served.install(data)
    if sighup:
        d.send(signal.SIGHUP)
    wait_until(lambda: outcomes(d) > before, TIMEOUT,
               lambda: f"a verdict on {what}:\n{d.log()}")
    # Calls keep being answered after each file, from whatever serves.
    load.wait_for(20, f"calls after {what}")
    assert load.ok > calls


def assert_unharmed(d, workers, load):
    load.finish()
    assert load.bad == [], load.bad[:5]
    assert load.refused == [], load.refused[:5]   # zero failed calls
    assert d.proc.poll() is None, d.log()
    assert d.workers() == workers, d.log()       # no worker died
    assert "restarting it" not in d.log(), d.log()


# ------------------------------------------------------------------ tests

@pytest.mark.parametrize("how", CRAFTED, ids=[c.__name__ for c in CRAFTED])
def test_crafted_file_refused_by_test_and_at_start(quoterd, pb, sample,
                                                    tmp_path, how):
    path = write(tmp_path / "crafted.mdb", crafted(sample, how))
    assert_refused(run_quoterd(["--test", "--db", str(path)]), path)
    d = quoterd(db=path)
    log = d.expect_exit(1)
    assert str(path) in log and "signal" not in log, log


def test_crafted_files_refused_under_load(quoterd, pb, sample, tmp_path):
    served, d, workers, load = serve_under_load(quoterd, pb, sample, tmp_path)
    try:
        for how in CRAFTED:
            before = d.log().count(REFUSED)
            install_and_wait(d, served, crafted(sample, how), load,
                             how.__name__)
            assert d.log().count(REFUSED) == before + 1, \
                f"{how.__name__} was not refused:\n{d.log()}"
    finally:
        load.stop.set()
    assert_unharmed(d, workers, load)
    assert not GENERATION.search(d.log()), d.log()


def test_crafted_files_refused_on_sighup(quoterd, pb, sample, tmp_path):
    # With watch_database = no a file is met only through SIGHUP (or
    # --signal reload): the same check, the same refusals.
    served, d, workers, load = serve_under_load(
        quoterd, pb, sample, tmp_path, config="watch_database = no\n")
    try:
        by_sighup = f"master: SIGHUP: {served.path}: "
        for i, how in enumerate(CRAFTED):
            install_and_wait(d, served, crafted(sample, how), load,
                             how.__name__, sighup=True)
            refused = [x for x in d.log().splitlines() if REFUSED in x]
            assert len(refused) == i + 1, \
                f"{how.__name__} was not refused:\n{d.log()}"
            assert by_sighup in refused[-1], refused[-1]
    finally:
        load.stop.set()
    assert_unharmed(d, workers, load)
    assert not GENERATION.search(d.log()), d.log()


FLIPS = 40


def flips(sample):
    """FLIPS copies of the sample, each with one byte flipped somewhere
    in the pages LMDB uses (seeded, so a failure can be replayed)."""
    rng = random.Random(10)
    end = min(len(sample.bytes), sample.lmdb().used_pages() * sample.lmdb().psize)
    for _ in range(FLIPS):
        data = bytearray(sample.bytes)
        at = rng.randrange(end)
        data[at] ^= 1 << rng.randrange(8)
        yield at, bytes(data)


AT_START = 3   # flipped files of each verdict also started on


def test_flipped_bytes_refused_or_harmless(quoterd, pb, sample, tmp_path):
    tested = {0: [], 1: []}
    for i, (at, data) in enumerate(flips(sample)):
        path = write(tmp_path / f"flip{i}.mdb", data)
        r = run_quoterd(["--test", "--db", str(path)])
        assert r.returncode in (0, 1), (at, r.returncode, r.stderr)
        assert "signal" not in r.stderr, (at, r.stderr)
        tested[r.returncode].append((at, path))
    # The seed gives both kinds. A start on a refused file exits 1 with
    # the reason; one on an accepted file serves only stored quotes.
    assert len(tested[0]) >= AT_START and len(tested[1]) >= AT_START, tested
    for at, path in tested[1][:AT_START]:
        d = quoterd(db=path)
        log = d.expect_exit(1)
        assert str(path) in log and "signal" not in log, (at, log)
    for at, path in tested[0][:AT_START]:
        d = quoterd(db=path)
        d.wait_ready(pb)
        load = Load(pb, d.addr, sample.pairs, threads=1, mixed=True)
        try:
            load.wait_for(30, f"calls on the file flipped at byte {at}")
        finally:
            load.finish()
        assert load.bad == [] and load.refused == [], (at, load.bad[:5])
        d.stop_cleanly()

    served, d, workers, load = serve_under_load(quoterd, pb, sample, tmp_path)
    try:
        for at, data in flips(sample):
            install_and_wait(d, served, data, load, f"a flip at byte {at}")
    finally:
        load.stop.set()
    assert_unharmed(d, workers, load)
    print(f"{d.log().count(REFUSED)} of {FLIPS} flipped files refused")


# ------------------------------------------------- what is not a file at all

# Opening a FIFO for reading waits for a writer: without O_NONBLOCK the
# master would hang in open(), deaf to SIGTERM. Each of these must be
# refused as not a regular file, wherever it is met. A directory and a
# device cannot be renamed onto a file: a symlink to one can.
def fifo(path):
    os.mkfifo(path)


def directory(path):
    os.symlink(path.parent, path)


def device(path):
    os.symlink("/dev/null", path)


def unix_socket(path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(path))


NOT_FILES = {fifo: "a FIFO", directory: "a directory",
             device: "a character device", unix_socket: "a socket"}
BOUND = 10.0   # a hang fails the test after this long


@pytest.mark.parametrize("make", NOT_FILES, ids=[m.__name__ for m in NOT_FILES])
def test_not_a_file_refused_by_test_and_at_start(quoterd, tmp_path, make):
    path = tmp_path / "quotes.mdb"
    make(path)
    want = f"{path}: not a regular file but {NOT_FILES[make]}"
    try:
        r = run_quoterd(["--test", "--db", str(path)], timeout=BOUND)
    except subprocess.TimeoutExpired:
        pytest.fail(f"quoterd --test on {make.__name__} still running "
                    f"after {BOUND} s")
    assert_refused(r, path)
    assert want in r.stderr, r.stderr
    d = quoterd(db=path)
    log = d.expect_exit(1, timeout=BOUND)
    assert want in log, log


def test_not_a_file_refused_under_load(quoterd, pb, sample, tmp_path):
    served, d, workers, load = serve_under_load(quoterd, pb, sample, tmp_path)
    try:
        for make, kind in NOT_FILES.items():
            before = d.log().count(REFUSED)
            served.n += 1
            tmp = served.dir / f".tmp{served.n}"
            make(tmp)
            calls = load.ok
            os.rename(tmp, served.path)
            wait_until(lambda: d.log().count(REFUSED) > before, BOUND,
                       lambda: f"{make.__name__} refused:\n{d.log()}")
            assert f"{served.path}: not a regular file but {kind}; " \
                f"{REFUSED} 0" in d.log(), d.log()
            load.wait_for(20, f"calls after {make.__name__}")
            assert load.ok > calls
    finally:
        load.stop.set()
    assert_unharmed(d, workers, load)
    assert not GENERATION.search(d.log()), d.log()
    # The master still hears a stop: it is not stuck in open().
    d.send(signal.SIGTERM)
    assert d.wait_exit(BOUND) == 0, d.log()


# ------------------------------------------------ a file longer than its data

# The sample with a sparse tail of 15 TB (`truncate -s 15T`): every check
# of the pages passes, but each call thread of a worker maps the whole
# file, so workers could not map it and restarted in a loop. A file must
# end with its last page, as quotes-import writes it.
TAIL = 15 << 40
PAST = "run past its last page"


def extended(sample, path):
    path.write_bytes(sample.bytes)
    os.truncate(path, TAIL)
    return path


def test_file_past_its_last_page_refused(quoterd, pb, sample, tmp_path):
    path = tmp_path / "extended.mdb"
    tails = [path]  # 15 TB each, if sparse: not left in pytest's tmp dirs
    try:
        extended(sample, path)
        r = run_quoterd(["--test", "--db", str(path)])
        assert_refused(r, path)
        assert PAST in r.stderr, r.stderr
        d = quoterd(db=path)
        log = d.expect_exit(1)
        assert f"{path}: the file's {TAIL} bytes {PAST}" in log, log

        served, d, workers, load = serve_under_load(quoterd, pb, sample,
                                                    tmp_path)
        try:
            before = d.log().count(REFUSED)
            calls = load.ok
            tmp = served.dir / ".extended"
            # Renamed onto the served path: that is where it ends up.
            tails += [tmp, served.path]
            extended(sample, tmp)
            os.rename(tmp, served.path)
            wait_until(lambda: outcomes(d) > before, TIMEOUT,
                       lambda: f"a verdict on the extended file:\n{d.log()}")
            assert d.log().count(REFUSED) == before + 1, d.log()
            assert PAST in d.log(), d.log()
            load.wait_for(20, "calls after the extended file")
            assert load.ok > calls
        finally:
            load.stop.set()
        assert_unharmed(d, workers, load)
        assert not GENERATION.search(d.log()), d.log()
    finally:
        for p in tails:
            p.unlink(missing_ok=True)


# ------------------------------------------------- the served file rewritten

IN_PLACE = "was changed in place"


@pytest.mark.parametrize("how", ["inotify", "sighup"])
def test_served_file_changed_in_place_is_told(quoterd, pb, sample, tmp_path,
                                              how):
    # A write into the very file served (root can, whatever its mode) is
    # not a new file the old one keeps serving against: the master must
    # not log that it still serves generation 0, which is that file, but
    # say at error level what happened and what to do. A flipped letter
    # (refused: the quote's words no longer match the index) leaves every
    # page mapped where it was, so the workers live on, asked nothing.
    served = Served(tmp_path / "served", sample)
    d = quoterd(db=served.path, config="watch_database = no\n"
                if how == "sighup" else None)
    d.wait_ready(pb)
    n = quote_of(sample.lmdb(), "Harold Wilson")
    with open(served.path, "r+b") as f:
        f.seek(n.value_offset + 4)
        f.write(bytes([sample.bytes[n.value_offset + 4] ^ 1]))
    if how == "sighup":
        d.send(signal.SIGHUP)
    wait_until(lambda: IN_PLACE in d.log(), TIMEOUT,
               lambda: f"the in-place change told:\n{d.log()}")
    line = next(x for x in d.log().splitlines() if IN_PLACE in x)
    assert re.search(r" error \[\d+\] master: ", line), line
    assert f"{served.path}: " in line, line
    assert "Rename a good database onto the path" in line, line
    assert REFUSED not in d.log(), d.log()
    assert not GENERATION.search(d.log()), d.log()


# ------------------------------------------ a checker that hangs or is killed

class Injected:
    """strace attached to the running master and everything it forks from
    then on, with a fault injected into syscall, by default prlimit64:
    the checker's first
    system call after the fork (setrlimit(RLIMIT_CORE)). The master makes
    it only at start, but it is not the checker's alone: glibc's getrlimit
    is prlimit64 too, which a worker or the metrics process forked while
    strace is attached may call (the metrics process on each scrape). So
    attach only around the one check it is meant for, and detach as soon
    as that check is refused."""

    def __init__(self, pid, how, syscall="prlimit64"):
        self.proc = subprocess.Popen(
            ["strace", "-f", "-qq", "-o", "/dev/null", "-p", str(pid),
             "-e", f"trace={syscall}", "-e", f"inject={syscall}:{how}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        wait_until(lambda: tracer(pid) == self.proc.pid
                   or self.proc.poll() is not None, BOUND,
                   "strace to attach")
        assert self.proc.poll() is None, "strace could not attach"

    def detach(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(BOUND)


def checkers(d):
    return [p for p in children_of(d.pid) if comm(p) == "quoterd-check"]


# The check_timeout, if any: it holds for the next good check too, which
# must pass on a slow (sanitizer) build.
CHECKER_FAULTS = pytest.mark.parametrize("how,why,timeout", [
    ("signal=SIGSTOP", "the check took too long", 3),
    ("signal=SIGKILL", "the checker died of signal 9", None),
], ids=["past_check_timeout", "killed"])


@CHECKER_FAULTS
def test_checker_that_hangs_or_dies_refuses(quoterd, pb, sample, tmp_path,
                                            how, why, timeout):
    # A checker stopped (SIGSTOP; strace's delay_enter wedges strace
    # itself once the delayed tracee is killed) is killed after
    # check_timeout (3 s) and its file refused; a checker killed by a
    # signal is a refusal too. Either way the master goes on serving the
    # old data, and takes the next good file as usual.
    served = Served(tmp_path / "served", sample)
    d = quoterd(db=served.path,
                config=f"check_timeout = {timeout}\n" if timeout else None)
    d.wait_ready(pb)
    workers = d.workers()
    load = Load(pb, d.addr, sample.pairs, threads=2, mixed=True)
    try:
        load.wait_for(20, "calls before the file")
        strace = Injected(d.pid, how)
        try:
            served.install(sample.bytes)
            wait_until(lambda: REFUSED in d.log(), TIMEOUT,
                       lambda: f"the check refused:\n{d.log()}")
        finally:
            strace.detach()
        line = next(x for x in d.log().splitlines() if REFUSED in x)
        assert f"{served.path}: {why}" in line, line
        assert f"{REFUSED} 0" in line, line
        wait_until(lambda: not checkers(d), BOUND, "the checker to be gone")
        load.wait_for(20, "calls after the refusal")
    finally:
        load.stop.set()
    assert_unharmed(d, workers, load)
    assert not GENERATION.search(d.log()), d.log()
    # The master is well: the next file is checked and taken.
    served.install(sample.bytes)
    wait_until(lambda: GENERATION.search(d.log()), TIMEOUT,
               lambda: f"a swap after the refusal:\n{d.log()}")
    d.stop_cleanly()
