"""systemd integration: the installed unit verifies and keeps its
hardening; quoterd speaks the notification protocol of a Type=notify
service to a NOTIFY_SOCKET this test binds; ExecReload's command ends
with the reload, as systemd 252 (no Type=notify-reload) needs."""

import os
import re
import shutil
import signal
import socket
import subprocess

import pytest

from conftest import SRC, reload_command
from test_install import make

UNIT = "/usr/lib/systemd/system/quoterd.service"


@pytest.fixture
def root(tmp_path, binaries):
    """make install PREFIX=/usr into a DESTDIR, plus what systemd-analyze
    --root needs there: the system's own units (the targets ours is
    ordered against)."""
    root = tmp_path / "root"
    make("install", f"DESTDIR={root}", "PREFIX=/usr")
    units = root / "usr/lib/systemd/system"
    # One directory on a merged-/usr system, two otherwise.
    for src in sorted({os.path.realpath(p) for p in
                       ("/usr/lib/systemd/system", "/lib/systemd/system")
                       if os.path.isdir(p)}):
        shutil.copytree(src, units, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("quoterd.service"))
    return root


def analyze(root, *args):
    # MANPATH: Documentation= is checked by running man(1) on each page.
    return subprocess.run(["systemd-analyze", f"--root={root}"] + list(args),
                          capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin",
                               "MANPATH": f"{root}/usr/share/man"})


def test_unit_verifies(root):
    r = analyze(root, "verify", UNIT)
    assert r.returncode == 0 and r.stderr == "", r.stdout + r.stderr


def test_unit_hardening(root):
    r = analyze(root, "security", "--offline=yes", UNIT)
    assert r.returncode == 0, r.stderr
    m = re.search(r"Overall exposure level for quoterd.service: ([\d.]+)",
                  r.stdout)
    assert m, r.stdout
    print(m.group(0))
    # 1.5 when written; above 2 means some protection went missing.
    assert float(m.group(1)) <= 2.0, r.stdout


def test_timeout_stop_covers_default_stop(root):
    """TimeoutStopSec must outlast the master's own deadline with the
    shipped settings: drain_time + shutdown_timeout + 5 s."""
    unit = (root / UNIT.lstrip("/")).read_text()
    conf = (root / "etc/quoterd/quoterd.conf").read_text()
    timeout = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M).group(1))
    drain = int(re.search(r"^drain_time = (\d+)$", conf, re.M).group(1))
    shutdown = int(re.search(r"^shutdown_timeout = (\d+)$", conf,
                             re.M).group(1))
    assert timeout > drain + shutdown + 5
    assert re.search(r"^Type=notify$", unit, re.M)


def test_exec_reload_waits_for_the_reload(root):
    """ExecReload is quoterd's own --signal reload, which returns when the
    reload is over, on the master ExecStart started: the same config file
    and pidfile."""
    unit = (root / UNIT.lstrip("/")).read_text()
    start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)
    reload = re.search(r"^ExecReload=(.*)$", unit, re.M).group(1)
    assert "--pidfile " in start
    assert reload == start + " --signal reload"


class Manager:
    """The service manager's end of NOTIFY_SOCKET."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(15)

    def next(self):
        """The next message as a dict."""
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.splitlines())


@pytest.mark.parametrize("abstract", [False, True])
def test_notify(quoterd, corpus, pb, tmp_path, monkeypatch, abstract):
    if abstract:
        name = f"@quoterd-test-{tmp_path.name}-{id(tmp_path)}"
        mgr = Manager("\0" + name[1:])
    else:
        name = str(tmp_path / "notify")
        mgr = Manager(name)
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    pidfile = tmp_path / "quoterd.pid"
    d = quoterd(db=corpus.db, extra=["--workers", "2", "--pidfile",
                                     str(pidfile)],
                config="drain_time = 1\nshutdown_timeout = 3\n")
    msg = mgr.next()
    assert msg["READY"] == "1"
    assert "serving" in msg["STATUS"]
    # Ready means every worker serves: the log says so, and calls work.
    assert "serving" in d.log()
    d.wait_ready(pb, timeout=5)

    d.send(signal.SIGHUP)
    assert mgr.next() == {"RELOADING": "1"}
    assert mgr.next() == {"READY": "1"}

    # What ExecReload runs: by the time it exits, READY=1 has been sent,
    # so systemd's reload job ends with the reload.
    r = reload_command(pidfile)
    assert r.returncode == 0, r.stderr
    mgr.sock.setblocking(False)
    assert mgr.next() == {"RELOADING": "1"}
    assert mgr.next() == {"READY": "1"}
    mgr.sock.setblocking(True)

    d.send(signal.SIGTERM)
    msg = mgr.next()
    assert msg["STOPPING"] == "1"
    # At least the master's own deadline: drain + shutdown + 5 s.
    assert int(msg["EXTEND_TIMEOUT_USEC"]) >= (1 + 3 + 5) * 1000000 - 100000
    assert d.wait_exit() == 0
    mgr.sock.close()


def test_no_notify_socket(served):
    """Without NOTIFY_SOCKET nothing changes (the other tests run so)."""
    assert "NOTIFY_SOCKET" not in served.log()
