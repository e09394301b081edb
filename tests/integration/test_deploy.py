"""The deployment files that cannot run on this machine (no cluster, no
registry, no container engine) are checked against what does run here:

- deploy/kubernetes/*.yaml parse; the ConfigMap's quoterd.conf passes
  `quoterd --test` and is served by a real quoterd whose health service
  answers SERVING to exactly the services the probes ask about; every
  port, probe, path and label agrees with that configuration, with the
  other manifests and with what the Containerfile installs; the timing
  rules (grace period, drain, probe windows) hold; workers come from the
  CPU limit.
- deploy/container/Containerfile: Debian 12 bases, the project's own
  `make all`, build packages that scripts/deps.sh also installs, runtime
  packages that provide every shared library the built programs link.
- deploy/container/quoterd-db-sync (the init container and sidecar) is
  run for real: against a loopback HTTP server and a running quoterd, it
  installs a first database, a newer one (quoterd swaps it), leaves an
  unchanged one alone and refuses a corrupt one.
"""

import os
import re
import shlex
import shutil
import signal
import subprocess
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from conftest import (BUILD, QUOTERD, SRC, channel, child_env, get_quote,
                      make_corpus, run_quoterd, wait_until)

K8S = SRC / "deploy" / "kubernetes"
CONTAINER = SRC / "deploy" / "container"
CONTAINERFILE = CONTAINER / "Containerfile"
SYNC = CONTAINER / "quoterd-db-sync"
# Seconds for a deleted pod's endpoint removal to reach kube-proxy, DNS
# and clients: drain_time must cover it beyond the readiness window.
PROPAGATION = 5


# ------------------------------------------------------------------ parsing

@pytest.fixture(scope="module")
def manifests():
    """{(kind, name): object} over every manifest but the kustomization."""
    out = {}
    for f in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(f.read_text()):
            assert doc and "kind" in doc, f
            if doc["kind"] == "Kustomization":
                continue
            key = (doc["kind"], doc["metadata"]["name"])
            assert key not in out, f"{key} twice"
            out[key] = doc
    return out


def conf_values(text):
    """quoterd.conf as {key: value} (the file format: key = value, #)."""
    out = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            k, v = (s.strip() for s in line.split("=", 1))
            out[k] = v
    return out


