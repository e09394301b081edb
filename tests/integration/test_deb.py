"""The Debian package (slow: about half a minute). `make deb` builds it
from a copy of the tracked files, so this also proves that a plain
`make` on a fresh tree builds the programs (dh_auto_build runs it).
lintian must find no error; the extracted programs must work: the
packaged quotes-import writes a database the packaged quoterd --test
accepts with the packaged configuration file.

test_build_depends is quick: it needs no build, only `make -n` and dpkg's
database."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import SRC

unsanitized_only = pytest.mark.skipif(
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


@unsanitized_only
def test_lintian_clean(deb):
    r = subprocess.run(["lintian", "--fail-on", "error", str(deb)],
                       capture_output=True, text=True, timeout=300)
    errors = [l for l in r.stdout.splitlines() if l.startswith("E:")]
    assert r.returncode == 0 and not errors, r.stdout + r.stderr
    # Warnings and notes, shown by pytest -rA: what remains to look at.
    for line in r.stdout.splitlines():
        print(line)


@unsanitized_only
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


# ------------------------------------------------------------ Build-Depends

def control_build_depends():
    """The package names debian/control's Build-Depends lists (versions,
    architectures and build profiles dropped; each alternative counts)."""
    text = (SRC / "debian/control").read_text()
    m = re.search(r"^Build-Depends:((?:.*\n)(?:[ \t].*\n)*)", text, re.M)
    assert m, "no Build-Depends in debian/control"
    names = set()
    for rel in m.group(1).replace("\n", " ").split(","):
        for alt in rel.split("|"):
            alt = re.sub(r"\(.*?\)|\[.*?\]|<.*?>", "", alt).strip()
            if alt:
                names.add(alt.split(":")[0])
    return names


def installed_packages():
    """name -> (provides, [[alternatives] of each Depends/Pre-Depends])
    for every installed package."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f",
         "${db:Status-Abbrev}\t${Package}\t${Provides}\t${Pre-Depends}, "
         "${Depends}\n"], capture_output=True, text=True, check=True,
        timeout=60).stdout
    pkgs = {}
    for line in out.splitlines():
        status, name, provides, deps = line.split("\t")
        if not status.startswith("ii"):
            continue
        alts = []
        for rel in deps.split(","):
            rel = re.sub(r"\(.*?\)", "", rel).strip()
            if rel:
                alts.append([a.strip().split(":")[0] for a in rel.split("|")])
        prov = {re.sub(r"\(.*?\)", "", p).strip()
                for p in provides.split(",") if p.strip()}
        pkgs[name] = (prov, alts)
    return pkgs


def closure(roots, pkgs):
    """roots and every installed package they depend on, recursively;
    an alternative or a virtual package counts as the installed packages
    that satisfy it."""
    providers = {}
    for name, (prov, _) in pkgs.items():
        providers.setdefault(name, set()).add(name)
        for p in prov:
            providers.setdefault(p, set()).add(name)
    seen, todo = set(), [r for r in roots if r in pkgs]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for alts in pkgs[p][1]:
            for a in alts:
                todo.extend(providers.get(a, ()))
    return seen


def owners(paths):
    """path -> the package that ships it, by dpkg's database (one query:
    each takes a while)."""
    paths = sorted(set(paths))
    r = subprocess.run(["dpkg-query", "-S"] + paths, capture_output=True,
                       text=True, timeout=120)
    found = {}
    for line in r.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        found[path] = pkg.split(",")[0].split(":")[0].strip()
    lost = [p for p in paths if p not in found]
    assert not lost, f"no package ships {lost}: {r.stderr}"
    return found


