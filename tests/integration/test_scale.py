"""Scaling by worker count: SIGTTIN and SIGTTOU change it (never below one)
while the service keeps answering, and the database's pages are shared by
all workers rather than copied into each."""

import os
import signal
import subprocess

from conftest import IMPORT, QUOTE, SRC, Load, child_env, wait_until


def test_ttin_ttou_change_the_count(quoterd, corpus, pb):
    d = quoterd(db=corpus.db)
    d.wait_ready(pb)
    d.wait_workers(2)
    load = Load(pb, d.addr, corpus.pairs)
    try:
        load.wait_for(100, "calls before scaling")
        d.send(signal.SIGTTIN)
        d.wait_workers(3)
        load.wait_for(100, "calls with 3 workers")
        assert not load.bad and not load.refused, (load.bad, load.refused)
        for want in (2, 1):
            d.send(signal.SIGTTOU)
            wait_until(lambda: len(d.workers()) == want, 15, f"{want} workers")
            load.wait_for(100, f"calls with {want} workers")
        # Never fewer than one.
        d.send(signal.SIGTTOU)
        wait_until(lambda: "keeping the last worker" in d.log(), 15,
                   "refusal to retire the last worker")
        load.wait_for(50, "calls with the last worker")
        assert len(d.workers()) == 1
        d.send(signal.SIGTTIN)
        d.wait_workers(2)
        load.wait_for(100, "calls after growing again")
    finally:
        load.finish()
    # Adding workers failed nothing. A retiring worker finishes the calls
    # it has; only a call that reaches it after its shutdown began may be
    # refused, never answered wrongly: gRPC core answers CANCELLED to a
    # stream that arrives as the server shuts down, and the kernel resets
    # connections still queued on its closing listener (unless
    # net.ipv4.tcp_migrate_req = 1 moves them to another worker). This
    # test reconnects every 20 calls, far more often than real clients.
    assert load.bad == [], load.bad[:5]
    assert len(load.refused) <= load.ok // 10, (len(load.refused), load.ok,
                                                load.refused[:5])
    log = d.log()
    for line in ("workers: 2 -> 3", "workers: 3 -> 2, retiring worker 2",
                 "workers: 2 -> 1, retiring worker 1", "workers: 1 -> 2"):
        assert line in log, log
    assert "retired: exited with status 0" in log, log
    assert d.stop() == 0, d.log()


def _smaps_db(pid, db):
    """(Rss, Private_Dirty) in KiB of pid's mappings of the file db."""
    rss = dirty = 0
    inside = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:
                inside = len(fields) >= 6 and fields[5] == str(db)
            elif inside and fields[0] == "Rss:":
                rss += int(fields[1])
            elif inside and fields[0] == "Private_Dirty:":
                dirty += int(fields[1])
    return rss, dirty


def _pss(pid):
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def test_database_pages_are_shared(quoterd, pb, tmp_path):
    # A database large enough that copies in every worker would show.
    txt, db = tmp_path / "big.txt", tmp_path / "big.mdb"
    with open(txt, "w") as f:
        subprocess.run(["/usr/bin/python3", str(SRC / "scripts" / "gen-corpus.py"),
                        "100000", "5000"], stdout=f, check=True, timeout=60)
    subprocess.run([str(IMPORT), "-q", "-o", str(db), str(txt)], check=True,
                   timeout=120)
    size_kib = os.path.getsize(db) // 1024
    d = quoterd(db=db, workers=4)
    d.wait_ready(pb)
    workers = d.wait_workers(4)
    # Touch the map in every worker: many connections, so each worker
    # gets some, and enough calls to fault in a good part of the file.
    procs = [subprocess.Popen([str(QUOTE), "-s", d.addr, "-n", "3000"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env=child_env())
             for _ in range(8)]
    try:
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    touched = 0
    for w in workers:
        rss, dirty = _smaps_db(w, db)
        # A read-only shared file mapping: never a private copy.
        assert dirty == 0, f"worker {w} has {dirty} KiB private dirty pages"
        touched += rss
    assert touched > 0
    total_pss = sum(_pss(p) for p in [d.pid] + workers)
    # Shared pages are split among the processes mapping them, so the
    # total stays near one database plus each process's own memory
    # (which AddressSanitizer's shadow memory swells beyond measure).
    if os.environ.get("QUOTERD_SANITIZE") != "1":
        assert total_pss < size_kib + 5 * 32 * 1024, \
            f"PSS {total_pss} KiB for a {size_kib} KiB database"
    assert d.stop() == 0, d.log()
