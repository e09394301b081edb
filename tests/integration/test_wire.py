"""quoterd on the wire, seen from Python's grpcio: the selection rule
(exact author, else a random author's quote, uniform over authors) and the
status codes for unknown methods, undecodable, invalid and oversized
requests."""

import collections

import grpc
import pytest

from conftest import channel, get_quote, make_corpus, raw_call

GET = "/quotes.Quoter/GetQuote"


def test_python_stub_gets_a_quote(served, corpus, pb):
    assert get_quote(pb, served.addr) in corpus.pairs


@pytest.mark.parametrize("author", ["Søren Kierkegaard", "李白", "Mark Twain",
                                    "Margaret Hamilton"])
def test_known_author_always_answered(served, corpus, pb, author):
    pb2, pb2_grpc = pb
    seen = set()
    with channel(served.addr) as ch:
        stub = pb2_grpc.QuoterStub(ch)
        for _ in range(50):
            r = stub.GetQuote(pb2.QuoteRequest(author=author), timeout=5)
            assert r.author == author
            assert r.quote in corpus.authors[author]
            seen.add(r.quote)
    # Quotes are picked at random within the author too.
    assert len(seen) > 1 or len(corpus.authors[author]) == 1


def test_author_matches_folded(served, corpus, pb):
    # Issue #15: no exact match, but one after case folding and white
    # space collapsing, is that author.
    pb2, pb2_grpc = pb
    with channel(served.addr) as ch:
        stub = pb2_grpc.QuoterStub(ch)
        for name in ("søren kierkegaard", "SØREN   KIERKEGAARD "):
            r = stub.GetQuote(pb2.QuoteRequest(author=name), timeout=5)
            assert r.author == "Søren Kierkegaard"


@pytest.mark.parametrize("author", ["", "Nobody At All", "Søren"])
def test_unknown_author_gets_random_authors(served, corpus, pb, author):
    pb2, pb2_grpc = pb
    authors = collections.Counter()
    with channel(served.addr) as ch:
        stub = pb2_grpc.QuoterStub(ch)
        for _ in range(300):
            r = stub.GetQuote(pb2.QuoteRequest(author=author), timeout=5)
            assert (r.quote, r.author) in corpus.pairs
            authors[r.author] += 1
    assert len(authors) >= 10, authors


def test_random_pick_is_uniform_over_authors(quoterd, tmp_path, pb):
    # One author with 90 quotes among nine with one: picking uniformly over
    # quotes would give "Prolific" ~90% of the answers, over authors ~10%.
    names = {"Prolific": 90, **{f"Author {i}": 1 for i in range(9)}}
    c = make_corpus(tmp_path / "skewed", names)
    d = quoterd(db=c.db)
    d.wait_ready(pb)
    pb2, pb2_grpc = pb
    counts = collections.Counter()
    with channel(d.addr) as ch:
        stub = pb2_grpc.QuoterStub(ch)
        for _ in range(300):
            r = stub.GetQuote(pb2.QuoteRequest(), timeout=5)
            assert (r.quote, r.author) in c.pairs
            counts[r.author] += 1
    assert counts["Prolific"] < 80, counts  # expected 30, sd ~5
    assert len(counts) == 10, counts


def test_raw_empty_body_is_a_random_quote(served, corpus, pb):
    pb2, _ = pb
    reply = pb2.QuoteReply.FromString(raw_call(served.addr, GET, b""))
    assert (reply.quote, reply.author) in corpus.pairs


@pytest.mark.parametrize("method, body, code", [
    ("/quotes.Quoter/Nope", b"", grpc.StatusCode.UNIMPLEMENTED),
    ("/foo.Bar/Baz", b"\x0a\x01x", grpc.StatusCode.UNIMPLEMENTED),
    (GET, b"\xff\xff\xff", grpc.StatusCode.INVALID_ARGUMENT),
    (GET, b"\x0a\x02\xff\xfe", grpc.StatusCode.INVALID_ARGUMENT),
    (GET, b"\x0a\x88\x27" + b"a" * 5000, grpc.StatusCode.RESOURCE_EXHAUSTED),
], ids=["unknown-method", "unknown-service", "undecodable", "bad-utf8",
        "oversized"])
def test_error_status_then_still_serving(served, corpus, pb, method, body, code):
    # The same workers afterwards: a worker that crashed would have been
    # replaced, and the master alive proves nothing.
    before = served.wait_workers(2)
    with pytest.raises(grpc.RpcError) as e:
        raw_call(served.addr, method, body)
    assert e.value.code() == code, e.value
    assert get_quote(pb, served.addr) in corpus.pairs
    assert served.workers() == before, served.log()


def test_oversized_author_via_stub(served, corpus, pb):
    with pytest.raises(grpc.RpcError) as e:
        get_quote(pb, served.addr, author="a" * 5000)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Just under the limit is an unknown author: a random quote.
    assert get_quote(pb, served.addr, author="a" * 4000) in corpus.pairs


def test_many_errors_do_not_disturb_service(served, corpus, pb):
    bodies = [b"\xff\xff\xff", b"\x0a\x02\xff\xfe", b"\x0a\x88\x27" + b"a" * 5000]
    before = served.wait_workers(2)
    with channel(served.addr) as ch:
        call = ch.unary_unary(GET)
        for i in range(60):
            with pytest.raises(grpc.RpcError):
                call(bodies[i % 3], timeout=5)
    assert get_quote(pb, served.addr) in corpus.pairs
    assert served.workers() == before, served.log()
