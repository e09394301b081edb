"""The C client `quote` against quoterd: its output lines, -a and -n, and
its one-line errors for an unreachable or silent server and for an error
status; bad flags exit 2."""

import socket
import time

import pytest

from conftest import free_port, parse_lines, run_quote


def one_error_line(r, addr):
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert addr in lines[0], lines[0]
    return lines[0].lower().replace("_", " ")


def test_three_quotes(served, corpus):
    r = run_quote(["-s", served.addr, "-n", "3"])
    assert r.returncode == 0, r.stderr
    got = parse_lines(r.stdout)
    assert len(got) == 3
    assert set(got) <= corpus.pairs, got


def test_default_count_is_three(served, corpus):
    r = run_quote(["-s", served.addr])
    assert r.returncode == 0, r.stderr
    assert len(parse_lines(r.stdout)) == 3


@pytest.mark.parametrize("author", ["Søren Kierkegaard", "Ada Lovelace", "李白"])
def test_named_author(served, corpus, author):
    r = run_quote(["-s", served.addr, "-a", author, "-n", "5"])
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 5
    assert all(l.endswith(f" ~ {author}") for l in lines), lines
    assert {q for q, _ in parse_lines(r.stdout)} <= set(corpus.authors[author])


def test_many_quotes_many_authors(served, corpus):
    r = run_quote(["-s", served.addr, "-n", "100"])
    assert r.returncode == 0, r.stderr
    got = parse_lines(r.stdout)
    assert len(got) == 100 and set(got) <= corpus.pairs
    assert len({a for _, a in got}) >= 5


@pytest.mark.parametrize("count", ["1", "3"])
def test_nothing_listening(binaries, count):
    addr = f"127.0.0.1:{free_port()}"
    r = run_quote(["-s", addr, "-n", count, "-t", "2"])
    assert r.stdout == ""
    msg = one_error_line(r, addr)
    assert "unavailable" in msg or "deadline" in msg, msg


def test_timeout_against_silent_server(binaries):
    # Accepts TCP connections (backlog) but never speaks HTTP/2.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        addr = f"127.0.0.1:{s.getsockname()[1]}"
        t0 = time.monotonic()
        r = run_quote(["-s", addr, "-t", "0.5"], timeout=15)
        took = time.monotonic() - t0
    assert took < 5, f"took {took:.1f} s with -t 0.5"
    msg = one_error_line(r, addr)
    assert "deadline" in msg or "unavailable" in msg, msg


def test_error_status_is_one_line(served):
    r = run_quote(["-s", served.addr, "-a", "a" * 5000])
    assert r.stdout == ""
    msg = one_error_line(r, served.addr)
    assert "resource exhausted" in msg, msg


@pytest.mark.parametrize("flags", [["--bogus"], ["-n", "abc"], ["-t", "abc"],
                                   ["-n"]], ids=" ".join)
def test_bad_flags_exit_2(binaries, flags):
    r = run_quote(["-s", f"127.0.0.1:{free_port()}"] + flags)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.strip()


# The usage errors below need no server: a free port nothing listens on
# turns any call the client wrongly makes into exit status 1, not 2.

@pytest.mark.parametrize("flags", [["--bogus"], ["-z"], ["-n"], ["--list"],
                                   ["--exact=1"], ["--tag"]], ids=" ".join)
def test_getopt_errors_say_quote(binaries, flags):
    """getopt's own messages are prefixed like the client's: `quote:`,
    not the path it was run by."""
    r = run_quote(["-s", f"127.0.0.1:{free_port()}"] + flags)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.splitlines()[0].startswith("quote: "), r.stderr


@pytest.mark.parametrize("flags", [["--today", "notadate"],
                                   ["--today=2020-1-1"],
                                   ["--today", "2026-02-30"],
                                   ["--today=0000-01-01"],
                                   ["--today", "2026-11-29x"]],
                         ids=" ".join)
def test_today_date_checked(binaries, flags):
    r = run_quote(["-s", f"127.0.0.1:{free_port()}"] + flags)
    assert r.returncode == 2, (r.returncode, r.stderr)
    date = flags[-1].split("=")[-1]
    assert r.stderr.splitlines()[0] == \
        f"quote: --today: '{date}' is not a date as YYYY-MM-DD", r.stderr


@pytest.mark.parametrize("flags,reason", [
    (["-a", "X", "--list-authors"], "-a does not go with --list-authors"),
    (["--list-tags", "--tag", "t"], "--tag does not go with --list-tags"),
    (["--list-authors", "-n", "2"], "-n does not go with --list-authors"),
    (["--search", "w", "-n", "2"], "-n does not go with --search"),
    (["--search", "w", "-a", "X", "--exact"],
     "--exact does not go with --search"),
    (["--today", "--min", "3"], "--min does not go with --today"),
    (["--today", "2026-11-29", "--max", "3"], "--max does not go with --today"),
    (["--exact"], "--exact needs -a"),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_conflicting_options(binaries, flags, reason):
    """An option the chosen request does not send is a usage error with
    the reason, never silently ignored."""
    r = run_quote(["-s", f"127.0.0.1:{free_port()}"] + flags)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert r.stderr.splitlines()[0] == f"quote: {reason}", r.stderr
    assert "usage: quote" in r.stderr


def test_options_each_mode_takes(served):
    """What each mode does take still works against a server."""
    for flags in (["-a", "Mark Twain", "--exact", "-n", "2", "--min", "1",
                   "--max", "100000"],
                  ["--today", "2026-11-29", "-a", "Mark Twain"],
                  ["--today=2024-02-29"], ["--today"],
                  ["--list-authors"], ["--list-tags"]):
        r = run_quote(["-s", served.addr] + flags)
        assert r.returncode == 0, (flags, r.stderr)
