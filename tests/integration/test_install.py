"""Building and installing as a packager would: plain `make` on a fresh
checkout, `make install` / `make uninstall` into a DESTDIR."""

import os
import re
import shutil
import subprocess

from conftest import BUILD, SRC

PROGRAMS = ("quoterd", "quotes-import", "quote")


def fresh_checkout(dest):
    """The tracked files of the source tree (as they are in the work tree,
    so uncommitted edits count) copied to dest: what a fresh clone has,
    with no build/ directory."""
    out = subprocess.run(["git", "-C", str(SRC), "ls-files", "-z"],
                         capture_output=True, check=True, timeout=30).stdout
    for name in out.decode().split("\0"):
        src = SRC / name
        if not name or not src.exists():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dest / name)
    return dest


def test_plain_make_builds_every_program(tmp_path):
    """A plain `make` must build the three programs, not whatever target
    an included makefile happens to define first. Dry run: .ci/run builds
    a fresh clone for real, and so does the Debian package test."""
    tree = fresh_checkout(tmp_path / "src")
    r = subprocess.run(["make", "-n"], cwd=tree, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for p in PROGRAMS:
        assert f"-o build/{p} " in r.stdout, f"plain make does not link {p}"


def make(*args):
    """make in the source tree, on the build the tests use."""
    r = subprocess.run(["make", "--no-print-directory", "-C", str(SRC),
                        f"BUILD={BUILD}",
                        f"SANITIZE={os.environ.get('QUOTERD_SANITIZE', '0')}"]
                       + list(args), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def tree(root):
    """Every path under root, directories marked with a trailing /."""
    return sorted(str(p.relative_to(root)) + ("/" if p.is_dir() else "")
                  for p in root.rglob("*"))


USR_TREE = [
    "etc/", "etc/quoterd/", "etc/quoterd/quoterd.conf",
    "usr/", "usr/bin/", "usr/bin/quote", "usr/bin/quotes-import",
    "usr/lib/", "usr/lib/systemd/", "usr/lib/systemd/system/",
    "usr/lib/systemd/system/quoterd.service",
    "usr/lib/sysusers.d/", "usr/lib/sysusers.d/quoterd.conf",
    "usr/sbin/", "usr/sbin/quoterd",
    "usr/share/", "usr/share/man/",
    "usr/share/man/man1/", "usr/share/man/man1/quote.1",
    "usr/share/man/man1/quotes-import.1",
    "usr/share/man/man5/", "usr/share/man/man5/quoterd.conf.5",
    "usr/share/man/man8/", "usr/share/man/man8/quoterd.8",
    "var/", "var/lib/", "var/lib/quoterd/",
]


def test_install_and_uninstall(tmp_path, binaries):
    root = tmp_path / "root"
    make("install", f"DESTDIR={root}", "PREFIX=/usr")
    assert tree(root) == USR_TREE
    for p in ("usr/sbin/quoterd", "usr/bin/quote", "usr/bin/quotes-import"):
        assert (root / p).stat().st_mode & 0o777 == 0o755
    unit = (root / "usr/lib/systemd/system/quoterd.service").read_text()
    assert ("ExecStart=/usr/sbin/quoterd -c /etc/quoterd/quoterd.conf "
            "--pidfile /run/quoterd/quoterd.pid\n") in unit
    assert not re.search(r"@[A-Z]+@", unit), "a placeholder left"
    conf = root / "etc/quoterd/quoterd.conf"
    assert conf.read_text() == (SRC / "etc/quoterd.conf").read_text()
    r = subprocess.run([str(root / "usr/sbin/quoterd"), "--version"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0

    # The administrator's configuration survives a reinstall and an
    # uninstall; everything else goes.
    conf.write_text("workers = 3\n")
    out = make("install", f"DESTDIR={root}", "PREFIX=/usr")
    assert "keeping the existing" in out
    assert conf.read_text() == "workers = 3\n"
    out = make("uninstall", f"DESTDIR={root}", "PREFIX=/usr")
    assert "keeping the changed" in out
    assert [p for p in tree(root) if not p.endswith("/")] == \
        ["etc/quoterd/quoterd.conf"]

    # An unchanged one goes with the rest, as does the empty state dir.
    make("install", f"DESTDIR={tmp_path / 'again'}", "PREFIX=/usr")
    make("uninstall", f"DESTDIR={tmp_path / 'again'}", "PREFIX=/usr")
    assert [p for p in tree(tmp_path / "again") if not p.endswith("/")] == []
    assert not (tmp_path / "again/var/lib/quoterd").exists()
    assert not (tmp_path / "again/etc/quoterd").exists()


def test_uninstall_removes_its_empty_directories(tmp_path, binaries):
    """SYSCONFDIR/quoterd and STATEDIR go once empty, however they were
    emptied (the administrator removed the configuration; the database
    was deleted after an uninstall that kept it); with anything in them
    they stay, and uninstall says so. Shared directories stay."""
    root = tmp_path / "root"
    make("install", f"DESTDIR={root}", "PREFIX=/usr")
    (root / "etc/quoterd/quoterd.conf").unlink()
    db = root / "var/lib/quoterd/quotes.mdb"
    db.write_bytes(b"x")
    out = make("uninstall", f"DESTDIR={root}", "PREFIX=/usr")
    assert not (root / "etc/quoterd").exists(), tree(root)
    assert f"keeping {root}/var/lib/quoterd: it is not empty" in out
    assert db.exists()
    db.unlink()
    make("uninstall", f"DESTDIR={root}", "PREFIX=/usr")
    assert not (root / "var/lib/quoterd").exists(), tree(root)
    # Nothing of quoterd's is left, and the shared directories are.
    assert not [p for p in tree(root) if "quote" in p], tree(root)
    for d in ("usr/bin/", "usr/sbin/", "usr/share/man/man1/",
              "usr/lib/systemd/system/", "etc/", "var/lib/"):
        assert d in tree(root), d


def test_install_default_prefix(tmp_path, binaries):
    """/usr/local: configuration under it, the unit naming its paths."""
    root = tmp_path / "root"
    make("install", f"DESTDIR={root}")
    assert (root / "usr/local/sbin/quoterd").exists()
    assert (root / "usr/local/etc/quoterd/quoterd.conf").exists()
    unit = (root / "usr/local/lib/systemd/system/quoterd.service").read_text()
    assert ("ExecStart=/usr/local/sbin/quoterd -c "
            "/usr/local/etc/quoterd/quoterd.conf "
            "--pidfile /run/quoterd/quoterd.pid\n") in unit
