"""rumpnet demo: two nodes on one shmif bus pinging each other, every step shown.

Runs the same commands a user would type, each as its own process, in a
temporary directory that it removes afterwards. No root needed.
"""

import os
import shutil
import subprocess
import sys
import tempfile

from .common import Parser

STEPS = [
    ("a", ["ifconfig", "shmif0", "create"]),
    ("a", ["ifconfig", "shmif0", "linkstr", "{bus}"]),
    ("a", ["ifconfig", "shmif0", "inet", "10.0.0.1/24"]),
    ("b", ["ifconfig", "shmif0", "create", "linkstr", "{bus}", "inet", "10.0.0.2", "netmask", "255.255.255.0"]),
    ("a", ["ifconfig", "shmif0"]),
    ("a", ["ping", "-c", "3", "-i", "0.2", "10.0.0.2"]),
    ("a", ["arp", "-a"]),
    ("b", ["netstat", "-s", "-p", "icmp"]),
]


def main(argv, server):
    Parser("demo", "Start two nodes on a bus in a temporary directory and ping between them.",
           node=False).parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="rumpnet-demo-")
    urls = {name: f"unix://{workdir}/{name}.sock" for name in "ab"}
    bus = f"{workdir}/bus"
    status = 0
    try:
        for name in "ab":
            status |= _step(None, ["server", urls[name]])
        for node, words in STEPS:
            status |= _step(urls[node], [w.format(bus=bus) for w in words])
    finally:
        for name in "ab":
            if os.path.exists(f"{workdir}/{name}.sock"):
                _step(urls[name], ["halt"])
        shutil.rmtree(workdir, ignore_errors=True)
    print("\nThat was two unprivileged processes, each with its own TCP/IP stack, on one bus file.")
    print("Next: docs/tutorial.md walks through the same steps by hand.")
    return 1 if status else 0


def _step(url, words):
    prefix = f"RUMP_SERVER={url} " if url else ""
    print(f"\n$ {prefix}rumpnet {' '.join(words)}", flush=True)
    env = dict(os.environ)
    if url:
        env["RUMP_SERVER"] = url
    return subprocess.run([sys.executable, "-m", "rumpnet", *words], env=env).returncode
