"""``switchboard demo``: the product end to end on an embedded server, printed as a timeline."""

from __future__ import annotations

import time

from rich.console import Console

from switchboard import ClientOptions, MemberRequest, User, VideoClient
from switchboard.server import EmbeddedServer


async def run_demo(json_path: str | None = None, plot_path: str | None = None) -> int:
    """Run the demo; returns the process exit code."""
    console = Console()
    start = time.monotonic()

    def say(who: str, text: str) -> None:
        console.print(f"[dim]{time.monotonic() - start:6.2f}s[/dim]  [bold]{who:<6}[/bold] {text}")

    async with EmbeddedServer() as server:
        say("server", f"coordinator on {server.url}")
        clients = {}
        for user_id in ("host", "viewer"):
            client = VideoClient(
                server.api_key,
                user=User.regular(user_id, name=user_id.title()),
                user_token=server.create_token(user_id),
                options=ClientOptions(base_url=server.url),
            )
            await client.connect()
            clients[user_id] = client
            say(user_id, "connected")
        host, viewer = clients["host"], clients["viewer"]
        host.state.incoming_call.listen(lambda c: say("host", f"incoming_call = {c.cid if c else None}"))
        viewer.state.outgoing_call.listen(lambda c: say("viewer", f"outgoing_call = {c.cid if c else None}"))
        call = viewer.make_call(id="one-on-one")
        say("viewer", "rings the host (get_or_create ringing=True)")
        await call.get_or_create(members=[MemberRequest("host")], ringing=True)
        incoming = await host.state.incoming_call.wait_for(lambda c: c is not None, timeout=5)
        assert incoming is not None
        say("host", "accepts")
        await incoming.accept()
        await viewer.state.outgoing_call.wait_for(lambda c: c is None, timeout=5)
        say("viewer", f"ring ended: {call.state.value.ring_outcome}")
        await call.end()
        say("viewer", "ended the call")
        for client in clients.values():
            await client.disconnect()
    console.print("[green]demo finished[/green]")
    return 0
