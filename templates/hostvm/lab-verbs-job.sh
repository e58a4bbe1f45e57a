#!/bin/bash
# shellcheck disable=SC2317  # functions run through `phase` and `check`
# Runs inside the test VM (systemd as PID 1, cgroup v2 only), as root, at boot: the lab's own
# verbs on two machines (up, status, a reboot inside, stop, up again, down, clean-all), then a
# search for anything left. Same line format as lab-job.sh (hostvm-fact/phase/check).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u -o pipefail
share=/var/cache/hashicluster/hostvm
export HOME=/root LANG=C.UTF-8 TERM=dumb HASHICLUSTER_LAB_UP_TIMEOUT=600
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

check() {  # check NAME CMD...: CMD prints what is wrong; no output means ok
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

unit() { echo "hashicluster-lab-$1.service"; }
boot_id() { timeout 10 python3 -m lab ssh "$1" cat /proc/sys/kernel/random/boot_id 2>/dev/null; }

rebooted() {  # rebooted NAME OLD_BOOT_ID: wait (up to 5 min) until the machine is back, anew
  local new i
  for i in $(seq 1 300); do
    new=$(boot_id "$1")
    if [ -n "$new" ] && [ "$new" != "$2" ]; then return 0; fi
    [ "$i" -lt 300 ] && sleep 1
  done
  return 1
}

runs_in_its_unit() {  # the machine's init lives in its own delegated unit, not elsewhere
  local cg
  cg=$(systemctl show -p ControlGroup --value "$(unit "$1")")
  [ "$cg" = "/machine.slice/$(unit "$1")" ] || echo "ControlGroup of $(unit "$1"): '$cg'"
  [ "$(systemctl show -p Delegate --value "$(unit "$1")")" = yes ] || echo "$(unit "$1") is not delegated"
  machinectl show "$1" -p Unit --value | grep -qx "$(unit "$1")" || echo "machined does not know $1 by its unit"
}

unit_gone() { systemctl list-units --all --plain --no-legend --full "$(unit "$1")"; }
lab_units() { systemctl list-units --all --plain --no-legend --full 'hashicluster*'; }
machined_machines() { machinectl list --no-legend --no-pager; }
machine_netns() { ip netns list | awk '$1 ~ /^hcl-/ && $1 != "hcl-lab" { print $1 }'; }
lab_cgroups() { find /sys/fs/cgroup -name 'hashicluster*' 2>/dev/null; }
lab_mounts() { awk '$5 ~ /hashicluster/ && $5 != "/var/cache/hashicluster" { print $5 }' /proc/self/mountinfo; }
nspawn_processes() { pgrep -a -x systemd-nspawn; }

echo "hostvm-fact booted-in $(cut -d" " -f1 /proc/uptime)"
echo "hostvm-fact systemd $(systemctl --version | head -1)"
echo "hostvm-fact cgroupfs $(stat -fc %T /sys/fs/cgroup)"
echo "hostvm-fact pid1 $(cat /proc/1/comm)"
git clone -q "$share/src" /root/hashicluster && cd /root/hashicluster || exit 2
echo "hostvm-fact lab-host $(python3 -m lab host)"

phase up-one python3 -m lab up hk-a --address 10.210.9.11
python3 -m lab status
check in-its-unit runs_in_its_unit hk-a
old=$(boot_id hk-a)
python3 -m lab ssh hk-a systemctl reboot
phase reboot rebooted hk-a "$old"
check in-its-unit-after-reboot runs_in_its_unit hk-a
phase stop python3 -m lab stop hk-a
check stopped-unit-gone unit_gone hk-a
phase up-again python3 -m lab up hk-a --address 10.210.9.11
phase up-second python3 -m lab up hk-b --address 10.210.9.12
phase down python3 -m lab down hk-b
check down-unit-gone unit_gone hk-b
phase clean-all python3 -m lab clean-all
check no-units lab_units
check no-machined-machines machined_machines
check no-machine-netns machine_netns
check no-lab-cgroups lab_cgroups
check no-lab-mounts lab_mounts
check no-nspawn nspawn_processes
exit "$failed"
