"""What really went over the wire: every UDP datagram on every interface of this network namespace.

A raw ``AF_PACKET`` socket (Linux, CAP_NET_RAW) sees each datagram with its IP addresses and ports,
loopback included. Used in-process by the loopback tests, and as a program to wrap a command:

    python -m tests.packet_capture COMMAND...

runs COMMAND while capturing and prints one JSON line: the command's exit code, how many UDP
datagrams were seen, the ones with an address outside loopback (per address pair), and the host
addresses stock aioice would gather here (proof that a non-loopback address was available).
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD

Endpoint = tuple[str, int]


class CaptureUnavailable(RuntimeError):
    """No raw packet socket here (not Linux, or no CAP_NET_RAW)."""


def is_loopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback


def parse_udp(ethertype: int, packet: bytes) -> tuple[Endpoint, Endpoint] | None:
    """((source ip, port), (destination ip, port)) of a UDP datagram starting at its IP header."""
    if ethertype == ETH_P_IP and len(packet) >= 20 and packet[9] == socket.IPPROTO_UDP:
        header, family, src_at, dst_at = (packet[0] & 0x0F) * 4, socket.AF_INET, slice(12, 16), slice(16, 20)
    elif ethertype == ETH_P_IPV6 and len(packet) >= 40 and packet[6] == socket.IPPROTO_UDP:
        header, family, src_at, dst_at = 40, socket.AF_INET6, slice(8, 24), slice(24, 40)
    else:
        return None
    if len(packet) < header + 4:
        return None
    sport, dport = struct.unpack_from("!HH", packet, header)
    src, dst = socket.inet_ntop(family, packet[src_at]), socket.inet_ntop(family, packet[dst_at])
    return (src, sport), (dst, dport)


@dataclass
class UdpCapture:
    """Records ``(source, destination)`` of every UDP datagram from :meth:`start` to :meth:`stop`."""

    datagrams: list[tuple[Endpoint, Endpoint]] = field(default_factory=list)
    _sock: socket.socket | None = None
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_ALL))
        except (PermissionError, AttributeError) as exc:
            raise CaptureUnavailable(f"a raw packet capture needs Linux and CAP_NET_RAW: {exc}") from exc
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        sock.settimeout(0.1)
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="udp-capture", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                data, address = self._sock.recvfrom(128)
            except TimeoutError:
                continue
            endpoints = parse_udp(address[1], data)
            if endpoints is not None:
                self.datagrams.append(endpoints)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._sock is not None:
            self._sock.close()


def main(command: list[str]) -> int:
    import aioice.ice

    capture = UdpCapture()
    capture.start()
    try:
        result = subprocess.run(command, stdout=sys.stderr, stderr=sys.stderr, check=False)
    finally:
        capture.stop()
    outside = Counter(
        f"{src[0]} -> {dst[0]}"
        for src, dst in capture.datagrams
        if not (is_loopback(src[0]) and is_loopback(dst[0]))
    )
    report = {
        "exit": result.returncode,
        "udp": len(capture.datagrams),
        "non_loopback": sum(outside.values()),
        "non_loopback_pairs": dict(outside),
        "stock_host_addresses": aioice.ice.get_host_addresses(use_ipv4=True, use_ipv6=True),
    }
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
