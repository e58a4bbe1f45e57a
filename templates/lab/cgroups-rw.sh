#!/bin/sh
# Inside a lab machine that runs containers, at boot, before containerd, Docker and Nomad:
# make each cgroup v1 controller that systemd-nspawn mounted read-only writable.
#
# The machine has a cgroup namespace of its own, rooted at its cgroup on the host, so what
# becomes writable is its own subtree: containers' cgroups are made under it, and their
# limits apply (memory.limit_in_bytes of a `docker run -m 64m` reads 67108864).
# Under cgroup v2 (the unified hierarchy only) nspawn already gives the machine its own
# subtree writable, and this finds nothing to do. A second run finds every mount writable.
set -eu

awk '$3 == "cgroup" && $4 ~ /^ro,/ { print $2 }' /proc/mounts | while read -r mount_point; do
  mount -o remount,bind,rw "$mount_point"
  echo "cgroups-rw: $mount_point writable"
done
