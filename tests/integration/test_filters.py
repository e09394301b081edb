"""Issue #15: GetQuote's filters, author folding, SearchQuotes, ListTags
and GetQuoteOfTheDay, each checked against an independent computation over
the corpus in Python: words are runs of [^\\W_] (Unicode letters and
digits) compared after str.casefold(), lengths are len() in code points,
tags are what the import flags gave, and the database's order is authors
by UTF-8 bytes, then input order. That Python and utf8proc agree on the
words of this corpus is itself checked, through SearchQuotes."""

import random
import re
import subprocess
from collections import Counter

import grpc
import pytest

from conftest import IMPORT, channel, parse_lines, raw_call, run_quote

WORD = re.compile(r"[^\W_]+")
VOCAB = ["time", "code", "truth", "love", "Straße", "STRASSE", "naïve",
         "NAÏVE", "Ωμέγα", "ΩΜΈΓΑ", "日本語", "café", "x2", "42", "ünïcödé",
         "ǅemal", "fish", "chips"]
AUTHORS = ["Mark Twain", "Ada Lovelace", "Zoë Ångström", "李白",
           "mark twain", "Grace  Hopper"]


def words(text):
    return {w.casefold() for w in WORD.findall(text)}


class Filtered:
    """Three input files: a.txt with --tag alpha, b.txt after --tag beta
    as well (tags accumulate), c.fortune a fortune file, tagged by its
    name, c."""

    def __init__(self, directory):
        rnd = random.Random(15)
        self.quotes = []  # (quote, author, seq, tags)
        files = {"a.txt": {"alpha"}, "b.txt": {"alpha", "beta"}}
        seq = 0
        directory.mkdir(parents=True, exist_ok=True)
        for name, tags in files.items():
            lines = []
            for i in range(40 if name == "a.txt" else 12):
                a = rnd.choice(AUTHORS)
                n = rnd.randint(1, 9)
                q = f"{name[0]}{i}: " + " ".join(
                    rnd.choice(VOCAB) for _ in range(n)) + "."
                lines.append(f"{q}~{a}\n")
                self.quotes.append((q, a, seq, frozenset(tags)))
                seq += 1
            (directory / name).write_text("".join(lines), encoding="utf-8")
        fortune = []
        for i in range(5):
            q = f"c{i} fortune {rnd.choice(VOCAB)}"
            fortune.append(f"{q}\n\t-- Oscar Wilde\n%\n")
            self.quotes.append((q, "Oscar Wilde", seq,
                                frozenset({"alpha", "beta", "c"})))
            seq += 1
        (directory / "c.fortune").write_text("".join(fortune),
                                             encoding="utf-8")
        self.db = directory / "f.mdb"
        # The text files in one import, the fortune file in another
        # format: import twice and keep the combined one by importing
        # the fortune quotes as text of their own.
        text = directory / "c.txt"
        text.write_text("".join(f"{q}~Oscar Wilde\n" for q, *_ in
                                self.quotes[-5:]), encoding="utf-8")
        r = subprocess.run(
            [str(IMPORT), "-q", "-o", str(self.db), "--tag", "alpha",
             str(directory / "a.txt"), "--tag", "beta",
             str(directory / "b.txt"), "--tag", "c", str(text)],
            capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        # Database order: author bytes, then input order.
        self.ordered = sorted(self.quotes,
                              key=lambda t: (t[1].encode(), t[2]))

    def match(self, query="", tags=(), lo=0, hi=0, authors=None):
        want = words(query)
        out = []
        for q, a, _, t in self.ordered:
            if want - words(q):
                continue
            if not set(tags) <= t:
                continue
            if lo and len(q) < lo or hi and len(q) > hi:
                continue
            if authors is not None and a not in authors:
                continue
            out.append((q, a))
        return out


@pytest.fixture(scope="module")
def filtered(tmp_path_factory, binaries):
    return Filtered(tmp_path_factory.mktemp("filters"))


@pytest.fixture
def fserved(quoterd, filtered, pb):
    d = quoterd(db=filtered.db)
    d.wait_ready(pb)
    return d


def stub(pb, addr):
    return pb[1].QuoterStub(channel(addr))


def code(fn):
    with pytest.raises(grpc.RpcError) as e:
        fn()
    return e.value.code()


FILTERS = [
    dict(query="strasse"), dict(query="Straße CODE"), dict(query="naïve"),
    dict(query="ωμέγα"), dict(query="日本語 love"), dict(query="42"),
    dict(query="ǆemal"), dict(tags=["beta"]), dict(tags=["alpha", "c"]),
    dict(lo=15, hi=30), dict(lo=40), dict(hi=12), dict(query="fish", lo=20),
    dict(query="chips", tags=["beta"]), dict(query="nothinglikethis"),
    dict(lo=1000),
]


@pytest.mark.parametrize("flt", FILTERS, ids=str)
def test_getquote_filters(fserved, filtered, pb, flt):
    """Every reply satisfies the filter, every match comes back, and
    NOT_FOUND exactly when nothing matches."""
    pb2 = pb[0]
    want = set(filtered.match(**flt))
    req = pb2.QuoteRequest(query=flt.get("query", ""),
                           tags=flt.get("tags", []),
                           min_length=flt.get("lo", 0),
                           max_length=flt.get("hi", 0))
    s = stub(pb, fserved.addr)
    if not want:
        assert code(lambda: s.GetQuote(req, timeout=5)) == \
            grpc.StatusCode.NOT_FOUND
        return
    seen = Counter()
    for _ in range(40 * len(want) + 40):
        r = s.GetQuote(req, timeout=5)
        assert (r.quote, r.author) in want, (r, flt)
        seen[(r.quote, r.author)] += 1
    assert set(seen) == want


@pytest.mark.parametrize("flt", FILTERS + [dict(query="time"), dict()],
                         ids=str)
def test_search_pages(fserved, filtered, pb, flt):
    """Paging returns exactly the brute-force matches, in database
    order, each once; total_size counts them."""
    pb2 = pb[0]
    s = stub(pb, fserved.addr)
    want = filtered.match(**flt)
    got, token, pages = [], "", 0
    while True:
        r = s.SearchQuotes(pb2.SearchQuotesRequest(
            query=flt.get("query", ""), tags=flt.get("tags", []),
            min_length=flt.get("lo", 0), max_length=flt.get("hi", 0),
            page_size=3, page_token=token), timeout=5)
        assert r.total_size == len(want)
        got += [(q.quote, q.author) for q in r.quotes]
        pages += 1
        token = r.next_page_token
        if not token:
            break
    assert got == want
    assert pages == max(1, (len(want) + 2) // 3)


def test_search_author(fserved, filtered, pb):
    pb2 = pb[0]
    s = stub(pb, fserved.addr)
    r = s.SearchQuotes(pb2.SearchQuotesRequest(author="Zoë Ångström",
                                               page_size=1000), timeout=5)
    assert [(q.quote, q.author) for q in r.quotes] == \
        filtered.match(authors={"Zoë Ångström"})
    # Folded: "mark twain" and "Mark Twain" both fold to it.
    r = s.SearchQuotes(pb2.SearchQuotesRequest(author="MARK   twain",
                                               query="love",
                                               page_size=1000), timeout=5)
    assert [(q.quote, q.author) for q in r.quotes] == \
        filtered.match(query="love", authors={"Mark Twain", "mark twain"})
    r = s.SearchQuotes(pb2.SearchQuotesRequest(author="nobody"), timeout=5)
    assert list(r.quotes) == [] and r.total_size == 0


def test_search_tokens_checked(fserved, pb):
    pb2 = pb[0]
    s = stub(pb, fserved.addr)
    r = s.SearchQuotes(pb2.SearchQuotesRequest(query="time", page_size=1),
                       timeout=5)
    assert r.next_page_token
    for bad in ["garbage", "0" * 16, r.next_page_token[:-1] + "x",
                r.next_page_token.upper(), "€" * 16]:
        assert code(lambda: s.SearchQuotes(pb2.SearchQuotesRequest(
            query="time", page_token=bad), timeout=5)) == \
            grpc.StatusCode.INVALID_ARGUMENT, bad
    # A token is for the filters it came with.
    assert code(lambda: s.SearchQuotes(pb2.SearchQuotesRequest(
        query="code", page_token=r.next_page_token), timeout=5)) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert code(lambda: s.SearchQuotes(pb2.SearchQuotesRequest(
        page_size=-1), timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT


def test_author_matching(fserved, filtered, pb):
    pb2 = pb[0]
    s = stub(pb, fserved.addr)
    exact = {q for q, a, *_ in filtered.quotes if a == "mark twain"}
    for _ in range(20):
        r = s.GetQuote(pb2.QuoteRequest(author="mark twain"), timeout=5)
        assert r.quote in exact
    # No exact match: the folded one covers both names that fold alike.
    twains = {(q, a) for q, a, *_ in filtered.quotes
              if a in ("Mark Twain", "mark twain")}
    for _ in range(20):
        r = s.GetQuote(pb2.QuoteRequest(author="  MARK\tTWAIN "), timeout=5)
        assert (r.quote, r.author) in twains
    r = s.GetQuote(pb2.QuoteRequest(author="grace hopper"), timeout=5)
    assert r.author == "Grace  Hopper"
    assert code(lambda: s.GetQuote(pb2.QuoteRequest(
        author="MARK TWAIN", exact=True), timeout=5)) == \
        grpc.StatusCode.NOT_FOUND
    assert code(lambda: s.GetQuote(pb2.QuoteRequest(
        author="nobody", exact=True), timeout=5)) == grpc.StatusCode.NOT_FOUND
    # Without exact, an unknown name is the original random rule.
    r = s.GetQuote(pb2.QuoteRequest(author="nobody"), timeout=5)
    assert (r.quote, r.author) in {(q, a) for q, a, *_ in filtered.quotes}
    # Exact and filters together.
    r = s.GetQuote(pb2.QuoteRequest(author="李白", exact=True, tags=["alpha"]),
                   timeout=5)
    assert r.author == "李白"


def test_old_client_bytes(fserved, filtered, pb):
    """A request as an old client sends it: field 1 only."""
    pb2 = pb[0]
    name = "Zoë Ångström".encode()
    body = b"\x0a" + bytes([len(name)]) + name
    for _ in range(10):
        r = pb2.QuoteReply.FromString(
            raw_call(fserved.addr, "/quotes.Quoter/GetQuote", body))
        assert r.author == "Zoë Ångström"


@pytest.mark.parametrize("body,why", [
    (None, "17 words"), (None, "65-byte word"), (None, "min > max"),
    (b"\x22\x03a\x00b", "NUL in query"), (b"\x2a\x02\xc3\x28", "bad UTF-8 tag"),
    (None, "bad tag name"), (None, "17 tags"),
])
def test_invalid_arguments(fserved, pb, body, why):
    pb2 = pb[0]
    reqs = {
        "17 words": pb2.QuoteRequest(query=" ".join(["time"] * 17)),
        "65-byte word": pb2.QuoteRequest(query="x" * 65),
        "min > max": pb2.QuoteRequest(min_length=10, max_length=9),
        "bad tag name": pb2.QuoteRequest(tags=["Alpha"]),
        "17 tags": pb2.QuoteRequest(tags=["alpha"] * 17),
    }
    if body is None:
        body = reqs[why].SerializeToString()
    for method in ("GetQuote", "SearchQuotes"):
        if method == "SearchQuotes" and why in ("NUL in query",
                                                "bad UTF-8 tag"):
            continue
        with pytest.raises(grpc.RpcError) as e:
            raw_call(fserved.addr, "/quotes.Quoter/" + method,
                     body if method == "GetQuote" else
                     _as_search(pb2, reqs[why]))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, why


def _as_search(pb2, q):
    return pb2.SearchQuotesRequest(
        query=q.query, tags=q.tags, min_length=q.min_length,
        max_length=q.max_length).SerializeToString()


def test_search_nul_in_strings(fserved, pb):
    # query (field 2) "a\0b", then author (field 1) with a NUL.
    for body in (b"\x12\x03a\x00b", b"\x0a\x02a\x00", b"\x3a\x01\x00"):
        with pytest.raises(grpc.RpcError) as e:
            raw_call(fserved.addr, "/quotes.Quoter/SearchQuotes", body)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_list_tags(fserved, filtered, pb):
    pb2 = pb[0]
    s = stub(pb, fserved.addr)
    want = Counter(t for *_, tags in filtered.quotes for t in tags)
    got, token = {}, ""
    while True:
        r = s.ListTags(pb2.ListTagsRequest(page_size=1, page_token=token),
                       timeout=5)
        got.update({t.name: t.quotes for t in r.tags})
        token = r.next_page_token
        if not token:
            break
    assert got == dict(want)
    assert list(got) == sorted(want)


def daily(s, pb2, **kw):
    r = s.GetQuoteOfTheDay(pb2.QuoteOfTheDayRequest(**kw), timeout=5)
    return r.quote, r.author


def test_quote_of_the_day(quoterd, filtered, pb):
    pb2 = pb[0]
    d = quoterd(db=filtered.db, workers=2)
    d.wait_ready(pb)
    first = {}
    # Fresh channels reach both workers.
    for _ in range(12):
        s = stub(pb, d.addr)
        for date in ("2026-11-29", "2024-02-29", "1999-12-31"):
            got = daily(s, pb2, date=date)
            assert first.setdefault(date, got) == got
    d.stop_cleanly()
    d2 = quoterd(db=filtered.db)
    d2.wait_ready(pb)
    s = stub(pb, d2.addr)
    for date, got in first.items():
        assert daily(s, pb2, date=date) == got
    assert daily(s, pb2) in {(q, a) for q, a, *_ in filtered.quotes}
    # Over n consecutive days, n candidates: each exactly once.
    import datetime
    for kw, cands in ((dict(tags=["beta"]), filtered.match(tags=["beta"])),
                      (dict(author="Zoë Ångström"),
                       filtered.match(authors={"Zoë Ångström"})),
                      (dict(), filtered.match())):
        n = len(cands)
        day0 = datetime.date(2026, 1, 1)
        seen = [daily(s, pb2, date=str(day0 + datetime.timedelta(i)), **kw)
                for i in range(n)]
        assert sorted(seen) == sorted(cands), kw
        assert all(a != b for a, b in zip(seen, seen[1:]))
    for bad in ("2026-02-29", "2026-13-01", "26-01-01", "2026-1-01",
                "2026-01-01 ", "today", "0000-01-01"):
        assert code(lambda: s.GetQuoteOfTheDay(
            pb2.QuoteOfTheDayRequest(date=bad), timeout=5)) == \
            grpc.StatusCode.INVALID_ARGUMENT, bad
    assert code(lambda: s.GetQuoteOfTheDay(pb2.QuoteOfTheDayRequest(
        author="nobody"), timeout=5)) == grpc.StatusCode.NOT_FOUND
    assert code(lambda: s.GetQuoteOfTheDay(pb2.QuoteOfTheDayRequest(
        tags=["nope"]), timeout=5)) == grpc.StatusCode.NOT_FOUND


# ------------------------------------------------------------ the client

def test_client_filters(fserved, filtered):
    r = run_quote(["-s", fserved.addr, "--search", "STRASSE", "--tag",
                   "beta", "--min", "5", "--max", "60"])
    assert r.returncode == 0, r.stderr
    assert parse_lines(r.stdout) == filtered.match(
        query="strasse", tags=["beta"], lo=5, hi=60)
    r = run_quote(["-s", fserved.addr, "-n", "20", "--tag", "beta",
                   "--max", "25"])
    assert r.returncode == 0, r.stderr
    assert set(parse_lines(r.stdout)) <= set(filtered.match(tags=["beta"],
                                                            hi=25))
    r = run_quote(["-s", fserved.addr, "-a", "MARK TWAIN", "--exact"])
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr, r.stderr
    r = run_quote(["-s", fserved.addr, "--list-tags"])
    assert r.returncode == 0, r.stderr
    want = Counter(t for *_, tags in filtered.quotes for t in tags)
    assert r.stdout.splitlines() == [f"{t} {n}" for t, n in
                                     sorted(want.items())]
    one = run_quote(["-s", fserved.addr, "--today", "2026-11-29"])
    two = run_quote(["-s", fserved.addr, "--today=2026-11-29"])
    assert one.returncode == 0 and one.stdout == two.stdout, one.stderr
    assert len(parse_lines(one.stdout)) == 1
    r = run_quote(["-s", fserved.addr, "--today"])
    assert r.returncode == 0 and len(parse_lines(r.stdout)) == 1
    # The client checks the date itself (the server's check is above).
    r = run_quote(["-s", fserved.addr, "--today", "2026-02-30"])
    assert r.returncode == 2 and "not a date" in r.stderr
    for bad in (["--min", "0"], ["--max", "x"], ["--min", "5", "--max", "4"],
                ["--search", "a", "--today"]):
        r = run_quote(["-s", fserved.addr] + bad)
        assert r.returncode == 2, bad
