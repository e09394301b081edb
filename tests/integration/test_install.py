"""Building and installing as a packager would: plain `make` on a fresh
checkout, `make install` / `make uninstall` into a DESTDIR."""

import shutil
import subprocess

from conftest import SRC

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
