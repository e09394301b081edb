#!/usr/bin/python3
"""quoterd's benchmark: `make bench` runs it.

Generates a corpus of N quotes, imports it (quotes/s), then for each
worker count W and call-thread count T runs quoterd under h2load and
measures requests/s, p50 and
p99 latency, server CPU microseconds per call and the RSS and PSS of all
quoterd processes; and the time from start to the first answered call for
a small and a large database. Writes RESULTS.md and throughput.png
(gnuplot) into the directory of --out: build/bench/ unless told
otherwise (`make bench UPDATE=1` names bench/). Its temporary files,
some hundred MB for the large database, are removed at the end.

h2load sees only HTTP status, so each run also checks a sample of replies
with the quote client.

Filtered GetQuote calls (issue #15) are measured beside the plain one on a
database of --filter-quotes (default --big) quotes, tagged: a common one-word query, a
length range, a tag, each as a serialized QuoteRequest in a gRPC frame,
with server CPU a call under h2load and instructions a call under
callgrind. --filters-only measures just those.

Metrics on against off (issue #13): server CPU a call of servers side by
side, metrics off, on, and off again (a control: the noise), in rounds
taken in turn, and (unless --no-callgrind) instructions a call under
callgrind. --metrics-only measures just those.
"""
import argparse
import itertools
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get('QUOTERD_BUILD', os.path.join(ROOT, 'build'))
TICK = os.sysconf('SC_CLK_TCK')


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def gen_corpus(n, path):
    with open(path, 'w') as f:
        subprocess.run([sys.executable, os.path.join(ROOT, 'scripts', 'gen-corpus.py'), str(n)],
                       stdout=f, check=True)


def import_db(txt, db, extra=()):
    t = time.monotonic()
    subprocess.run([os.path.join(BUILD, 'quotes-import'), '-q', '-o', db, *extra, txt],
                   check=True)
    return time.monotonic() - t


def varint(n):
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7f | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def quote_request(query='', min_length=0, max_length=0, tags=()):
    """A QuoteRequest serialized by hand (field numbers of
    proto/quote_service.proto), in a gRPC frame: uncompressed, length."""
    body = b''
    if min_length:
        body += b'\x10' + varint(min_length)
    if max_length:
        body += b'\x18' + varint(max_length)
    if query:
        q = query.encode()
        body += b'\x22' + varint(len(q)) + q
    for t in tags:
        body += b'\x2a' + varint(len(t)) + t.encode()
    return b'\0' + len(body).to_bytes(4, 'big') + body


FILTERS = [('plain (empty request)', {}),
           ('one common word, query "wise"', {'query': 'wise'}),
           ('length range 100..110', {'min_length': 100, 'max_length': 110}),
           ('tag "bench" (every quote)', {'tags': ['bench']})]


def filter_cost(a, tmp, log, measure):
    """CPU and instructions a call, plain against filtered."""
    txt, db = os.path.join(tmp, 'f.txt'), os.path.join(tmp, 'f.mdb')
    gen_corpus(a.filter_quotes, txt)
    import_db(txt, db, ['--tag', 'bench'])
    os.unlink(txt)
    lines = ['', f'GetQuote with filters, {a.filter_quotes:,} quotes (all tagged "bench"), one '
             'worker, one call thread: server CPU a call under h2load as above, and instructions '
             'a call from callgrind (the difference between 2,000 and 6,000 calls).', '',
             '| request | server CPU us/call | instructions a call | against plain |',
             '| --- | --- | --- | --- |']
    plain = None
    for name, kw in FILTERS:
        req = os.path.join(tmp, 'freq.bin')
        with open(req, 'wb') as f:
            f.write(quote_request(**kw))
        # Its checker reads the whole database first.
        s = Server(db, 1, 1, wait=300)
        try:
            med, failed = measure(s, req)
        finally:
            s.stop()
        if a.callgrind:
            lo = callgrind_instructions(db, req, log, tmp, 2000, False)
            hi = callgrind_instructions(db, req, log, tmp, 6000, False)
            per = (hi - lo) / 4000
            plain = plain or per
            counted = f'{per:,.0f} | {per / plain:.2f}x'
        else:
            counted = '| '
        lines.append(f'| {name} | {med[3]:.1f} | {counted} |'
                     + (f' {failed} calls failed |' if failed else ''))
        print(lines[-1], flush=True)
    os.unlink(db)
    return lines


