"""The tests' load balancer in front of several coordinators: :mod:`switchboard.server.balancer`."""

from switchboard.server.balancer import TcpBalancer

__all__ = ["TcpBalancer"]
