#!/bin/sh
# The Debian packages switchboard needs beyond Python wheels; the one place they are installed.
# Idempotent and quiet: when everything is present it only runs dpkg-query once and exits.
#   pulseaudio, pulseaudio-utils    the sound server the device tests start (pactl, parec)
#   libportaudio2                   PortAudio, behind sounddevice (DeviceMicrophone / DeviceSpeaker)
#   libasound2-plugins              ALSA's pulse plugin: PortAudio reaches PulseAudio through it
#   iproute2, nftables              the lossy network path of the loss test and benchmark
# Run as root (CI does); otherwise it says what is missing and leaves installing to you.
set -eu

PACKAGES="pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins iproute2 nftables"

command -v dpkg-query >/dev/null 2>&1 || {
    echo "install-system-deps: not a Debian-based system; install the equivalents of: $PACKAGES" >&2
    exit 0
}

missing=""
for pkg in $PACKAGES; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "installed" ] || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-system-deps: missing Debian packages:$missing (run: sudo apt-get install$missing)" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1; then
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
echo "install-system-deps: installed$missing"
