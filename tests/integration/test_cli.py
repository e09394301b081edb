"""Command-line surface shared by the three programs: --version, and a
reason before the usage text on every usage error."""

import subprocess

import pytest

from conftest import BUILD

PROGRAMS = ("quoterd", "quotes-import", "quote")


def run(prog, *args):
    return subprocess.run([str(BUILD / prog)] + list(args),
                          capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("prog", PROGRAMS)
def test_version(prog, binaries):
    r = run(prog, "--version")
    assert r.returncode == 0, r.stderr
    name, version = r.stdout.split()
    assert name == prog and version[0].isdigit()


@pytest.mark.parametrize("prog,args", [
    ("quoterd", ["--no-such-flag"]),
    ("quoterd", ["extra"]),
    ("quoterd", ["--workers", "0"]),
    ("quotes-import", ["--no-such-flag"]),
    ("quotes-import", []),
    ("quotes-import", ["-f", "csv", "x"]),
    ("quote", ["--no-such-flag"]),
    ("quote", ["extra"]),
    ("quote", ["-n", "0"]),
    ("quote", ["--tls-cert", "c.pem", "--tls-key", "k.pem"]),
    ("quote", ["--tls-ca", "ca.pem", "--tls-cert", "c.pem"]),
])
def test_usage_error_says_why(prog, args, binaries):
    r = run(prog, *args)
    assert r.returncode == 2
    first = (r.stderr.splitlines() or [""])[0]
    assert first and not first.startswith("usage:"), \
        f"no reason given:\n{r.stderr}"


@pytest.mark.parametrize("prog", PROGRAMS)
def test_help_synopsis_complete(prog, binaries):
    r = run(prog, "--help")
    assert r.returncode == 0 and r.stdout.startswith("usage: " + prog)
    assert "--version" in r.stdout
    if prog != "quotes-import":
        assert "unix:PATH" in r.stdout and "--tls-cert" in r.stdout
