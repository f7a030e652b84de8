#!/bin/sh
# Debian packages the project needs (one script; the Makefile's setup calls it).
set -e
# issue14-features: the lossy-path statistics test (tests/integration/test_call_stats.py) needs ip + nft
apt-get install -y --no-install-recommends iproute2 nftables
