"""quoterd's surface beyond GetQuote, seen from real clients: gRPC health
checking (Check, Watch, and the drain on SIGTERM), server reflection (v1
and v1alpha, and a client built from its answers alone), TLS and mutual
TLS (Python and the C client, and the start-up errors), Unix-socket
listeners (spread over workers, SIGTTIN, stale and live socket files),
the connection limits and keepalive settings, deadlines, gzip, and
ListAuthors paging (also through `quote --list-authors`).

Health and reflection stubs are generated at test time from Debian's
grpc-proto files, TLS material with the openssl CLI; nothing is fetched.
Every wait is bounded; idle Python channels are closed before a graceful
stop, since gRPC core's server waits for connections to go away and an
idle Python channel only notices the GOAWAY on its 5 s backup poll."""

import importlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from conftest import (AUTHORS, CHANNEL_OPTIONS, H2, channel, get_quote,
                      make_corpus, raw_call, run_quote, unix_daemon,
                      wait_until, worker_calls)

GRPC_PROTO = Path("/usr/share/grpc-proto")
LIST = "/quotes.Quoter/ListAuthors"
SERVICES = {"quotes.Quoter", "grpc.health.v1.Health",
            "grpc.reflection.v1alpha.ServerReflection",
            "grpc.reflection.v1.ServerReflection"}
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]  # 5, as ErrorResponse has it


# ------------------------------------------------------------------ helpers

@pytest.fixture(scope="session")
def hr(tmp_path_factory):
    """Health and reflection stubs. The .proto files are copied under
    other names: generated as grpc/health/v1/health_pb2.py they would
    shadow the grpc package. Their `package` lines, which are what goes
    on the wire, are unchanged."""
    out = tmp_path_factory.mktemp("hrstubs")
    files = {"health.proto": "grpc/health/v1/health.proto",
             "reflection_v1alpha.proto": "grpc/reflection/v1alpha/reflection.proto",
             "reflection_v1.proto": "grpc/reflection/v1/reflection.proto"}
    for name, src in files.items():
        shutil.copy(GRPC_PROTO / src, out / name)
    subprocess.run(
        ["/usr/bin/python3", "-m", "grpc_tools.protoc", f"-I{out}",
         f"--python_out={out}", f"--grpc_python_out={out}"]
        + [str(out / n) for n in files],
        check=True, timeout=60)
    sys.path.insert(0, str(out))
    try:
        mods = {n: importlib.import_module(n) for n in (
            "health_pb2", "health_pb2_grpc", "reflection_v1alpha_pb2",
            "reflection_v1alpha_pb2_grpc", "reflection_v1_pb2",
            "reflection_v1_pb2_grpc")}
    finally:
        sys.path.remove(str(out))
    return SimpleNamespace(
        health=mods["health_pb2"], health_grpc=mods["health_pb2_grpc"],
        refl={"v1alpha": (mods["reflection_v1alpha_pb2"],
                          mods["reflection_v1alpha_pb2_grpc"]),
              "v1": (mods["reflection_v1_pb2"], mods["reflection_v1_pb2_grpc"])})


def status_name(hr, status):
    return hr.health.HealthCheckResponse.ServingStatus.Name(status)


def check(hr, addr, service="", timeout=5.0):
    """Health Check on a fresh channel; returns the status name."""
    with channel(addr) as ch:
        r = hr.health_grpc.HealthStub(ch).Check(
            hr.health.HealthCheckRequest(service=service), timeout=timeout)
    return status_name(hr, r.status)


class Watcher:
    """A Watch stream on its own channel, read by a thread: `seen` holds
    each status name, then "END" (the stream ended with OK) or the error
    code. The channel is closed as soon as the stream is over, so that it
    never holds up a server's graceful stop."""

    def __init__(self, hr, addr, service=""):
        self.hr = hr
        self.ch = channel(addr)
        self.call = hr.health_grpc.HealthStub(self.ch).Watch(
            hr.health.HealthCheckRequest(service=service), timeout=60)
        self.seen = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for m in self.call:
                self.seen.append(status_name(self.hr, m.status))
            self.seen.append("END")
        except grpc.RpcError as e:
            self.seen.append(e.code())
        finally:
            self.ch.close()

    def wait_for(self, n, timeout=10):
        wait_until(lambda: len(self.seen) >= n, timeout,
                   lambda: f"{n} Watch events (have {self.seen})")
        return self.seen[:n]

    def finish(self, timeout=15):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"Watch still open: {self.seen}"
        return self.seen

    def close(self):
        self.call.cancel()
        self.thread.join(5)