@pytest.fixture(scope="module")
def k8s(manifests):
    cm = manifests[("ConfigMap", "quoterd-config")]
    dep = manifests[("Deployment", "quoterd")]
    pod = dep["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    inits = {c["name"]: c for c in pod.get("initContainers", [])}
    return dict(cm=cm, conf_text=cm["data"]["quoterd.conf"],
                conf=conf_values(cm["data"]["quoterd.conf"]), dep=dep, pod=pod,
                quoterd=containers["quoterd"], containers=containers,
                inits=inits)


def containerfile():
    """(stages: [(base image, [instructions])], final stage instructions).
    Continuation lines are joined."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    stages = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append((rest.split()[0], []))
        else:
            stages[-1][1].append((word.upper(), rest.strip()))
    return stages


def apt_packages(run):
    """Package names after `apt-get install` in a RUN line."""
    m = re.search(r"apt-get install (.*?)(&&|$)", run)
    return {w for w in m.group(1).split() if not w.startswith("-")} if m else set()


def installed_files():
    """Absolute paths the final image gets from COPY (directories with a
    trailing / take the source's basename)."""
    out = set()
    for word, rest in containerfile()[-1][1]:
        if word != "COPY":
            continue
        args = [a for a in shlex.split(rest) if not a.startswith("--")]
        *srcs, dest = args
        for s in srcs:
            out.add(dest + os.path.basename(s) if dest.endswith("/") else dest)
    return out


# ------------------------------------------------------------- manifests

def test_kustomization_lists_every_manifest():
    k = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {f.name for f in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(k["resources"]) == files
    # The image the manifests name is the one the kustomization retags.
    names = {img["name"] for img in k["images"]}
    for doc in yaml.safe_load_all((K8S / "deployment.yaml").read_text()):
        pod = doc["spec"]["template"]["spec"]
        for c in pod["containers"] + pod.get("initContainers", []):
            assert c["image"].rsplit(":", 1)[0] in names, c["image"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="no kubectl")
def test_kustomize_renders():
    # Only where kubectl happens to be installed: Debian ships none.
    r = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(r.stdout))
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget",
                     "Service", "Service"]


def test_configmap_config_passes_quoterd_test(k8s, tmp_path, binaries):
    conf = tmp_path / "quoterd.conf"
    conf.write_text(k8s["conf_text"])
    db = make_corpus(tmp_path / "c").db
    # The database path is the pod's; this one stands in for it.
    r = run_quoterd(["-c", str(conf), "--db", str(db), "--test"])
    assert r.returncode == 0, r.stderr
    assert "configuration ok" in r.stdout + r.stderr


def test_probes_ask_what_quoterd_serves(k8s, quoterd, pb, tmp_path):
    """quoterd run on the ConfigMap's configuration (listen and database
    moved to the test's): the services the probes name are SERVING."""
    db = make_corpus(tmp_path / "c").db
    d = quoterd(db=db, config=k8s["conf_text"], workers=1)
    d.wait_ready(pb)
    q = k8s["quoterd"]
    for probe in ("readinessProbe", "livenessProbe"):
        service = q[probe]["grpc"].get("service", "")
        assert _health(d.addr, service) == "SERVING", (probe, service)
    assert q["readinessProbe"]["grpc"]["service"] == "quotes.Quoter"
    # (Not stopped gracefully: its drain_time is the pod's, 10 s; the
    # fixture kills it.)


def _health(addr, service):
    """Health Check through a raw call (no generated stubs needed): the
    reply is field 1, a varint status; SERVING is 1."""
    body = b"\x0a" + bytes([len(service)]) + service.encode() if service else b""
    with channel(addr) as ch:
        reply = ch.unary_unary("/grpc.health.v1.Health/Check")(body, timeout=5)
    return {b"\x08\x01": "SERVING", b"\x08\x02": "NOT_SERVING"}.get(reply, reply)


def test_ports_agree(k8s, manifests):
    port = int(k8s["conf"]["listen"].rsplit(":", 1)[1])
    q = k8s["quoterd"]
    ports = {p["name"]: p["containerPort"] for p in q["ports"]}
    metrics = int(k8s["conf"]["metrics_listen"].rsplit(":", 1)[1])
    assert ports == {"grpc": port, "metrics": metrics}
    annotations = k8s["dep"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(metrics)
    for probe in ("readinessProbe", "livenessProbe"):
        assert q[probe]["grpc"]["port"] == port, probe
    for (kind, name), svc in manifests.items():
        if kind != "Service":
            continue
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in ("grpc", port), (name, p)
            assert p["port"] == port, (name, p)
    assert manifests[("Service", "quoterd-headless")]["spec"]["clusterIP"] == "None"
    assert manifests[("Service", "quoterd")]["spec"].get("type", "ClusterIP") == "ClusterIP"
    # The image says the same.
    assert ("EXPOSE", f"{port} {metrics}") in containerfile()[-1][1]


def test_selectors_match_pods(k8s, manifests):
    labels = k8s["dep"]["spec"]["template"]["metadata"]["labels"]
    sel = k8s["dep"]["spec"]["selector"]["matchLabels"]
    assert sel.items() <= labels.items()
    for (kind, name), doc in manifests.items():
        if kind == "Service":
            assert doc["spec"]["selector"].items() <= labels.items(), name
        if kind == "PodDisruptionBudget":
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items()
            # One pod at a time, and never the only one.
            assert doc["spec"].get("maxUnavailable", 0) == 1
            assert k8s["dep"]["spec"]["replicas"] >= 2


def test_timing_rules(k8s):
    conf, pod, q = k8s["conf"], k8s["pod"], k8s["quoterd"]
    drain, shutdown = int(conf["drain_time"]), int(conf["shutdown_timeout"])
    # The kubelet's SIGKILL comes after the drain and the calls' end.
    assert pod["terminationGracePeriodSeconds"] > drain + shutdown
    # The drain outlasts readiness turning and the news spreading.
    r = q["readinessProbe"]
    assert drain > r["periodSeconds"] * r["failureThreshold"] + PROPAGATION
    # Liveness never fails a pod for draining (health is NOT_SERVING).
    live = q["livenessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] > drain + shutdown
    # Rolling updates add a pod before taking one away.
    ru = k8s["dep"]["spec"]["strategy"]["rollingUpdate"]
    assert ru["maxUnavailable"] == 0 and ru["maxSurge"] >= 1


def test_workers_follow_cpu_limit(k8s):
    q = k8s["quoterd"]
    env = {e["name"]: e for e in q["env"]}
    ref = env["QUOTERD_WORKERS"]["valueFrom"]["resourceFieldRef"]
    assert ref == {"containerName": "quoterd", "resource": "limits.cpu",
                   "divisor": "1"}
    args = q["args"]
    assert args[args.index("--workers") + 1] == "$(QUOTERD_WORKERS)"
    assert "cpu" in q["resources"]["limits"]
    for c in list(k8s["containers"].values()) + list(k8s["inits"].values()):
        req = c["resources"]["requests"]
        assert "cpu" in req and "memory" in req, c["name"]


def test_paths_match_image_and_config(k8s):
    files = installed_files()
    conf, pod, q = k8s["conf"], k8s["pod"], k8s["quoterd"]
    entry = [e for w, e in containerfile()[-1][1] if w == "ENTRYPOINT"]
    assert entry and yaml.safe_load(entry[0])[0] in files
    # quoterd reads the ConfigMap where -c says, from the key mounted.
    args = q["args"]
    cfile = args[args.index("-c") + 1]
    mounts = {m["name"]: m for m in q["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    cfg = mounts["config"]
    assert os.path.dirname(cfile) == cfg["mountPath"]
    items = vols["config"]["configMap"]["items"]
    assert vols["config"]["configMap"]["name"] == k8s["cm"]["metadata"]["name"]
    assert {i["path"]: i["key"] for i in items}[os.path.basename(cfile)] == "quoterd.conf"
    # The database volume is where the configuration looks, in quoterd
    # (read-only) and in the containers that write it.
    dbdir = os.path.dirname(conf["database"])
    assert mounts["database"]["mountPath"] == dbdir
    assert mounts["database"].get("readOnly") is True
    assert "emptyDir" in vols["database"]
    writers = [c for c in list(k8s["containers"].values()) +
               list(k8s["inits"].values()) if c["name"] != "quoterd"]
    assert writers, "nothing delivers the database"
    cms = k8s["cm"]["data"]
    for c in writers:
        assert c["command"][0] in files, c["command"]
        assert c["command"][0].endswith("/quoterd-db-sync")
        wm = {m["name"]: m for m in c["volumeMounts"]}
        assert wm["database"]["mountPath"] == dbdir and not wm["database"].get("readOnly")
        env = {e["name"]: e for e in c["env"]}
        assert env["QUOTERD_DB"]["value"] == conf["database"]
        for var in ("QUOTERD_DB_URL", "QUOTERD_DB_INTERVAL"):
            key = env[var]["valueFrom"]["configMapKeyRef"]
            assert key["name"] == k8s["cm"]["metadata"]["name"] and key["key"] in cms
    assert [c["command"][1:] for c in k8s["inits"].values()] == [["--once"]]
    # The image's user is the pod's.
    user = [r for w, r in containerfile()[-1][1] if w == "USER"]
    assert user == [f"{pod['securityContext']['runAsUser']}:"
                    f"{pod['securityContext']['runAsGroup']}"]
    # The sync script runs quoterd where the image puts it.
    assert "/usr/local/bin/quoterd" in files
    assert "/usr/local/bin/quoterd}" in SYNC.read_text()


# ------------------------------------------------------------ Containerfile

def test_containerfile_builds_with_the_project_build():
    stages = containerfile()
    assert [b.split(":")[0] for b, _ in stages] == ["debian", "debian"]
    assert all(b.split(":")[1].startswith("12") for b, _ in stages), stages
    build_runs = " ".join(r for w, r in stages[0][1] if w == "RUN")
    assert "make clean && make" in build_runs and " all" in build_runs
    # Each COPY source from the context exists; each --from copies from
    # the build stage's build/ tree.
    for word, rest in stages[-1][1]:
        if word == "COPY":
            args = shlex.split(rest)
            srcs = [a for a in args if not a.startswith("--")][:-1]
            if any(a.startswith("--from=") for a in args):
                assert all(re.match(r"/src/build/(quoterd|quote|quotes-import)$", s)
                           for s in srcs), srcs
            else:
                assert all((SRC / s).exists() for s in srcs), srcs


def test_containerfile_packages():
    stages = containerfile()
    deps = (SRC / "scripts" / "deps.sh").read_text()
    listed = set(re.search(r'pkgs="(.*?)"', deps, re.S).group(1).split())
    build = set().union(*(apt_packages(r) for w, r in stages[0][1] if w == "RUN"))
    assert build and build <= listed, build - listed
    runtime = set().union(*(apt_packages(r) for w, r in stages[-1][1] if w == "RUN"))
    # Every shared library of the built programs comes from a runtime
    # package or something it depends on (as installed here).
    closure = _depends_closure(runtime)
    for prog in ("quoterd", "quote", "quotes-import"):
        for pkg in _library_packages(BUILD / prog):
            assert pkg in closure, f"{prog} needs {pkg}, which the image lacks"
    # quoterd-db-sync needs curl.
    assert "curl" in runtime


def _library_packages(binary):
    out = subprocess.run(["ldd", str(binary)], capture_output=True, text=True,
                         timeout=30, check=True).stdout
    libs = re.findall(r"=> (/\S+)", out)
    # With /lib a link to /usr/lib, dpkg knows each file under one of its
    # names: ask for all of them at once (dpkg -S is slow), and fail only
    # if one has none.
    names = {}
    for path in libs:
        real = os.path.realpath(path)
        for n in (path, real, re.sub(r"^/usr/lib/", "/lib/", real)):
            names[n] = path
    r = subprocess.run(["dpkg", "-S"] + sorted(names), capture_output=True,
                       text=True, timeout=120)
    pkgs, owned = set(), set()
    for line in r.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        if path in names:
            pkgs.add(pkg.split(":")[0])
            owned.add(names[path])
    assert owned == set(libs), f"no package owns {set(libs) - owned}"
    # A SANITIZE=1 build links the sanitizer runtimes; the image's build
    # does not.
    return {p for p in pkgs if not re.match(r"lib(asan|ubsan|lsan)\d", p)}


def _depends_closure(pkgs):
    seen, level = set(), set(pkgs)
    while level:
        seen |= level
        r = subprocess.run(["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}\n"]
                           + sorted(level), capture_output=True, text=True,
                           timeout=60)
        found = set()
        for alt in re.split(r"[,|\n]", r.stdout):
            name = alt.strip().split(" ")[0].split(":")[0]
            if name:
                found.add(name)
        level = found - seen
    # Essential packages are in every Debian image.
    return seen | {"libc6", "libgcc-s1"}


# ------------------------------------------------------- quoterd-db-sync

class Store:
    """A loopback HTTP server over a directory (it answers
    If-Modified-Since with 304, as object stores and nginx do)."""

    def __init__(self, directory):
        handler = partial(_QuietHandler, directory=str(directory))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/quotes.mdb"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def publish(store_dir, src, mtime):
    """A new file at the store, with a given modification time (HTTP dates
    have one-second resolution)."""
    tmp = store_dir / ".new"
    shutil.copyfile(src, tmp)
    os.utime(tmp, (mtime, mtime))
    os.rename(tmp, store_dir / "quotes.mdb")


def run_sync(env, *args, timeout=30):
    """quoterd-db-sync run to completion: (exit status, stderr), or None if
    still running after timeout (then it and its sleep are killed)."""
    p = subprocess.Popen(["/bin/sh", str(SYNC), *args], env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        _, err = p.communicate(timeout=timeout)
        return p.returncode, err
    except subprocess.TimeoutExpired:
        return None
    finally:
        _kill_group(p)


def _kill_group(p):
    """SIGKILL to the session p leads (p and a sleep it may have left)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.wait(5)
    if p.stderr:
        p.stderr.close()


def test_db_sync_delivers_and_quoterd_swaps(quoterd, pb, tmp_path):
    v1 = make_corpus(tmp_path / "v1", {"Version One": 3})
    v2 = make_corpus(tmp_path / "v2", {"Version Two": 3})
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    vol = tmp_path / "volume"
    vol.mkdir()
    db = vol / "quotes.mdb"
    t0 = int(time.time()) - 1000
    publish(store_dir, v1.db, t0)
    store = Store(store_dir)
    try:
        env = child_env(QUOTERD_DB_URL=store.url, QUOTERD_DB=str(db),
                        QUOTERD_DB_INTERVAL="0.2", QUOTERD_BIN=str(QUOTERD))
        # The init container: the first file, then quoterd can start.
        rc, err = run_sync(env, "--once")
        assert rc == 0, err
        assert db.read_bytes() == v1.db.read_bytes()
        assert int(db.stat().st_mtime) == t0  # the server's time kept
        d = quoterd(db=db, workers=1)
        d.wait_ready(pb)
        assert get_quote(pb, d.addr)[1] == "Version One"

        # The sidecar: an unchanged file is left alone (the same inode).
        inode = db.stat().st_ino
        with open(tmp_path / "sync.log", "wb") as errf:
            sidecar = subprocess.Popen(["/bin/sh", str(SYNC)], env=env,
                                       stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=errf,
                                       start_new_session=True)
        try:
            def log():
                return (tmp_path / "sync.log").read_text()
            # A corrupt file at the store is refused, and the served one kept.
            publish(store_dir, SYNC, t0 + 10)  # a shell script, not a database
            wait_until(lambda: "refused" in log(), 30, lambda: log())
            assert db.stat().st_ino == inode
            assert "installed" not in log()
            # A newer good one is installed; quoterd swaps by itself.
            publish(store_dir, v2.db, t0 + 20)
            wait_until(lambda: "installed" in log(), 30, lambda: log())
            wait_until(lambda: get_quote(pb, d.addr)[1] == "Version Two", 30,
                       lambda: d.log())
            assert db.read_bytes() == v2.db.read_bytes()
            assert not (vol / ".quotes.mdb.download").exists()
            # The pod's SIGTERM stops the sidecar at once.
            sidecar.send_signal(signal.SIGTERM)
            assert sidecar.wait(10) == 0
        finally:
            _kill_group(sidecar)
        assert d.stop() == 0
    finally:
        store.close()


def test_db_sync_once_waits_for_a_database(tmp_path):
    """With nothing at the URL yet, the init container keeps trying (here
    cut short) and writes nothing."""
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    store = Store(store_dir)
    db = tmp_path / "vol" / "quotes.mdb"
    db.parent.mkdir()
    try:
        env = child_env(QUOTERD_DB_URL=store.url, QUOTERD_DB=str(db),
                        QUOTERD_BIN=str(QUOTERD))
        assert run_sync(env, "--once", timeout=2) is None
        assert list(db.parent.iterdir()) == []
    finally:
        store.close()
