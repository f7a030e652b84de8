"""The coordinator: users, calls, members, ringing, capabilities and the events socket."""
