"""Helper process: a hostile client, one user flooding the coordinator's events socket.

``python -m benchmarks.events_flooder URL API_KEY TOKEN SOCKETS SECONDS`` opens ``SOCKETS`` events
sockets for the token's user and authenticates them, prints ``ready`` and waits for a line on stdin;
then it sends ``health.check`` frames on every socket as fast as it can, until the server closes it or
``SECONDS`` have passed. It prints one JSON line: the close code of each socket (-1: none seen), the
number of sockets opened, of frames sent and of ``health.check`` answers received (the frames the
server processed). Used by ``benchmarks.events_flood`` and the flood test.

It runs in its own process, as a remote client would, so that its own sending does not block the test's
event loop; and at a lower CPU priority, because a remote attacker's CPU is not the server's: what the
test measures is what the flood costs the server.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time

import aiohttp

FRAME = '{"type": "health.check"}'


async def _flood(ws: aiohttp.ClientWebSocketResponse, deadline: float) -> tuple[int, int, int]:
    """(frames sent, answers received, close code) for one socket."""
    sent = 0
    try:
        while time.monotonic() < deadline and not ws.closed:
            await ws.send_str(FRAME)
            sent += 1
            if sent % 50 == 0:
                await asyncio.sleep(0)  # let the other sockets (and the reader) run
    except (aiohttp.ClientError, ConnectionError, RuntimeError):
        pass  # the server dropped the connection
    # read what the server sent until its close frame (or the end of the connection)
    code = -1
    answers = 0
    while True:
        try:
            msg = await ws.receive(timeout=2.0)
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            break
        if msg.type == aiohttp.WSMsgType.CLOSE:
            code = int(msg.data)  # ws.close_code says 1006 when the server dropped TCP before our reply
            break
        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
            break
        if msg.type == aiohttp.WSMsgType.TEXT and '"health.check"' in msg.data:
            answers += 1
    await ws.close()
    return sent, answers, code


async def main(url: str, api_key: str, token: str, sockets: int, seconds: float) -> None:
    auth = json.dumps({"type": "auth", "api_key": api_key, "token": token})
    events_url = url.rstrip("/") + "/api/v1/events"
    async with aiohttp.ClientSession() as session:
        opened = []
        for _ in range(sockets):
            ws = await session.ws_connect(events_url, timeout=aiohttp.ClientWSTimeout(ws_close=1.0))
            await ws.send_str(auth)
            opened.append(ws)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        deadline = time.monotonic() + seconds
        results = await asyncio.gather(*(_flood(ws, deadline) for ws in opened))
    report = {
        "close_codes": [code for _, _, code in results],
        "opens": sockets,
        "sent": sum(sent for sent, _, _ in results),
        "answered": sum(answers for _, answers, _ in results),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    os.nice(10)
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])))
