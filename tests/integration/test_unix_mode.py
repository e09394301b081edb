"""A Unix socket's permissions come from unix_mode and unix_group, not
from whatever umask quoterd was started with."""

import grp
import os
import stat

import pytest

from conftest import run_quoterd, unix_daemon


def start_unix(quoterd, db, path, config=""):
    # The widest umask: the mode must not depend on it.
    old = os.umask(0)
    try:
        return unix_daemon(quoterd, db, path, workers=1, config=config)
    finally:
        os.umask(old)


def other_group():
    """A group that is not ours but that we may give a file to, or None."""
    if os.geteuid() == 0:
        groups = [g.gr_gid for g in grp.getgrall()]
    else:
        groups = os.getgroups()
    groups = [g for g in groups if g != os.getegid()]
    return groups[0] if groups else None


def test_default_mode(quoterd, corpus, pb, tmp_path):
    path = tmp_path / "q.sock"
    d = start_unix(quoterd, corpus.db, path)
    d.wait_ready(pb)
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == os.getegid()
    d.stop_cleanly()


def test_mode_and_group(quoterd, corpus, pb, tmp_path):
    gid = other_group()
    if gid is None:
        pytest.skip("no second group to give the socket to")
    path = tmp_path / "q.sock"
    d = start_unix(quoterd, corpus.db, path,
                   config=f"unix_mode = 0604\nunix_group = {gid}\n")
    d.wait_ready(pb)
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o604
    assert st.st_gid == gid
    d.stop_cleanly()


def test_group_by_name(quoterd, corpus, pb, tmp_path):
    gid = other_group()
    if gid is None:
        pytest.skip("no second group to give the socket to")
    path = tmp_path / "q.sock"
    d = start_unix(quoterd, corpus.db, path,
                   config=f"unix_group = {grp.getgrgid(gid).gr_name}\n")
    d.wait_ready(pb)
    assert os.stat(path).st_gid == gid
    d.stop_cleanly()


def test_unknown_group_refused(tmp_path, corpus):
    conf = tmp_path / "quoterd.conf"
    conf.write_text("unix_group = no-such-group-for-quoterd\n")
    r = run_quoterd(["-c", str(conf), "--db", str(corpus.db), "--test"])
    assert r.returncode == 1
    assert f"{conf}:1: unix_group: no group" in r.stderr
