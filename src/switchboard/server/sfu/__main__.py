"""``python -m switchboard.server.sfu``: the SFU child process (see :mod:`switchboard.server.sfu.process`)."""

from switchboard.server.sfu.process import child_main

child_main()
