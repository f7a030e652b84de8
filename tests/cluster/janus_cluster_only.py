"""A cluster whose SFU nodes run the Janus engine, run by ``tests/cluster/test_janus_cluster.py``
inside its network namespace (Janus never offers loopback addresses).

Not collected by the normal suite (the file name does not start with ``test_``): it needs
``SWITCHBOARD_TEST_HOST`` (the namespace's non-loopback address) and fails loudly without it.
"""

from __future__ import annotations

import os

from switchboard.server.cluster import LocalCluster
from tests.cluster.test_sfu_node_processes import MIC_ONLY, TONES, client, live_nodes, rest_join
from tests.conftest import wait_heard


async def test_janus_nodes_register_take_calls_and_carry_audio() -> None:
    host = os.environ.get("SWITCHBOARD_TEST_HOST")
    assert host, "run through tests/cluster/test_janus_cluster.py"
    async with LocalCluster(coordinators=1, nodes=2, engine="janus", host=host) as cluster:
        nodes = await live_nodes(cluster)
        assert sorted(n.url for n in nodes) == sorted(cluster.node_urls)
        assert {n.engine for n in nodes} == {"janus"}
        one = await rest_join(cluster.url, cluster, "alice", "one")
        two = await rest_join(cluster.url, cluster, "alice", "two")
        assert {one.credentials.server.url, two.credentials.server.url} == set(cluster.node_urls)

        alice, bob = await client(cluster, "alice"), await client(cluster, "bob")
        try:
            call = alice.make_call("default", "one")
            await call.join(MIC_ONLY)
            await bob.make_call("default", "one").join(MIC_ONLY)
            await wait_heard(alice, TONES, audible={"bob"}, timeout=20)
            await wait_heard(bob, TONES, audible={"alice"}, timeout=20)
        finally:
            await alice.disconnect()
            await bob.disconnect()