class States:
    """Every connectivity state a channel goes through, in order."""

    def __init__(self, ch):
        self.seen = []
        ch.subscribe(self.seen.append, try_to_connect=True)

    def names(self):
        return [s.name for s in list(self.seen)]

    def dropped(self):
        """Whether the channel left READY (for IDLE or TRANSIENT_FAILURE)
        after having been READY."""
        names = self.names()
        after = names[names.index("READY") + 1:] if "READY" in names else []
        return any(s in ("IDLE", "TRANSIENT_FAILURE") for s in after)


def problems(d):
    """The daemon's warn and error lines."""
    return [l for l in d.log().splitlines() if re.search(r"Z (warn|error) ", l)]


# --------------------------------------------------------------- health

def test_health_check(served, hr):
    assert check(hr, served.addr, "") == "SERVING"
    assert check(hr, served.addr, "quotes.Quoter") == "SERVING"
    for unknown in ("no.Such", "quotes.quoter", "grpc.health.v1.Health "):
        with pytest.raises(grpc.RpcError) as e:
            check(hr, served.addr, unknown)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND, unknown


def test_health_watch_known_and_unknown(served, hr):
    known = Watcher(hr, served.addr, "quotes.Quoter")
    unknown = Watcher(hr, served.addr, "no.Such")
    try:
        assert known.wait_for(1) == ["SERVING"]
        assert unknown.wait_for(1) == ["SERVICE_UNKNOWN"]
        # Not an error status: the stream stays open (a service may appear
        # later), and the server keeps answering around it.
        assert check(hr, served.addr) == "SERVING"
        assert unknown.call.is_active() and known.call.is_active()
        assert unknown.seen == ["SERVICE_UNKNOWN"]
    finally:
        known.close()
        unknown.close()
    assert unknown.seen[-1] == grpc.StatusCode.CANCELLED


@pytest.fixture
def sock_path():
    """A Unix socket path well under sun_path's 108 bytes (tmp_path can
    be longer than that)."""
    d = tempfile.mkdtemp(dir="/tmp", prefix="qd-")
    yield os.path.join(d, "s")
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("listen", ["tcp", "unix"])
def test_drain_health_not_serving_while_calls_still_served(
        quoterd, corpus, pb, hr, sock_path, listen):
    """SIGTERM with drain_time = 3: health turns NOT_SERVING at once, but
    calls, also on new connections (a balancer's probe, a client that has
    not moved yet), are served for the drain; then Watch streams end with
    OK and the master exits 0. The same contract for both listeners."""
    if listen == "unix":
        d = unix_daemon(quoterd, corpus.db, sock_path,
                        config="drain_time = 3\n")
    else:
        d = quoterd(db=corpus.db, config="drain_time = 3\n")
    d.wait_ready(pb)
    d.wait_workers(2)
    w = Watcher(hr, d.addr)
    try:
        assert w.wait_for(1) == ["SERVING"]
        t0 = time.monotonic()
        d.send(signal.SIGTERM)
        assert w.wait_for(2, timeout=5) == ["SERVING", "NOT_SERVING"]
        # For half the 3 s, every new connection is answered: health
        # says NOT_SERVING and GetQuote still works. (Probing stops well
        # before the drain ends, so that a slow probe cannot outlast it.)
        served = 0
        while time.monotonic() - t0 < 1.5:
            assert check(hr, d.addr) == "NOT_SERVING"
            assert get_quote(pb, d.addr) in corpus.pairs
            served += 1
            assert d.proc.poll() is None, "stopped before the drain ended"
        assert served > 0
        assert w.finish() == ["SERVING", "NOT_SERVING", "END"]
        assert d.wait_exit() == 0, d.log()
        assert time.monotonic() - t0 >= 2.5, "drain cut short"
    finally:
        w.close()
    assert d.leftovers() == []


def test_watch_told_not_serving_before_stop(served, hr):
    """Without drain_time a Watch still hears NOT_SERVING before its
    stream ends, so a watcher can tell a stop from a network failure."""
    w = Watcher(hr, served.addr)
    try:
        assert w.wait_for(1) == ["SERVING"]
        served.wait_workers(2)
        served.send(signal.SIGTERM)
        assert w.finish() == ["SERVING", "NOT_SERVING", "END"]
    finally:
        w.close()
    assert served.wait_exit() == 0, served.log()


# ----------------------------------------------------------- reflection

def reflect(hr, addr, requests, version="v1alpha"):
    """Sends requests (kwargs dicts) on one reflection stream; returns
    the responses."""
    pb2, pb2_grpc = hr.refl[version]
    msgs = [pb2.ServerReflectionRequest(host="test", **r) for r in requests]
    with channel(addr) as ch:
        stub = pb2_grpc.ServerReflectionStub(ch)
        return list(stub.ServerReflectionInfo(iter(msgs), timeout=10))


def files_of(resp):
    return [descriptor_pb2.FileDescriptorProto.FromString(b)
            for b in resp.file_descriptor_response.file_descriptor_proto]


