#!/usr/bin/env bash
# A stand-in for python:3.11-slim where no container registry is reachable:
# Debian bookworm's own Python 3.11 from a Debian mirror (debootstrap), laid
# out as the official image has it (`python` and `pip` on PATH in
# /usr/local/bin, no PEP 668 marker), imported as local/python:3.11-slim.
# The Dockerfile builds on it with
#
#   docker build --network host --build-arg BASE_IMAGE=local/python:3.11-slim .
#
# Usage: deploy/local-base/build.sh [MIRROR]; MIRROR defaults to the first
# Debian mirror apt is configured with here. Needs root, debootstrap, docker.
set -euo pipefail

image="${IMAGE:-local/python:3.11-slim}"
configured_mirror() {
  { grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d 2>/dev/null || true; } \
    | head -n 1 | awk '{print $2}'
}
mirror="${1:-$(configured_mirror)}"
[ -n "$mirror" ] || { echo "no Debian mirror found: pass one as the first argument" >&2; exit 1; }
rootfs="$(mktemp -d /tmp/python-slim-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT

debootstrap --variant=minbase --include=python3.11,python3.11-venv,python3-pip,ca-certificates \
  bookworm "$rootfs" "$mirror"

# As the official image: python and pip at /usr/local/bin, pip free to
# install into the interpreter (the image is the environment).
ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python"
ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python3"
printf '#!/bin/sh\nexec /usr/bin/python3.11 -m pip "$@"\n' > "$rootfs/usr/local/bin/pip"
chmod 755 "$rootfs/usr/local/bin/pip"
rm -f "$rootfs"/usr/lib/python3*/EXTERNALLY-MANAGED
# The certificate authorities this machine trusts: a proxy between it and
# the package index may sign with its own (Debian's pip reads this bundle).
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
chroot "$rootfs" apt-get clean
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin

tar -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  - "$image"
docker run --rm "$image" python -c 'import sys, venv; print(sys.version)'
