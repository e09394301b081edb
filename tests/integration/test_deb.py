"""The Debian package (slow: about half a minute). `make deb` builds it
from a copy of the tracked files, so this also proves that a plain
`make` on a fresh tree builds the programs (dh_auto_build runs it).
lintian must find no error; the extracted programs must work: the
packaged quotes-import writes a database the packaged quoterd --test
accepts with the packaged configuration file."""

import os
import re
import subprocess

import pytest

from conftest import SRC

pytestmark = pytest.mark.skipif(
    os.environ.get("QUOTERD_SANITIZE") == "1",
    reason="the package is built without sanitizers: make test covers it")


@pytest.fixture(scope="module")
def deb(tmp_path_factory):
    out = tmp_path_factory.mktemp("deb")
    env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck")
    r = subprocess.run(["make", "--no-print-directory", "-C", str(SRC), "deb",
                        f"DEB_DIR={out}"], capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stdout[-5000:] + r.stderr[-5000:]
    debs = [p for p in out.glob("quoterd_*.deb")]
    assert len(debs) == 1, list(out.iterdir())
    assert not (out / "src").exists(), "make deb left its build tree"
    return debs[0]


def test_lintian_clean(deb):
    r = subprocess.run(["lintian", "--fail-on", "error", str(deb)],
                       capture_output=True, text=True, timeout=300)
    errors = [l for l in r.stdout.splitlines() if l.startswith("E:")]
    assert r.returncode == 0 and not errors, r.stdout + r.stderr
    # Warnings and notes, shown by pytest -rA: what remains to look at.
    for line in r.stdout.splitlines():
        print(line)


def test_contents(deb, tmp_path):
    root = tmp_path / "root"
    subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True,
                   timeout=60)
    for p in ("usr/sbin/quoterd", "usr/bin/quotes-import", "usr/bin/quote",
              "etc/quoterd/quoterd.conf", "lib/systemd/system/quoterd.service",
              "usr/lib/sysusers.d/quoterd.conf",
              "usr/share/man/man8/quoterd.8.gz",
              "usr/share/man/man5/quoterd.conf.5.gz",
              "usr/share/man/man1/quote.1.gz",
              "usr/share/man/man1/quotes-import.1.gz"):
        assert (root / p).exists(), p
    unit = (root / "lib/systemd/system/quoterd.service").read_text()
    assert "ExecStart=/usr/sbin/quoterd -c /etc/quoterd/quoterd.conf" in unit

    ctl = tmp_path / "control"
    subprocess.run(["dpkg-deb", "-e", str(deb), str(ctl)], check=True,
                   timeout=60)
    assert (ctl / "conffiles").read_text().split() == \
        ["/etc/quoterd/quoterd.conf"]
    postinst = (ctl / "postinst").read_text()
    # The user exists before anything could start the unit.
    assert re.search(r"systemd-sysusers .*quoterd\.conf", postinst)

    db = tmp_path / "quotes.mdb"
    r = subprocess.run([str(root / "usr/bin/quotes-import"), "-q", "-o",
                        str(db), str(SRC / "etc/quotes.txt")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([str(root / "usr/sbin/quoterd"), "-c",
                        str(root / "etc/quoterd/quoterd.conf"), "--db",
                        str(db), "--test"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "configuration ok" in r.stdout
