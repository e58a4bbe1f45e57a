# shellcheck shell=bash
# shellcheck disable=SC2034  # failed: read by the job that sources this file
# Shared by the VM's jobs (lab-job.sh, lab-verbs-job.sh), sourced from the staged checkout on
# the share disk. What the host test reads, on the VM's second serial port:
#   hostvm-fact NAME VALUE          what this host is
#   hostvm-phase NAME SECONDS RC    how long each step took and how it ended
#   hostvm-check NAME ok|FAILED     one assertion (FAILED lines are followed by what was found)
# A failed phase or check sets failed=1; the job exits with "$failed".
failed=0

phase() {  # phase NAME CMD...: run CMD, print its duration and exit code
  local name=$1 start rc
  shift
  start=$EPOCHREALTIME
  "$@"
  rc=$?
  echo "hostvm-phase $name $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') $rc"
  [ "$rc" = 0 ] || failed=1
  return "$rc"
}

check() {  # check NAME CMD...: CMD prints what is wrong or left over; no output means ok
  local name=$1 found
  shift
  found=$("$@" 2>&1)
  if [ -z "$found" ]; then
    echo "hostvm-check $name ok"
  else
    echo "hostvm-check $name FAILED"
    printf '%s\n' "$found" | sed 's/^/    /'
    failed=1
  fi
}

host_facts() {  # what this host is
  echo "hostvm-fact booted-in $(cut -d" " -f1 /proc/uptime)"  # seconds from the kernel to this job
  echo "hostvm-fact systemd $(systemctl --version | head -1)"
  echo "hostvm-fact cgroupfs $(stat -fc %T /sys/fs/cgroup)"
  echo "hostvm-fact pid1 $(cat /proc/1/comm)"
  echo "hostvm-fact kernel $(uname -r)"
}

# What the lab may leave behind: each prints what it finds.
lab_units() { systemctl list-units --all --plain --no-legend --full 'hashicluster*'; }
machined_machines() { machinectl list --no-legend --no-pager; }
machine_netns() { ip netns list | awk '$1 ~ /^hcl-/ && $1 != "hcl-lab" { print $1 }'; }
lab_cgroups() { find /sys/fs/cgroup -name 'hashicluster*' 2>/dev/null; }
lab_mounts() { awk '$5 ~ /hashicluster/ && $5 != "/var/cache/hashicluster" { print $5 }' /proc/self/mountinfo; }
nspawn_processes() { pgrep -a -x systemd-nspawn; }
