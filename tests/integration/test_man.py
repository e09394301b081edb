"""The manual pages: they render without a mandoc warning, and they keep
up with the code. Every flag a program's --help prints must appear in its
page, every key of etc/quoterd.conf in quoterd.conf(5), and every key
config.c accepts in etc/quoterd.conf: adding a flag or a key without
documenting it fails here."""

import re
import subprocess

import pytest

from conftest import BUILD, SRC

PAGES = {"quoterd": "quoterd.8", "quotes-import": "quotes-import.1",
         "quote": "quote.1"}
ALL_PAGES = sorted(PAGES.values()) + ["quoterd.conf.5"]
FLAG = re.compile(r"(?<![\w\[-])(--?[A-Za-z][\w-]*)")


def rendered(page):
    """The page as text, overstrike (bold, underline) removed."""
    r = subprocess.run(["mandoc", "-T", "ascii", str(SRC / "man" / page)],
                       capture_output=True, check=True, timeout=30)
    return re.sub(r".\x08", "", r.stdout.decode())


def section(text, name):
    """One section of a rendered page: from its heading to the next."""
    m = re.search(rf"^{name}\n(.*?)(?=^[A-Z][A-Z ]+$|\Z)", text,
                  re.M | re.S)
    assert m, f"no {name} section"
    return m.group(1)


def mentions(text, word):
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text)


@pytest.mark.parametrize("page", ALL_PAGES)
def test_lint(page):
    r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning",
                        str(SRC / "man" / page)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr


@pytest.mark.parametrize("prog", sorted(PAGES))
def test_every_flag_documented(prog, binaries):
    r = subprocess.run([str(BUILD / prog), "--help"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0
    flags = set(FLAG.findall(r.stdout))
    assert "--help" in flags and "--version" in flags
    # In the description, not just the synopsis: each is explained.
    text = section(rendered(PAGES[prog]), "DESCRIPTION")
    missing = sorted(f for f in flags if not mentions(text, f))
    assert not missing, f"man/{PAGES[prog]} does not document {missing}"


def conf_keys():
    """Keys of etc/quoterd.conf, including the commented-out examples."""
    text = (SRC / "etc" / "quoterd.conf").read_text()
    return set(re.findall(r"^#?([a-z_]+) = ", text, re.M))


def test_every_conf_key_documented():
    keys = conf_keys()
    assert {"listen", "workers", "tls_cert"} <= keys
    text = section(rendered("quoterd.conf.5"), "DESCRIPTION")
    missing = sorted(k for k in keys if not mentions(text, k))
    assert not missing, f"man/quoterd.conf.5 does not document {missing}"


def test_every_config_key_in_sample_conf():
    src = (SRC / "src" / "common" / "config.c").read_text()
    accepted = set(re.findall(r'strcmp\(key, "(\w+)"\)', src))
    accepted |= set(re.findall(r'\{"(\w+)",\s*offsetof', src))
    assert {"listen", "shutdown_timeout"} <= accepted
    missing = sorted(accepted - conf_keys())
    assert not missing, f"etc/quoterd.conf does not show {missing}"
