"""make bench leaves the committed results alone unless UPDATE=1, and
cleans up its temporary files. The run itself is a miniature one, with
a stand-in for gnuplot; it needs h2load (nghttp2-client). Its CPU a call
of metrics on against off is there without callgrind too."""

import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import BUILD, SRC, child_env
from test_deb import control_build_depends


def dry_run(*args):
    r = subprocess.run(["make", "-n", "--no-print-directory", "-C", str(SRC),
                        "bench"] + list(args), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_results_go_to_build_unless_update():
    assert "--out build/bench/RESULTS.md" in dry_run()
    assert "--out bench/RESULTS.md" in dry_run("UPDATE=1")


def deps_list(*args):
    r = subprocess.run(["sh", str(SRC / "scripts/deps.sh"), "--list"]
                       + list(args), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_bench_deps_are_what_it_runs():
    """`make bench` installs what building the programs and bench/run.py
    need, and nothing of the test suite's (`deps.sh --list` prints a set
    without installing it)."""
    bench = deps_list("bench")
    everything = deps_list()
    assert len(set(bench)) == len(bench)
    # What bench/run.py runs, each from a package of the bench set.
    run = (SRC / "bench/run.py").read_text()
    tools = {"h2load": "nghttp2-client", "gnuplot": "gnuplot-nox",
             "valgrind": "valgrind"}
    for prog, pkg in tools.items():
        assert f"['{prog}'" in run, f"bench/run.py no longer runs {prog}"
        assert pkg in bench, pkg
    assert "python3" in bench
    # The build's packages: everything the Debian package's build needs
    # but debhelper and the unit tests' cmocka.
    build = control_build_depends() - {"debhelper-compat", "libcmocka-dev"}
    assert build <= set(bench), build - set(bench)
    # Nothing else: no test, packaging, cluster or fuzzing tool.
    extra = set(bench) - build - set(tools.values()) - {
        "python3", "build-essential"}
    assert not extra, f"deps.sh bench installs what bench does not use: {extra}"
    for pkg in ("nginx", "prometheus", "lintian", "debhelper", "clang",
                "libcmocka-dev", "python3-grpcio", "strace", "mandoc"):
        assert pkg not in bench, pkg
        assert pkg in everything, pkg
    assert "fortunes" not in bench
    assert set(bench) <= set(everything) | set(tools.values())


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
    text = out.read_text()
    assert "| 1 | 1 |" in text
    # Metrics on against off in CPU a call, even without callgrind.
    assert re.search(r"^\| on/off \| \d+\.\d{3} \| ", text, re.M), text
    assert list(tmp.iterdir()) == [], "temporary files left behind"
    after = subprocess.run(["git", "-C", str(SRC), "status", "--porcelain",
                            "bench"], capture_output=True, text=True).stdout
    assert after == before