@pytest.mark.parametrize("version", ["v1alpha", "v1"])
def test_reflection_list_services(served, hr, version):
    [r] = reflect(hr, served.addr, [{"list_services": ""}], version)
    assert r.WhichOneof("message_response") == "list_services_response"
    names = [s.name for s in r.list_services_response.service]
    assert sorted(names) == sorted(SERVICES)


@pytest.mark.parametrize("version", ["v1alpha", "v1"])
def test_reflection_files_and_symbols(served, hr, version):
    """Several requests on one stream, answered in order, each echoing
    its request."""
    reqs = [{"file_by_filename": "quote_service.proto"},
            {"file_containing_symbol": "quotes.Quoter"},
            {"file_containing_symbol": "quotes.QuoteRequest"},
            {"file_containing_symbol": "quotes.Quoter.ListAuthors"},
            {"file_containing_symbol": "grpc.health.v1.Health"},
            {"file_containing_symbol": "no.such.Symbol"},
            {"file_by_filename": "no_such.proto"},
            {"list_services": "*"}]
    resps = reflect(hr, served.addr, reqs, version)
    assert len(resps) == len(reqs)
    pb2, _ = hr.refl[version]
    for req, r in zip(reqs, resps):
        assert r.original_request == pb2.ServerReflectionRequest(host="test", **req)

    for r in resps[:4]:
        assert r.WhichOneof("message_response") == "file_descriptor_response", r
        f = files_of(r)[0]
        assert f.name == "quote_service.proto" and f.package == "quotes"
        [svc] = f.service
        assert svc.name == "Quoter"
        methods = {m.name: (m.input_type, m.output_type) for m in svc.method}
        assert methods == {
            "GetQuote": (".quotes.QuoteRequest", ".quotes.QuoteReply"),
            "ListAuthors": (".quotes.ListAuthorsRequest",
                            ".quotes.ListAuthorsReply"),
            "SearchQuotes": (".quotes.SearchQuotesRequest",
                             ".quotes.SearchQuotesReply"),
            "ListTags": (".quotes.ListTagsRequest", ".quotes.ListTagsReply"),
            "GetQuoteOfTheDay": (".quotes.QuoteOfTheDayRequest",
                                 ".quotes.QuoteReply")}
        # The new filter fields are served too (issue #15).
        [req] = [m for m in f.message_type if m.name == "QuoteRequest"]
        assert {(x.name, x.number) for x in req.field} == {
            ("author", 1), ("min_length", 2), ("max_length", 3),
            ("query", 4), ("tags", 5), ("exact", 6)}
    health = files_of(resps[4])[0]
    assert health.package == "grpc.health.v1"
    assert [s.name for s in health.service] == ["Health"]
    for r in resps[5:7]:
        assert r.WhichOneof("message_response") == "error_response", r
        assert r.error_response.error_code == NOT_FOUND
    assert resps[7].WhichOneof("message_response") == "list_services_response"


def test_reflection_stream_answers_as_requests_come(served, hr):
    """Request, wait for its answer, then the next: the server answers
    each request without waiting for the client to finish sending."""
    pb2, pb2_grpc = hr.refl["v1"]
    q = queue.Queue()
    with channel(served.addr) as ch:
        responses = pb2_grpc.ServerReflectionStub(ch).ServerReflectionInfo(
            iter(q.get, None), timeout=10)
        for sym in ("quotes.QuoteReply", "nope", "quotes.ListAuthorsReply"):
            q.put(pb2.ServerReflectionRequest(file_containing_symbol=sym))
            r = next(responses)
            assert r.original_request.file_containing_symbol == sym
        q.put(None)
        assert list(responses) == []


def test_client_built_from_reflection_alone(served, hr, corpus):
    """As grpcurl does: descriptors from reflection, then GetQuote and
    ListAuthors with no .proto and no generated code."""
    resps = reflect(hr, served.addr, [
        {"list_services": ""}, {"file_containing_symbol": "quotes.Quoter"}], "v1")
    assert "quotes.Quoter" in [s.name for s in resps[0].list_services_response.service]
    pending = files_of(resps[1])
    pool = descriptor_pool.DescriptorPool()
    added = set()
    while pending:  # dependencies before their dependents
        ready = [f for f in pending if set(f.dependency) <= added]
        assert ready, f"unresolvable imports: {[f.name for f in pending]}"
        for f in ready:
            pool.Add(f)
            added.add(f.name)
            pending.remove(f)
    service = pool.FindServiceByName("quotes.Quoter")

    def message_class(desc):
        # GetMessageClass is protobuf >= 4.22; Debian 12 has 4.21.
        if hasattr(message_factory, "GetMessageClass"):
            return message_factory.GetMessageClass(desc)
        return message_factory.MessageFactory(pool).GetPrototype(desc)

    def stub(method_name):
        m = service.FindMethodByName(method_name)
        req, rep = message_class(m.input_type), message_class(m.output_type)
        return req, ch.unary_unary(f"/{service.full_name}/{m.name}",
                                   request_serializer=req.SerializeToString,
                                   response_deserializer=rep.FromString)

    with channel(served.addr) as ch:
        req, get = stub("GetQuote")
        r = get(req(author="Ada Lovelace"), timeout=5)
        assert (r.quote, r.author) in corpus.pairs and r.author == "Ada Lovelace"
        req, list_authors = stub("ListAuthors")
        r = list_authors(req(page_size=1000), timeout=5)
        assert sorted(r.authors) == sorted(corpus.authors)


