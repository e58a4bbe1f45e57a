#!/bin/bash
# shellcheck disable=SC2317  # functions run through `phase` and `check`
# Runs inside the test VM (systemd as PID 1, cgroup v2 only), as root, at boot: the lab's own
# verbs on two machines (up, status, a reboot inside, stop, up again, down, clean-all), then a
# search for anything left. Its lines: job-lib.sh's.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u -o pipefail
share=/var/cache/hashicluster/hostvm
export HOME=/root LANG=C.UTF-8 TERM=dumb HASHICLUSTER_LAB_UP_TIMEOUT=600
# shellcheck source=SCRIPTDIR/job-lib.sh
. "$share/src/templates/hostvm/job-lib.sh"

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

host_facts
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
