"""Audio under loss (SPEC §5): the share of 20 ms frames that carry the tone within 3 dB of its level,
with random packet loss on the path between one participant and the SFU, both directions.

The path is real (:mod:`benchmarks.lossy_path`: two network namespaces, a veth pair, nftables
dropping ``loss`` % of the UDP datagrams arriving at each end). The server and participant "core"
run in one namespace, participant "edge" in the other, each a helper process
(:mod:`benchmarks.loss_peer`). Each sends a steady tone and listens to the other's:

* ``uplink``: edge speaks, its packets cross the lossy path to the SFU, core listens;
* ``downlink``: core speaks, the SFU's packets cross the lossy path, edge listens.

Both are run with loss resilience on (the ``broadcaster()`` policy: Opus in-band FEC sent and
``useinbandfec=1``, the jitter buffer recovering from FEC and concealing with libopus PLC) and off
(FEC not sent, lost frames heard as gaps), at 5, 10 and 20 % loss. The headline of a loss level is the
worse direction. Budget: at least 98 % at 10 % loss with resilience on.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from benchmarks.common import BenchResult, Budget, Child, Json
from benchmarks.lossy_path import CORE_ADDRESS, LossyPath

CORE_HZ = 660.0
EDGE_HZ = 440.0
LOSSES: tuple[float, ...] = (5.0, 10.0, 20.0)
TARGET_LOSS = 10.0
TARGET_SHARE = 0.98


async def measure(
    log_dir: Path, loss_percent: float, resilience: bool, seconds: float, tag: str = ""
) -> Json:
    """One run on a fresh lossy path: ``{"uplink": result, "downlink": result}`` (see ``loss_peer``)."""
    name = f"loss{loss_percent:g}-{'on' if resilience else 'off'}{tag}"
    common: Json = {"room": name, "seconds": seconds, "resilience": resilience}
    # the path is clean while both peers join, then loses ``loss_percent`` while they listen: what is
    # measured is concealment on a call that is up (a join's DTLS handshake through 20 % loss can take
    # longer than the SDK's join timeout: its retransmission timer doubles from 1 s)
    with LossyPath(0.0) as path:
        core = await Child.start(
            f"{name}-core",
            "benchmarks.loss_peer",
            {
                **common,
                "role": "core",
                "host": CORE_ADDRESS,
                "user": "core",
                "send_hz": CORE_HZ,
                "listen_hz": EDGE_HZ,
            },
            log_dir,
            prefix=path.command("core", []),
        )
        edge: Child | None = None
        try:
            server = (await core.read(timeout=30))["server"]
            edge = await Child.start(
                f"{name}-edge",
                "benchmarks.loss_peer",
                {
                    **common,
                    "role": "edge",
                    "server": server,
                    "user": "edge",
                    "send_hz": EDGE_HZ,
                    "listen_hz": CORE_HZ,
                },
                log_dir,
                prefix=path.command("edge", []),
            )
            for peer in (core, edge):
                assert (await peer.read(timeout=60))["joined"]
            path.set_loss(loss_percent)
            for peer in (core, edge):
                await peer.send({"command": "measure"})
            timeout = seconds + 60.0
            up, down = await asyncio.gather(core.read(timeout), edge.read(timeout))
            return {"uplink": up["result"], "downlink": down["result"]}
        finally:
            with contextlib.suppress(Exception):
                if edge is not None:
                    await edge.stop()
            await core.stop()


async def run(log_dir: Path, seconds: float = 20.0, losses: tuple[float, ...] = LOSSES) -> BenchResult:
    result = BenchResult("loss")
    runs: dict[str, Json] = {}
    for loss in losses:
        for resilience in (True, False):
            mode = "on" if resilience else "off"
            measured = await measure(log_dir, loss, resilience, seconds)
            runs[f"{loss:g}%/{mode}"] = measured
            worst = min(measured["uplink"]["share_within_3db"], measured["downlink"]["share_within_3db"])
            budget = Budget(">=", TARGET_SHARE) if loss == TARGET_LOSS and resilience else None
            result.add(
                f"loss_{loss:g}pct_fec_plc_{mode}_share",
                worst,
                "share",
                f"20 ms frames carrying the tone within 3 dB at {loss:g} % loss (both directions), "
                f"FEC/PLC {mode}, worse of uplink/downlink",
                budget,
                note=(
                    f"up {measured['uplink']['share_within_3db']:.3f}, "
                    f"down {measured['downlink']['share_within_3db']:.3f}"
                ),
            )
    result.details = {"seconds_per_run": seconds, "runs": runs}
    return result