# ------------------------------------------------------------------- TLS

@pytest.fixture(scope="session")
def tls(tmp_path_factory):
    """A CA, a server certificate for localhost and 127.0.0.1, and a
    client certificate, made with the openssl CLI (EC keys: fast)."""
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args):
        r = subprocess.run(["openssl", *args], cwd=d, capture_output=True,
                           text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, f"openssl {args}: {r.stderr}"

    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=quoterd test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    (d / "server.ext").write_text(
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for who in ("server", "client"):
        openssl("req", *ec, "-keyout", f"{who}.key", "-out", f"{who}.csr",
                "-subj", f"/CN={'localhost' if who == 'server' else 'client'}")
        openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem",
                "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
                "-extfile", f"{who}.ext", "-out", f"{who}.pem")
    return SimpleNamespace(dir=d, **{
        n.replace(".", "_"): d / n for n in
        ("ca.pem", "ca.key", "server.pem", "server.key", "client.pem", "client.key")})


def tls_quote(pb, addr, ca, key=None, cert=None, timeout=5.0):
    pb2, pb2_grpc = pb
    creds = grpc.ssl_channel_credentials(
        ca.read_bytes(), key.read_bytes() if key else None,
        cert.read_bytes() if cert else None)
    with grpc.secure_channel(addr, creds, options=CHANNEL_OPTIONS) as ch:
        r = pb2_grpc.QuoterStub(ch).GetQuote(pb2.QuoteRequest(), timeout=timeout)
    return r.quote, r.author


def tls_args(tls, client_ca=False):
    a = ["--tls-cert", str(tls.server_pem), "--tls-key", str(tls.server_key)]
    return a + (["--tls-client-ca", str(tls.ca_pem)] if client_ca else [])


def test_tls_server(quoterd, corpus, pb, tls):
    d = quoterd(db=corpus.db, extra=tls_args(tls))
    assert d.wait_serving(lambda: tls_quote(pb, d.addr, tls.ca_pem)) in corpus.pairs
    workers = d.wait_workers(2)
    # The certificate names localhost as well as 127.0.0.1.
    assert tls_quote(pb, f"localhost:{d.port}", tls.ca_pem) in corpus.pairs
    with pytest.raises(grpc.RpcError) as e:
        get_quote(pb, d.addr)  # plaintext
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    # A client that trusts another CA refuses the server.
    with pytest.raises(grpc.RpcError) as e:
        tls_quote(pb, d.addr, tls.client_pem)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    r = run_quote(["-s", d.addr, "-n", "2", "--tls-ca", str(tls.ca_pem)])
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 2
    # Failed handshakes harm no worker (the master alive proves nothing:
    # it would have replaced one).
    assert d.workers() == workers, d.log()


def test_mutual_tls(quoterd, corpus, pb, tls):
    d = quoterd(db=corpus.db, extra=tls_args(tls, client_ca=True))
    with_cert = lambda: tls_quote(pb, d.addr, tls.ca_pem, tls.client_key,
                                  tls.client_pem)
    assert d.wait_serving(with_cert) in corpus.pairs
    for anonymous in (lambda: tls_quote(pb, d.addr, tls.ca_pem),
                      lambda: get_quote(pb, d.addr)):
        with pytest.raises(grpc.RpcError) as e:
            anonymous()
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    # The C client, with and without its certificate.
    ok = run_quote(["-s", d.addr, "-n", "1", "--tls-ca", str(tls.ca_pem),
                    "--tls-cert", str(tls.client_pem), "--tls-key", str(tls.client_key)])
    assert ok.returncode == 0, ok.stderr
    refused = run_quote(["-s", d.addr, "-n", "1", "--tls-ca", str(tls.ca_pem)])
    assert refused.returncode == 1 and "UNAVAILABLE" in refused.stderr, refused.stderr
    assert with_cert() in corpus.pairs


@pytest.mark.parametrize("case", [
    "missing cert", "missing key", "missing client CA", "directory as cert",
    "cert not PEM", "key not PEM", "cert only", "key only", "client CA only"])
def test_tls_start_up_errors(quoterd, corpus, tls, tmp_path, case):
    """Checked by the master before any fork: exit 1 naming the file."""
    missing = tmp_path / "missing.pem"
    text = tmp_path / "text.txt"
    text.write_text("just some text\n")
    cert, key, ca = str(tls.server_pem), str(tls.server_key), str(tls.ca_pem)
    named, why = {
        "missing cert": (str(missing), "No such file or directory"),
        "missing key": (str(missing), "No such file or directory"),
        "missing client CA": (str(missing), "No such file or directory"),
        # Running as root, chmod cannot make a file unreadable; a
        # directory opens but cannot be read.
        "directory as cert": (str(tmp_path), "Is a directory"),
        "cert not PEM": (str(text), "not a PEM file"),
        "key not PEM": (str(text), "not a PEM file"),
        "cert only": ("tls_key", "needs both"),
        "key only": ("tls_cert", "needs both"),
        "client CA only": ("tls_cert", "needs both"),
    }[case]
    args = {
        "missing cert": ["--tls-cert", str(missing), "--tls-key", key],
        "missing key": ["--tls-cert", cert, "--tls-key", str(missing)],
        "missing client CA": ["--tls-cert", cert, "--tls-key", key,
                              "--tls-client-ca", str(missing)],
        "directory as cert": ["--tls-cert", str(tmp_path), "--tls-key", key],
        "cert not PEM": ["--tls-cert", str(text), "--tls-key", key],
        "key not PEM": ["--tls-cert", cert, "--tls-key", str(text)],
        "cert only": ["--tls-cert", cert],
        "key only": ["--tls-key", key],
        "client CA only": ["--tls-client-ca", ca],
    }[case]
    d = quoterd(db=corpus.db, extra=args)
    log = d.expect_exit(1)
    assert named in log and why in log, log
    assert "worker" not in log, "forked despite a bad TLS setting"


@pytest.mark.parametrize("key,why", [
    ("ca_pem", "no private key in it"),
    ("client_key", "does not match the certificate")],
    ids=["certificate as key", "key of another cert"])
def test_tls_unusable_key_refused(quoterd, corpus, tls, key, why):
    """PEM files that only OpenSSL can judge: the master checks that the
    key is the certificate's before any fork (it once left that to each
    worker's gRPC), exit 1."""
    d = quoterd(db=corpus.db, extra=["--tls-cert", str(tls.server_pem),
                                     "--tls-key", str(getattr(tls, key))])
    log = d.expect_exit(1)
    assert why in log and str(getattr(tls, key)) in log, log
    assert "worker" not in log, "forked despite a bad TLS pair"


# ----------------------------------------------------------- Unix sockets

def test_unix_socket_spreads_connections(quoterd, corpus, pb, sock_path):
    d = unix_daemon(quoterd, corpus.db, sock_path)
    d.wait_ready(pb)
    d.wait_workers(2)
    for _ in range(20):  # a fresh connection each
        assert get_quote(pb, d.addr) in corpus.pairs
    r = run_quote(["-s", d.addr, "-n", "3"])
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3, r.stderr
    assert d.stop() == 0, d.log()
    calls = worker_calls(d.log())
    assert sorted(calls) == [0, 1] and min(calls.values()) > 0, d.log()
    assert not os.path.exists(sock_path), "socket file left behind"
    assert d.leftovers() == []


def test_unix_socket_new_worker_gets_connections(quoterd, corpus, pb, sock_path):
    # -v: the master logs "worker N ready" at debug level, and only ready
    # workers are handed connections.
    d = unix_daemon(quoterd, corpus.db, sock_path, extra=["-v"])
    d.wait_ready(pb)
    d.wait_workers(2)
    d.send(signal.SIGTTIN)
    d.wait_workers(3)
    wait_until(lambda: "master: worker 2 ready" in d.log(), 10,
               lambda: f"worker 2 ready; stderr:\n{d.log()}")
    for _ in range(30):
        assert get_quote(pb, d.addr) in corpus.pairs
    assert d.stop() == 0, d.log()
    calls = worker_calls(d.log())
    assert sorted(calls) == [0, 1, 2] and min(calls.values()) > 0, d.log()


def test_unix_socket_stale_file_reused(quoterd, corpus, pb, sock_path):
    first = unix_daemon(quoterd, corpus.db, sock_path)
    first.wait_ready(pb)
    first.wait_workers(2)
    first.proc.kill()  # no chance to remove its socket file
    first.proc.wait(5)
    wait_until(lambda: first.leftovers() == [], 10, "the workers to go")
    assert os.path.exists(sock_path)
    second = unix_daemon(quoterd, corpus.db, sock_path)
    assert second.wait_ready(pb) in corpus.pairs


def test_unix_socket_in_use(quoterd, corpus, pb, sock_path):
    live = unix_daemon(quoterd, corpus.db, sock_path)
    live.wait_ready(pb)
    other = unix_daemon(quoterd, corpus.db, sock_path)
    code = other.wait_exit(10)
    assert code != 0 and "Address already in use" in other.log(), other.log()
    # The refused daemon took nothing away from the live one.
    assert os.path.exists(sock_path)
    assert get_quote(pb, live.addr) in corpus.pairs


def test_unix_socket_with_tls_refused(quoterd, corpus, tls, sock_path):
    d = unix_daemon(quoterd, corpus.db, sock_path, extra=tls_args(tls))
    log = d.expect_exit(1)
    assert "TLS is for TCP listeners" in log, log


# ----------------------------------------------------------------- limits

def test_max_request_size_gzip(quoterd, corpus, pb):
    """With accept_compressed, compressed requests are accepted, and the
    limit applies to the decompressed size: 5000 bytes that gzip to a few
    dozen are refused."""
    d = quoterd(db=corpus.db,
                config="max_request_size = 100\naccept_compressed = yes\n")
    d.wait_ready(pb)
    pb2, pb2_grpc = pb
    with channel(d.addr) as ch:
        stub = pb2_grpc.QuoterStub(ch)
        gz = grpc.Compression.Gzip
        r = stub.GetQuote(pb2.QuoteRequest(author="Mark Twain"), timeout=5,
                          compression=gz)
        assert r.author == "Mark Twain"
        r = pb2_grpc.QuoterStub(ch).ListAuthors(
            pb2.ListAuthorsRequest(page_size=5), timeout=5, compression=gz)
        assert len(r.authors) == 5
        for author in ("a" * 5000, "a" * 200000):
            with pytest.raises(grpc.RpcError) as e:
                stub.GetQuote(pb2.QuoteRequest(author=author), timeout=5,
                              compression=gz)
            assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert stub.GetQuote(pb2.QuoteRequest(), timeout=5,
                             compression=gz).author in corpus.authors


def test_max_concurrent_streams(quoterd, corpus, pb, hr):
    """With max_concurrent_streams = 1 an open Watch stream occupies its
    connection: a second call there waits (here past its deadline),
    another connection is unaffected, and the waiting call goes through
    once the stream ends."""
    d = quoterd(db=corpus.db, config="max_concurrent_streams = 1\n")
    d.wait_ready(pb)
    pb2, pb2_grpc = pb
    with channel(d.addr) as ch:
        watch = hr.health_grpc.HealthStub(ch).Watch(
            hr.health.HealthCheckRequest(), timeout=30)
        assert status_name(hr, next(watch).status) == "SERVING"
        stub = pb2_grpc.QuoterStub(ch)
        with pytest.raises(grpc.RpcError) as e:
            stub.GetQuote(pb2.QuoteRequest(), timeout=0.5)
        assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert get_quote(pb, d.addr) in corpus.pairs
        waiting = stub.GetQuote.future(pb2.QuoteRequest(), timeout=10)
        with pytest.raises(grpc.FutureTimeoutError):
            waiting.result(timeout=0.3)
        watch.cancel()
        r = waiting.result(timeout=10)
        assert (r.quote, r.author) in corpus.pairs


def test_max_connection_age(quoterd, corpus, pb):
    """max_connection_age = 1: the server sends GOAWAY about every second;
    a busy client's channel reconnects by itself and no call fails."""
    d = quoterd(db=corpus.db, config="max_connection_age = 1\n"
                                     "max_connection_age_grace = 1\n")
    d.wait_ready(pb)
    pb2, pb2_grpc = pb
    errors, ok = [], 0
    with channel(d.addr) as ch:
        states = States(ch)
        stub = pb2_grpc.QuoterStub(ch)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.5:
            try:
                r = stub.GetQuote(pb2.QuoteRequest(), timeout=5)
                ok += (r.quote, r.author) in corpus.pairs
            except grpc.RpcError as e:
                errors.append(f"{e.code()}: {e.details()}")
            time.sleep(0.02)
        seen = states.names()
    assert errors == [], errors
    assert ok > 20
    # Each new connection is a new READY; without the limit there is one.
    assert seen.count("READY") >= 2, seen
    assert problems(d) == [], d.log()


def test_max_connection_idle(quoterd, corpus, pb):
    d = quoterd(db=corpus.db, config="max_connection_idle = 1\n")
    d.wait_ready(pb)
    pb2, pb2_grpc = pb
    with channel(d.addr) as ch:
        states = States(ch)
        stub = pb2_grpc.QuoterStub(ch)
        assert stub.GetQuote(pb2.QuoteRequest(), timeout=5).author in corpus.authors
        # The server closes the idle connection (gRPC checks the idle time
        # about once a second); the channel goes IDLE and reconnects on use.
        # (States are reported by another thread, possibly late.)
        wait_until(states.dropped, 8,
                   lambda: f"the channel to go IDLE (states {states.names()})")
        assert stub.GetQuote(pb2.QuoteRequest(), timeout=5).author in corpus.authors


def test_stop_gives_our_calls_shutdown_timeout(quoterd, corpus, pb):
    """A stop cancels what gRPC holds once the worker's own calls are done,
    but never a call of ours before shutdown_timeout: a GetQuote whose
    reply the client will not take (flow-control window 0) is still in
    flight 2 s into the stop, then cancelled with a warning, and the
    worker exits 0."""
    d = quoterd(db=corpus.db, workers=1, config="shutdown_timeout = 2\n")
    d.wait_ready(pb)
    h2 = H2(d.addr, initial_window=0)
    try:
        h2.call("/quotes.Quoter/GetQuote")
        h2.reply_headers()  # the call is ours now
        d.send(signal.SIGTERM)
        assert d.wait_exit() == 0, d.log()
    finally:
        h2.close()
    assert "calls still in flight after 2 s: cancelling them" in d.log(), d.log()


def test_keepalive_drops_silent_client(quoterd, corpus, pb):
    """keepalive_time = 1, keepalive_timeout = 1: a client with a call
    open is pinged about every second while it answers, and dropped about
    a second after it stops answering. (gRPC pings only connections with
    calls open: the server does not set keepalive_permit_without_calls.)"""
    d = quoterd(db=corpus.db, config="keepalive_time = 1\nkeepalive_timeout = 1\n")
    d.wait_ready(pb)
    workers = d.wait_workers(2)
    h2 = H2(d.addr)
    try:
        h2.watch()
        t0 = time.monotonic()
        pings, got_data = [], False
        # Answering: keepalive pings keep coming (the first PING, right
        # after the request, is gRPC's bandwidth probe).
        while len(pings) < 3:
            f = h2.next_frame(t0 + 6)
            assert f is not None, "dropped while answering pings"
            got_data |= f[0] == 0
            if f[0] == 6 and not f[1] & 1:
                pings.append(time.monotonic() - t0)
        assert got_data, "no Watch reply"
        assert pings[-1] >= 0.8, pings
        # Silent: the next ping goes unanswered and the server hangs up.
        h2.ack_pings = False
        t1 = time.monotonic()
        unanswered = None
        while (f := h2.next_frame(t1 + 8)) is not None:
            if f[0] == 6 and not f[1] & 1 and unanswered is None:
                unanswered = time.monotonic()
        assert unanswered is not None, "closed without pinging"
        # About a second; the upper bound only tells it from the end of
        # next_frame's own 8 s wait.
        assert 0.5 <= time.monotonic() - unanswered <= 7
    finally:
        h2.close()
    assert d.workers() == workers, d.log()
    assert get_quote(pb, d.addr) in corpus.pairs


def test_keepalive_min_ping_interval(quoterd, corpus, pb):
    """A client pinging every 100 ms, against keepalive_min_ping_interval
    = 10, is told too_many_pings and disconnected."""
    d = quoterd(db=corpus.db, config="keepalive_min_ping_interval = 10\n")
    d.wait_ready(pb)
    workers = d.wait_workers(2)
    pb2, pb2_grpc = pb
    opts = CHANNEL_OPTIONS + [("grpc.keepalive_time_ms", 100),
                              ("grpc.keepalive_permit_without_calls", 1),
                              ("grpc.http2.max_pings_without_data", 0)]
    with grpc.insecure_channel(d.addr, options=opts) as ch:
        states = States(ch)
        stub = pb2_grpc.QuoterStub(ch)
        assert stub.GetQuote(pb2.QuoteRequest(), timeout=5).author in corpus.authors
        wait_until(states.dropped, 10,
                   lambda: f"a disconnect (states {states.names()})")
    assert d.workers() == workers, d.log()
    assert get_quote(pb, d.addr) in corpus.pairs


def test_tiny_deadlines(quoterd, corpus, pb):
    """Deadlines of 1 ms, on a new connection and by the hundred on an
    open one: each call ends OK or DEADLINE_EXCEEDED, never hangs, and
    the server is unharmed."""
    d = quoterd(db=corpus.db)
    d.wait_ready(pb)
    workers = d.wait_workers(2)
    pb2, pb2_grpc = pb
    allowed = {grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED}

    def outcome(fut):
        try:
            fut.result(timeout=10)
            return grpc.StatusCode.OK
        except grpc.RpcError as e:
            return e.code()

    with channel(d.addr) as ch:
        stub = pb2_grpc.QuoterStub(ch)
        assert outcome(stub.GetQuote.future(pb2.QuoteRequest(), timeout=0.001)) in allowed
        stub.GetQuote(pb2.QuoteRequest(), timeout=5)  # connected now
        for timeout in (0.001, 0.0001, 0.002):
            futs = [stub.GetQuote.future(pb2.QuoteRequest(), timeout=timeout)
                    for _ in range(150)]
            codes = {outcome(f) for f in futs}
            assert codes <= allowed, codes
    for _ in range(10):
        assert get_quote(pb, d.addr) in corpus.pairs
    assert d.workers() == workers, "a worker was replaced"
    assert problems(d) == [], d.log()


@pytest.mark.parametrize("line", [
    "drain_time = -1", "max_request_size = 10", "max_concurrent_streams = abc",
    "max_connection_age = 99999999999", "max_connection_age_grace = 1.5",
    "max_connection_idle = ", "keepalive_time = -5", "keepalive_timeout = 1s",
    "keepalive_min_ping_interval = 0x10", "shutdown_timeout = 3601",
    "tls_cert = ",
])
def test_bad_setting_values(quoterd, corpus, line):
    d = quoterd(db=corpus.db, config=f"# limits\n{line}\n")
    log = d.expect_exit(1)
    key = line.split("=")[0].strip()
    assert f"quoterd.conf:2: {key}:" in log, log


# ------------------------------------------------------------ ListAuthors

@pytest.fixture(scope="session")
def many(tmp_path_factory, binaries):
    """1205 authors, one quote each: more than ListAuthors' 1000 cap, with
    names whose byte order differs from other orders (case, accents, CJK)."""
    names = ([f"Author {i:04d}" for i in range(1175)] + AUTHORS
             + ["émile", "Émile", "Zz", "zz top", "ß", "a", "A", "Aa", "ZZZ",
                "Ω"])
    assert len(names) == len(set(names)) == 1205
    return make_corpus(tmp_path_factory.mktemp("many"), {n: 1 for n in names})


def byte_order(names):
    return sorted(names, key=lambda s: s.encode())


@pytest.fixture
def served_many(quoterd, many, pb):
    d = quoterd(db=many.db)
    d.wait_ready(pb)
    return d


def list_page(pb, ch, page_size=0, page_token="", compression=None):
    pb2, pb2_grpc = pb
    r = pb2_grpc.QuoterStub(ch).ListAuthors(
        pb2.ListAuthorsRequest(page_size=page_size, page_token=page_token),
        timeout=5, compression=compression)
    return list(r.authors), r.next_page_token


def test_list_authors_pages_of_three(served_many, many, pb):
    expected = byte_order(many.authors)
    got, token, pages = [], "", 0
    with channel(served_many.addr) as ch:
        while True:
            names, token = list_page(pb, ch, 3, token)
            pages += 1
            assert len(names) == 3 or not token, (names, token)
            if token:
                assert token == names[-1]
            got += names
            if not token:
                break
            assert pages < 1000, "paging does not end"
    assert got == expected
    assert pages == 402  # 401 full pages and one of 2


def test_list_authors_page_sizes(served_many, many, pb):
    expected = byte_order(many.authors)
    with channel(served_many.addr) as ch:
        names, token = list_page(pb, ch, 0)
        assert names == expected[:100] and token == expected[99]
        names, token = list_page(pb, ch, 5000)
        assert names == expected[:1000] and token
        rest, last = list_page(pb, ch, 5000, token)
        assert rest == expected[1000:] and last == ""
        # A last page that is exactly full still says it is the last.
        names, token = list_page(pb, ch, 205, expected[999])
        assert names == expected[1000:] and token == ""
        # A token needs not be a name: the page starts after it.
        names, _ = list_page(pb, ch, 2, "Author 0500x")
        assert names == ["Author 0501", "Author 0502"]
        for past in (expected[-1], "\U0010ffff"):
            assert list_page(pb, ch, 10, past) == ([], "")


@pytest.mark.parametrize("body", [
    b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # page_size = -1
    b"\x12\x02\xff\xfe",                              # token not UTF-8
    b"\x12\x01",                                      # truncated
], ids=["negative page_size", "token not UTF-8", "undecodable"])
def test_list_authors_invalid_requests(served_many, pb, body):
    with pytest.raises(grpc.RpcError) as e:
        raw_call(served_many.addr, LIST, body)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with channel(served_many.addr) as ch:
        assert len(list_page(pb, ch, 10)[0]) == 10


def test_quote_list_authors(served_many, many):
    r = run_quote(["-s", served_many.addr, "--list-authors"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == byte_order(many.authors)