def tree(pid):
    pids = [pid]
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                with open(f'/proc/{d}/stat') as f:
                    if int(f.read().rsplit(')', 1)[1].split()[1]) == pid:
                        pids.append(int(d))
            except OSError:
                pass
    return pids


def cpu_ticks(pids):
    total = 0
    for p in pids:
        try:
            with open(f'/proc/{p}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def cpu_ns(pids):
    """(ns on a CPU, thread ids) of every thread of pids, from schedstat:
    exact where /proc/PID/stat counts 10 ms ticks, but blind to threads
    that end (so only to be believed when the threads stayed the same)."""
    total, tids = 0, set()
    for p in pids:
        try:
            tasks = os.listdir(f'/proc/{p}/task')
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f'/proc/{p}/task/{t}/schedstat') as f:
                    total += int(f.read().split()[0])
                tids.add(int(t))
            except (OSError, ValueError, IndexError):
                pass
    return total, tids


def memory_kib(pids):
    rss = pss = 0
    for p in pids:
        try:
            with open(f'/proc/{p}/smaps_rollup') as f:
                for line in f:
                    if line.startswith('Rss:'):
                        rss += int(line.split()[1])
                    elif line.startswith('Pss:'):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


def quote(port, n=1, timeout=1):
    return subprocess.run([os.path.join(BUILD, 'quote'), '-s', f'127.0.0.1:{port}', '-n', str(n),
                           '-t', str(timeout)], capture_output=True, text=True)