def test_build_depends(tmp_path):
    """Every library, header, generator and .proto file that building the
    package (make all unit-test, as dh_auto_build and dh_auto_test run)
    uses comes from a package debian/control's Build-Depends names: else
    a clean chroot (sbuild, pbuilder) fails. What the Makefile names
    itself must be named there: each pkg-config module it asks for (its
    .pc file's package), each header the sources include, each absolute
    path and program in its commands. A library only a module pulls in
    (gRPC's abseil, c-ares) may come through a named package's Depends.
    Build-Essential (libc6-dev, gcc, make) is implied."""
    # Which modules make asks pkg-config about: a logging stand-in first
    # on PATH (make -n still expands the variables that call it).
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "pkg-config.log"
    real = shutil.which("pkg-config")
    (bindir / "pkg-config").write_text(
        f'#!/bin/sh\necho "$*" >>{log}\nexec {real} "$@"\n')
    (bindir / "pkg-config").chmod(0o755)
    r = subprocess.run(["make", "-n", "-B", "--no-print-directory", "-C",
                        str(SRC), f"BUILD={tmp_path / 'build'}", "all",
                        "unit-test"], capture_output=True, text=True,
                       timeout=120,
                       env=dict(os.environ,
                                PATH=f"{bindir}:{os.environ['PATH']}"))
    assert r.returncode == 0, r.stderr
    commands = r.stdout

    modules = {w for line in log.read_text().splitlines()
               for w in line.split() if not w.startswith("-")}
    assert "grpc" in modules, "the pkg-config stand-in saw no call"
    direct = {}  # path -> why
    for m in sorted(modules):
        pcdir = subprocess.run(["pkg-config", "--variable=pcfiledir", m],
                               capture_output=True, text=True,
                               timeout=60).stdout.strip()
        direct[f"{pcdir}/{m}.pc"] = f"pkg-config {m}"

    # Headers the sources built here include, resolved by the compiler
    # with the modules' include paths.
    cflags = subprocess.run(["pkg-config", "--cflags"] + sorted(modules),
                            capture_output=True, text=True, check=True,
                            timeout=60).stdout.split()
    sources = set(re.findall(r" -c -o \S+ (\S+\.c)\b", commands))
    assert "src/worker/service.c" in sources, "no compile command found"
    headers = set()
    for name in sources | {str(p.relative_to(SRC))
                           for p in SRC.glob("src/*/*.h")}:
        if (SRC / name).exists():
            headers |= set(re.findall(r"^\s*#\s*include\s*<([^>]+)>",
                                      (SRC / name).read_text(), re.M))
    for h in sorted(headers):
        src = tmp_path / "h.c"
        src.write_text(f"#include <{h}>\n")
        r = subprocess.run(["cc", "-H", "-fsyntax-only", "-D_GNU_SOURCE",
                            str(src)] + cflags,
                           capture_output=True, text=True, timeout=60)
        first = next((l for l in r.stderr.splitlines()
                      if l.startswith(". ")), None)
        assert first, f"<{h}> not found: {r.stderr}"
        direct.setdefault(os.path.normpath(first[2:]), f"#include <{h}>")

    # Programs the commands run, and files they name by absolute path.
    for prog in ("protoc-c", "protoc"):
        assert re.search(rf"^\s*{prog} ", commands, re.M), prog
        direct[shutil.which(prog)] = prog
    for path in sorted(set(re.findall(r"(?<![\w.=-])(/usr/\S+\.proto)\b",
                                      commands))):
        direct[path] = path

    # Libraries linked, by the -l flags of the link commands: each
    # resolved to the file the linker takes (the -dev package's .so).
    indirect = {}
    for lib in sorted(set(re.findall(r"(?<=\s)-l([\w+.-]+)", commands))):
        for suffix in ("so", "a"):
            path = subprocess.run(["cc", f"-print-file-name=lib{lib}.{suffix}"],
                                  capture_output=True, text=True,
                                  timeout=60).stdout.strip()
            if os.path.isabs(path):
                break
        assert os.path.isabs(path), f"-l{lib}: no library found"
        indirect[os.path.normpath(path)] = f"-l{lib}"

    pkg = owners(list(direct) + list(indirect))
    named = control_build_depends()
    pkgs = installed_packages()
    essential = closure(["build-essential"], pkgs)
    reachable = closure(named, pkgs) | essential
    missing = sorted({f"{pkg[p]} ({why})" for p, why in direct.items()
                      if pkg[p] not in named and pkg[p] not in essential})
    missing += sorted({f"{pkg[p]} ({why})" for p, why in indirect.items()
                       if pkg[p] not in reachable})
    assert not missing, \
        "not in debian/control's Build-Depends: " + ", ".join(missing)
