#!/bin/sh
# Runs once at boot (hostvm-job.service): mount the share disk where the lab and the
# toolchain keep their cache, run its job.sh, report the exit code, power off.
# Everything printed goes to the second serial port, which the host writes to a file.
set -u
share=/var/cache/hashicluster
mkdir -p "$share"
if mount -L hcshare "$share"; then
  sh "$share/hostvm/job.sh"
  rc=$?
else
  echo "hostvm: no disk labelled hcshare to mount on $share"
  rc=99
fi
echo "hostvm: job exit $rc"
sync
systemctl poweroff --no-block