class Server:
    def __init__(self, db, workers, threads='auto', floor=False, extra=(), wrap=(), wait=30):
        self.port = free_port()
        self.t0 = time.monotonic()
        self.log = tempfile.TemporaryFile(mode='w+')
        if floor:
            cmd = [os.path.join(BUILD, 'floor'), f'127.0.0.1:{self.port}', str(threads)]
            workers = 0  # one process, no master
        else:
            cmd = [os.path.join(BUILD, 'quoterd'), '--db', db, '--listen', f'127.0.0.1:{self.port}',
                   '--workers', str(workers), '--threads', str(threads), *extra]
        self.proc = subprocess.Popen([*wrap, *cmd], stderr=self.log)
        deadline = time.monotonic() + wait
        while quote(self.port).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit('quoterd did not start')
            time.sleep(0.005)
        self.startup = time.monotonic() - self.t0
        want = workers + 1
        while len(tree(self.proc.pid)) < want and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self, wait=15):
        """Stops the server; returns the calls each worker answered."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.seek(0)
        calls = [int(c) for c in re.findall(r'stopped after (\d+) calls', self.log.read())]
        self.log.close()
        return sorted(calls, reverse=True)


def h2load(port, n, conns, streams, reqfile, logfile):
    cmd = ['h2load', '-n', str(n), '-c', str(conns), '-m', str(streams), '-t', '1',
           '-H', 'content-type: application/grpc', '-H', 'te: trailers', '-d', reqfile,
           '--log-file', logfile, f'http://127.0.0.1:{port}/quotes.Quoter/GetQuote']
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    rps = float(re.search(r'finished in .*?, ([\d.]+) req/s', out).group(1))
    ok = int(re.search(r'(\d+) succeeded', out).group(1))
    lat = []
    with open(logfile) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 3 and parts[1] == '200':
                lat.append(int(parts[2]))
    lat.sort()
    p50 = lat[len(lat) // 2] if lat else 0
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0
    return rps, ok, p50, p99


def callgrind_instructions(db, req, log, tmp, calls, metrics):
    """Instructions the one worker of a quoterd run under callgrind
    executed, with `calls` GetQuote calls made (counts, not seconds: the
    same for the same binary and load whatever else the machine does)."""
    out = os.path.join(tmp, 'cg')
    os.makedirs(out, exist_ok=True)
    for f in os.listdir(out):
        os.unlink(os.path.join(out, f))
    extra = ['--metrics', f'127.0.0.1:{free_port()}'] if metrics else []
    # The master's checker reads the whole database under callgrind too,
    # some fifty times slower than it runs: more than check_timeout's
    # default for a million quotes.
    conf = os.path.join(tmp, 'callgrind.conf')
    with open(conf, 'w') as f:
        f.write('check_timeout = 3600\n')
    s = Server(db, 1, 1, extra=['-c', conf, *extra], wait=900,
               wrap=['valgrind', '--tool=callgrind', '--trace-children=yes',
                     f'--callgrind-out-file={out}/callgrind.out.%p'])
    try:
        worker = [p for p in tree(s.proc.pid) if p != s.proc.pid]
        h2load(s.port, calls, 4, 8, req, log)
    finally:
        s.stop(wait=120)
    total = 0
    for p in worker:
        path = os.path.join(out, f'callgrind.out.{p}')
        if not os.path.exists(path):
            continue
        with open(path) as f:
            for line in f:
                if line.startswith('summary:') or line.startswith('totals:'):
                    total = max(total, int(line.split()[1]))
    return total


# Metrics off, on, and off again: a second server like the first, whose
# difference from it is what noise alone makes.
CPU_SERVERS = (('off', False), ('on', True), ('off (control)', False))


def metrics_cpu(db, req, log, rounds, requests, conns, streams):
    """Server CPU a call with metrics off, on, and off on a second server,
    side by side: all three servers (one worker, one call thread each) up
    at once, the same h2load load on each in turn, in an order that goes
    through every permutation, so that whatever else the machine does
    falls on all alike. Returns ([[us a call, a round] a server], calls
    failed)."""
    servers, per, failed = [], [[] for _ in CPU_SERVERS], 0
    orders = list(itertools.permutations(range(len(CPU_SERVERS))))
    try:
        for _, on in CPU_SERVERS:
            extra = ['--metrics', f'127.0.0.1:{free_port()}'] if on else []
            servers.append(Server(db, 1, 1, extra=extra))
        for s in servers:  # warm-up, not counted
            h2load(s.port, max(requests // 10, 1000), conns, streams, req, log)
        for r in range(rounds):
            for i in orders[r % len(orders)]:
                pids = tree(servers[i].proc.pid)
                c0, (n0, t0) = cpu_ticks(pids), cpu_ns(pids)
                _, ok, _, _ = h2load(servers[i].port, requests, conns, streams, req, log)
                c1, (n1, t1) = cpu_ticks(pids), cpu_ns(pids)
                us = (n1 - n0) / 1e3 if t0 == t1 else (c1 - c0) / TICK * 1e6
                per[i].append(us / max(ok, 1))
                failed += requests - ok
    finally:
        for s in servers:
            s.stop()
    return per, failed


def metrics_overhead(a, db, req, log, tmp):
    """Metrics on against off: server CPU a call (metrics_cpu()), and with
    callgrind instructions a call (the slope between two loads, so start-up
    costs cancel), the exact figure."""
    per, failed = metrics_cpu(db, req, log, a.rounds, a.requests, a.conns, a.streams)
    lines = ['', f'Metrics on (`metrics_listen` set) against off, one worker and one call thread '
             f'each, three servers running at once (off, on, and off again as a control: what '
             f'noise alone makes of two like servers): server CPU a call (all quoterd processes; '
             f'each thread\'s schedstat, /proc ticks in a round where threads came or went) '
             f'under the load above, {a.rounds} rounds of {a.requests:,} calls on each, the '
             f'servers\' order going through every permutation; median and spread of the rounds, '
             f'and the ratio of the medians (spread: of each round\'s figure against the same '
             f'round\'s off).'
             + (' Instructions a call from callgrind (the difference between 2,000 and 6,000 '
                'calls): the same for the same binary and load, whatever else the machine does.'
                if a.callgrind else ''), '',
             '| metrics | server CPU us/call, median | min - max | instructions a call |',
             '| --- | --- | --- | --- |']
    ins = {}
    for i, (name, on) in enumerate(CPU_SERVERS):
        if a.callgrind and name in ('off', 'on'):
            lo = callgrind_instructions(db, req, log, tmp, 2000, on)
            hi = callgrind_instructions(db, req, log, tmp, 6000, on)
            ins[name] = (hi - lo) / 4000
        cpu = per[i]
        lines.append(f'| {name} | {statistics.median(cpu):.2f} | {min(cpu):.2f} - {max(cpu):.2f} | '
                     + (f'{ins[name]:,.0f} |' if name in ins else '|'))
        print(lines[-1], flush=True)
    for i, name in ((1, 'on/off'), (2, 'control/off')):
        pairs = [x / off for x, off in zip(per[i], per[0])]
        lines.append(f'| {name} | {statistics.median(per[i]) / statistics.median(per[0]):.3f} | '
                     f'{min(pairs):.3f} - {max(pairs):.3f} | '
                     + (f'{ins["on"] / ins["off"]:.4f} |' if i == 1 and ins else '|'))
        print(lines[-1], flush=True)
    if failed:
        lines.append(f'| | {failed} calls failed | | |')
    return lines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--quotes', type=int, default=100000)
    ap.add_argument('--big', type=int, default=1000000, help='quotes in the startup/PSS database')
    ap.add_argument('--requests', type=int, default=200000)
    ap.add_argument('--rounds', type=int, default=3)
    ap.add_argument('--workers', default=','.join(str(w) for w in range(1, os.cpu_count() + 1)))
    ap.add_argument('--threads', default='1,2', help='call threads a worker, each measured')
    ap.add_argument('--conns', type=int, default=16)
    ap.add_argument('--streams', type=int, default=32)
    ap.add_argument('--out', default=os.path.join(BUILD, 'bench', 'RESULTS.md'))
    ap.add_argument('--no-callgrind', dest='callgrind', action='store_false',
                    help='count no instructions: skip those of metrics on/off (their '
                    'CPU a call is still measured) and the filters\' (callgrind takes '
                    'minutes, and cannot run a sanitizer build)')
    ap.add_argument('--metrics-only', action='store_true',
                    help='measure only metrics on against off')
    ap.add_argument('--filter-quotes', type=int, default=None,
                    help='quotes in the database of the filtered calls (default: --big)')
    ap.add_argument('--filters-only', action='store_true',
                    help='measure only plain against filtered calls')
    a = ap.parse_args()
    if a.filter_quotes is None:
        a.filter_quotes = a.big
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)

    tmp = tempfile.mkdtemp(prefix='quoterd-bench.')
    try:
        run(a, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(a, tmp):
    req = os.path.join(tmp, 'req.bin')
    with open(req, 'wb') as f:
        f.write(b'\0\0\0\0\0')  # gRPC frame: uncompressed, 0 bytes: an empty QuoteRequest
    log = os.path.join(tmp, 'h2load.log')

    txt, db = os.path.join(tmp, 'q.txt'), os.path.join(tmp, 'q.mdb')
    gen_corpus(a.quotes, txt)
    secs = import_db(txt, db)
    size = os.path.getsize(txt)
    lines = ['# quoterd benchmark', '',
             f'{time.strftime("%Y-%m-%d")}, {os.cpu_count()} CPUs, {a.quotes} quotes '
             f'({size / 1e6:.0f} MB of text), h2load {a.conns} connections x {a.streams} streams, '
             f'{a.requests} requests a round, median of {a.rounds} rounds. Load generator and '
             f'server share the machine.', '',
             f'Import: {a.quotes / secs:,.0f} quotes/s ({secs:.2f} s).', '',
             '| workers | threads | req/s | p50 ms | p99 ms | server CPU us/call | RSS MiB | PSS MiB | replies checked | calls per worker |',
             '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |']
    plot = {}

    def measure(s, reqfile=req):
        """Median req/s, p50, p99, CPU us/call over the rounds; calls failed."""
        rows = []
        for _ in range(a.rounds):
            pids = tree(s.proc.pid)
            c0 = cpu_ticks(pids)
            rps, ok, p50, p99 = h2load(s.port, a.requests, a.conns, a.streams, reqfile, log)
            c1 = cpu_ticks(pids)
            rows.append((rps, p50, p99, (c1 - c0) / TICK * 1e6 / max(ok, 1), ok))
        med = [statistics.median(r[i] for r in rows) for i in range(4)]
        return med, sum(a.requests - r[4] for r in rows)

    if a.filters_only or a.metrics_only:
        # Metrics on/off refers to the load the line after the title
        # describes.
        lines = (lines[:2] + filter_cost(a, tmp, log, measure) if a.filters_only
                 else lines[:3] + metrics_overhead(a, db, req, log, tmp))
        with open(a.out, 'w') as f:
            f.write('\n'.join(lines) + '\n')
        print(f'wrote {a.out}')
        return

    configs = [(int(w), int(t)) for w in a.workers.split(',') for t in a.threads.split(',')]
    for w, t in configs:
        s = Server(db, w, t)
        try:
            med, failed = measure(s)
            rss, pss = memory_kib(tree(s.proc.pid))
            check = quote(s.port, 100)
            good = sum(1 for l in check.stdout.splitlines() if ' ~ Author ' in l)
        finally:
            spread = s.stop()
        lines.append(f'| {w} | {t} | {med[0]:,.0f} | {med[1] / 1000:.2f} | {med[2] / 1000:.2f} | '
                     f'{med[3]:.1f} | {rss / 1024:.1f} | {pss / 1024:.1f} | {good}/100 | '
                     f'{" / ".join(str(c) for c in spread)} |')
        if failed:
            lines.append(f'| | | {failed} calls failed | | | | | | |')
        plot.setdefault(t, []).append((w, med[0]))
        print(lines[-1], flush=True)

    lines += metrics_overhead(a, db, req, log, tmp)

    lines += filter_cost(a, tmp, log, measure)

    # The floor: gRPC core answering a fixed reply, with nothing of ours.
    lines += ['', 'The floor, [`bench/floor.c`](floor.c): gRPC core alone answering one fixed reply '
              '(no decoding, no database), same load:', '',
              '| server | threads | req/s | p50 ms | p99 ms | server CPU us/call |',
              '| --- | --- | --- | --- | --- | --- |']
    for t in [int(x) for x in a.threads.split(',')]:
        s = Server(None, 0, t, floor=True)
        try:
            med, failed = measure(s)
        finally:
            s.stop()
        lines.append(f'| floor | {t} | {med[0]:,.0f} | {med[1] / 1000:.2f} | {med[2] / 1000:.2f} | '
                     f'{med[3]:.1f} |' + (f' {failed} calls failed |' if failed else ''))
        print(lines[-1], flush=True)

    # Startup: mapped, not loaded, so it should not grow with the database.
    lines += ['', '| database | quotes | size MiB | import s | start to first reply ms | PSS of all processes MiB (4 workers, after load) |',
              '| --- | --- | --- | --- | --- | --- |']
    for n in (10000, a.big):
        t2, d2 = os.path.join(tmp, f's{n}.txt'), os.path.join(tmp, f's{n}.mdb')
        gen_corpus(n, t2)
        isecs = import_db(t2, d2)
        os.unlink(t2)
        starts = []
        for _ in range(3):
            s = Server(d2, 1)
            starts.append(s.startup)
            s.stop()
        s = Server(d2, 4)
        try:
            h2load(s.port, a.requests, a.conns, a.streams, req, log)
            _, pss = memory_kib(tree(s.proc.pid))
        finally:
            s.stop()
        lines.append(f'| generated | {n:,} | {os.path.getsize(d2) / 2**20:.1f} | {isecs:.2f} | '
                     f'{statistics.median(starts) * 1000:.0f} | {pss / 1024:.1f} |')
        print(lines[-1], flush=True)
        os.unlink(d2)

    with open(a.out, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    curves = []
    for t, points in sorted(plot.items()):
        data = os.path.join(tmp, f'plot{t}.dat')
        with open(data, 'w') as f:
            f.writelines(f'{w} {r}\n' for w, r in points)
        curves.append(f'"{data}" with linespoints lw 2 title "{t} call thread{"s" if t > 1 else ""} a worker"')
    png = os.path.join(os.path.dirname(a.out), 'throughput.png')
    subprocess.run(['gnuplot', '-e',
                    f'set terminal png size 640,400; set output "{png}"; '
                    'set xlabel "workers"; set ylabel "GetQuote requests/s"; set yrange [0:*]; '
                    'set xtics 1; set grid; set key bottom right; '
                    'plot ' + ', '.join(curves)], check=True)
    print(f'wrote {a.out} and {png}')


if __name__ == '__main__':
    main()
