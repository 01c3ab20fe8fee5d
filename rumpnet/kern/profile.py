"""Stack profiles (stacks/*.toml): which protocols a kind of node runs and its first tunables."""

from importlib import resources
from pathlib import Path
import tomllib

from ..netinet.in_proto import INETSW
from .sysctl import Sysctl, SysctlError

REQUIRED = {"ether", "arp", "ip"}
OPTIONAL = set(INETSW)


class ProfileError(Exception):
    pass


def profiles():
    """Where the named profiles live: the checkout's stacks/, or the installed rumpnet.stacks.

    An install maps stacks/ to the package rumpnet.stacks. Python run from
    a checkout imports rumpnet from there instead, and that tree has no
    rumpnet/stacks: its profiles are in stacks/ beside the package, and they
    win over those of an install made from another checkout.
    """
    checkout = Path(__file__).resolve().parents[2] / "stacks"
    if (checkout / "host.toml").is_file():  # this checkout's, even when another one is installed
        return checkout
    return resources.files("rumpnet.stacks")


def available():
    return sorted(p.name[:-5] for p in profiles().iterdir() if p.name.endswith(".toml"))


def load(name_or_path):
    """A profile by name (host, router, minimal) or by path to a TOML file: (protocols, sysctl values)."""
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        source = Path(name_or_path)
    else:
        source = profiles() / f"{name_or_path}.toml"
        if not source.is_file():
            raise ProfileError(f"{name_or_path}: no such stack profile (known: {', '.join(available())})")
    try:
        data = tomllib.loads(source.read_text())
    except OSError as e:
        raise ProfileError(f"{source}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ProfileError(f"{source}: {e}") from None
    protocols = set(data.get("protocols", []))
    unknown = protocols - REQUIRED - OPTIONAL
    if unknown:
        raise ProfileError(f"{source}: unknown protocols {', '.join(sorted(unknown))}")
    if not REQUIRED <= protocols:
        raise ProfileError(f"{source}: a stack needs {', '.join(sorted(REQUIRED))}")
    sysctl = data.get("sysctl", {})
    if not isinstance(sysctl, dict):
        raise ProfileError(f"{source}: [sysctl] must be a table")
    check = Sysctl()
    for name, value in sysctl.items():
        try:
            check.set(name, value)
        except SysctlError as e:
            raise ProfileError(f"{source}: {e}") from None
    return protocols, sysctl
