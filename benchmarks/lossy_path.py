"""A real lossy network path: two network namespaces joined by a veth pair, dropping UDP at random.

::

    namespace "core"  10.77.0.1 [veth] <---------------> [veth] 10.77.0.2  namespace "edge"
    (server + clients that have a clean path)                (the participant on the lossy path)

Each side drops the given share of the UDP datagrams that *arrive* on its veth end (an nftables
rule, ``numgen random``), so the path loses packets in both directions, independently, at random:
ICE checks, DTLS and SRTP/SRTCP alike. TCP (the coordinator's REST and WebSocket, the SFU's
signalling) is left alone. Traffic inside one namespace (a core client and the SFU) never crosses
the veth and is never dropped. Dropping on input rather than output matters: a packet dropped by
an output rule fails the sender's ``sendto`` with EPERM, which a real lost packet never does.

The kernel here has no ``sch_netem`` (``tc qdisc ... netem`` is unknown), hence nftables. Needs
root, ``ip`` (iproute2) and ``nft`` (nftables, installed by ``scripts/install-system-deps.sh``);
:func:`check_available` says what is missing. Processes run inside a namespace through
:meth:`LossyPath.command` (``ip netns exec NAME ...``). Namespaces live in their own network
stacks, so several runs (and other programs on the machine) never see each other's addresses.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
from types import TracebackType
from typing import Final, Literal

__all__ = ["CORE_ADDRESS", "EDGE_ADDRESS", "LossyPath", "LossyPathUnavailable", "check_available"]

CORE_ADDRESS: Final = "10.77.0.1"
EDGE_ADDRESS: Final = "10.77.0.2"
_PREFIX: Final = 24
_TABLE: Final = "switchboard_loss"
_counter = itertools.count()

Side = Literal["core", "edge"]


class LossyPathUnavailable(RuntimeError):
    """This machine cannot build a lossy path (not root, or ``ip`` / ``nft`` missing)."""


def check_available() -> None:
    """Raise :class:`LossyPathUnavailable` naming what is missing (root, iproute2, nftables)."""
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        raise LossyPathUnavailable(
            f"the lossy path needs {' and '.join(missing)} (Debian: iproute2, nftables; "
            "scripts/install-system-deps.sh installs them)"
        )
    if os.geteuid() != 0:
        raise LossyPathUnavailable("the lossy path creates network namespaces: run as root")


def _run(argv: list[str], stdin: str | None = None) -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, timeout=20)
    if done.returncode != 0:
        raise LossyPathUnavailable(f"{' '.join(argv)} failed: {done.stderr.strip() or done.returncode}")


class LossyPath:
    """``with LossyPath(loss_percent=10) as path:`` -- the two namespaces, torn down on exit.

    ``loss_percent`` (0..100, steps of 0.1) is the share of UDP datagrams dropped on arrival at
    *each* end; :meth:`set_loss` changes it while traffic flows.
    """

    def __init__(self, loss_percent: float = 0.0) -> None:
        check_available()
        tag = f"{os.getpid()}-{next(_counter)}"
        self.core = f"sbloss-{tag}-core"
        self.edge = f"sbloss-{tag}-edge"
        self._veth: dict[Side, str] = {"core": "sbl-core", "edge": "sbl-edge"}
        self._loss = 0.0
        self._initial_loss = loss_percent
        self._created: list[str] = []

    @property
    def loss_percent(self) -> float:
        return self._loss

    def namespace(self, side: Side) -> str:
        return self.core if side == "core" else self.edge

    def command(self, side: Side, argv: list[str]) -> list[str]:
        """``argv`` run inside one side's namespace."""
        return ["ip", "netns", "exec", self.namespace(side), *argv]

    def __enter__(self) -> LossyPath:
        try:
            for ns in (self.core, self.edge):
                _run(["ip", "netns", "add", ns])
                self._created.append(ns)
                # IPv4 only: no link-local IPv6 candidates doubling every ICE check.
                for conf in ("all", "default"):
                    _run(
                        [
                            "ip",
                            "netns",
                            "exec",
                            ns,
                            "sysctl",
                            "-q",
                            "-w",
                            f"net.ipv6.conf.{conf}.disable_ipv6=1",
                        ]
                    )
                _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            _run(
                [
                    "ip", "link", "add", self._veth["core"], "netns", self.core,
                    "type", "veth", "peer", "name", self._veth["edge"], "netns", self.edge,
                ]
            )  # fmt: skip
            addresses: tuple[tuple[Side, str], ...] = (("core", CORE_ADDRESS), ("edge", EDGE_ADDRESS))
            for side, address in addresses:
                ns, dev = self.namespace(side), self._veth[side]
                _run(["ip", "-n", ns, "addr", "add", f"{address}/{_PREFIX}", "dev", dev])
                _run(["ip", "-n", ns, "link", "set", dev, "up"])
            self.set_loss(self._initial_loss)
        except BaseException:
            self.close()
            raise
        return self

    def set_loss(self, loss_percent: float) -> None:
        """Drop ``loss_percent`` % of the UDP datagrams arriving at each end from now on."""
        if not 0.0 <= loss_percent <= 100.0:
            raise ValueError(f"loss_percent must be within 0..100, got {loss_percent}")
        permille = round(loss_percent * 10)
        sides: tuple[Side, Side] = ("core", "edge")
        for side_ in sides:
            dev = self._veth[side_]
            rule = (
                f'add rule inet {_TABLE} input iifname "{dev}" meta l4proto udp '
                f"numgen random mod 1000 < {permille} drop\n"
                if permille
                else ""
            )
            script = (
                f"table inet {_TABLE}\ndelete table inet {_TABLE}\n"
                f"add table inet {_TABLE}\n"
                f"add chain inet {_TABLE} input {{ type filter hook input priority 0; policy accept; }}\n"
                + rule
            )
            _run(["ip", "netns", "exec", self.namespace(side_), "nft", "-f", "-"], stdin=script)
        self._loss = loss_percent

    def close(self) -> None:
        """Delete both namespaces (and with them the veth pair and the rules). Idempotent."""
        while self._created:
            ns = self._created.pop()
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False, timeout=20)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
