"""make bench leaves the committed results alone unless UPDATE=1, and
cleans up its temporary files. The run itself is a miniature one, with
a stand-in for gnuplot; it needs h2load (nghttp2-client)."""

import os
import shutil
import subprocess
import sys

import pytest

from conftest import BUILD, SRC, child_env


def dry_run(*args):
    r = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(SRC),
                        "bench"] + list(args), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_results_go_to_build_unless_update():
    assert "--out build/bench/RESULTS.md" in dry_run()
    assert "--out bench/RESULTS.md" in dry_run("UPDATE=1")


def test_bench_deps_are_what_it_runs():
    deps = (SRC / "scripts/deps.sh").read_text()
    line = next(l for l in deps.splitlines() if '= bench ]' in l)
    assert "fortunes" not in line
    assert "nghttp2-client" in line and "gnuplot" in line


@pytest.mark.skipif(shutil.which("h2load") is None, reason="no h2load")
def test_miniature_run(tmp_path, binaries):
    r = subprocess.run(["make", "--no-print-directory", "-C", str(SRC),
                        f"BUILD={BUILD}",
                        f"SANITIZE={os.environ.get('QUOTERD_SANITIZE', '0')}",
                        f"{BUILD}/floor"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "gnuplot").write_text("#!/bin/sh\nexit 0\n")
    (fake / "gnuplot").chmod(0o755)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out" / "RESULTS.md"
    before = subprocess.run(["git", "-C", str(SRC), "status", "--porcelain",
                             "bench"], capture_output=True, text=True).stdout
    env = child_env(PATH=f"{fake}:{os.environ['PATH']}", TMPDIR=str(tmp),
                    QUOTERD_BUILD=str(BUILD))
    r = subprocess.run([sys.executable, str(SRC / "bench/run.py"),
                        "--quotes", "200", "--big", "2000", "--requests",
                        "500", "--rounds", "1", "--workers", "1",
                        "--threads", "1", "--conns", "2", "--streams", "2",
                        # callgrind cannot run a sanitizer build, and takes
                        # minutes: measured by make bench, not here.
                        "--no-callgrind", "--out", str(out)], capture_output=True, text=True,
                       timeout=300, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "| 1 | 1 |" in out.read_text()
    assert list(tmp.iterdir()) == [], "temporary files left behind"
    after = subprocess.run(["git", "-C", str(SRC), "status", "--porcelain",
                            "bench"], capture_output=True, text=True).stdout
    assert after == before
