"""The command line as a user meets it: Ctrl-C, a closed pipe, and profiles however rumpnet was installed."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rumpnet.testing import as_user, rumpnet_command

CHECKOUT = Path(__file__).parent.parent


def test_help_into_a_closed_pipe_ends_quietly():
    """`rumpnet --help | true`: the reader is gone before the first byte; no traceback."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(rumpnet_command("--help"), stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=30)
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141  # what a shell reports for a C tool killed by SIGPIPE there


def _interrupt_once_ready(argv, user, ready_on):
    """Start a command, wait for its ready line on stdout or stderr, press Ctrl-C; (status, stderr)."""
    proc = subprocess.Popen(as_user(argv, user) if user else argv, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stream = proc.stderr if ready_on == "stderr" else proc.stdout
        line = stream.readline()
        assert line, f"{argv} ended before it was ready: {proc.communicate()}"
        os.kill(proc.pid, signal.SIGINT)  # unshare, sh and setpriv exec the command: this pid is it
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


@pytest.mark.parametrize("args, ready_on", [
    (["nc", "-u", "-l", "-v", "7100"], "stderr"),
    (["perf", "-u", "-s", "-p", "5002"], "stdout"),
    (["nc", "-u", "-v", "10.0.0.2", "7"], "stderr"),
], ids=["nc-listen", "perf-receiver", "nc-send"])
def test_ctrl_c_exits_130_without_a_traceback(pair, user, args, ready_on):
    a, _ = pair
    argv = rumpnet_command("--server", a.url, *args)
    status, err = _interrupt_once_ready(argv, user, ready_on)
    assert status == 130, err
    assert "Traceback" not in err
    assert a.is_alive()


def test_profiles_load_from_a_checkout_whatever_the_install():
    """`python -m rumpnet` in a checkout imports rumpnet from there, where no rumpnet/stacks exists;
    with an install that does not map stacks/ (a wheel, not an editable install) it must still load."""
    code = ("import sys\n"
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]\n"
            "from rumpnet.kern.profile import available, load\n"
            "print(available(), load('router')[1])\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=CHECKOUT, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "['gateway', 'host', 'minimal', 'router'] {'net.inet.ip.forwarding': 1}\n"
