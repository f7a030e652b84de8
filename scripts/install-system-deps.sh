#!/bin/sh
# The project's one script for Debian packages (run as root, or it prints what to install).
# Each subsystem adds its packages on its own line below.
set -eu

# coordinators on Redis (state, events fan-out, ring-deadline leases)
PACKAGES="redis-server"

missing=""
for pkg in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages:$missing (run: sudo apt-get install -y$missing)" >&2
    exit 1
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
