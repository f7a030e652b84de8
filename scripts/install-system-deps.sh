#!/bin/sh
# The project's one script for Debian packages (run by root, e.g. from `make setup` or CI).
set -eu
# media engine: Janus gateway (VideoRoom) for `EmbeddedServer(engine="janus")`, `switchboard sfu --engine janus`
apt-get install -y --no-install-recommends janus
