#!/bin/bash
# shellcheck disable=SC2317  # functions run through `phase`, `stamp` and `check`
# Runs inside the test VM (systemd as PID 1, cgroup v2 only), as root, at boot: the README's
# commands on a clone of the checkout, then a search for anything the lab left behind.
# Besides job-lib.sh's lines it prints `hostvm-fib JSON`, the load balancer's answer to /fib/10.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u -o pipefail
share=/var/cache/hashicluster/hostvm
checkout=/root/hashicluster
# shellcheck source=SCRIPTDIR/job-lib.sh
. "$share/src/templates/hostvm/job-lib.sh"

# Nothing is downloaded in here: the toolchain is the host's build, the wheels are on the share.
export HASHICLUSTER_TOOLCHAIN_SOURCE=build PIP_NO_INDEX=1 PIP_FIND_LINKS=$share/wheels
export HOME=/root LANG=C.UTF-8 TERM=dumb
# Under QEMU TCG, five machines booting at once on two emulated CPUs need more than the lab's
# default 120 s each (measured: over 150 s) until ssh answers.
export HASHICLUSTER_LAB_UP_TIMEOUT=600

stamped() {  # prefix each line with the seconds since the job started
  local line
  while IFS= read -r line; do printf '[%4ds] %s\n' "$SECONDS" "$line"; done
}

stamp() {  # stamp CMD...: run CMD with each line of its output stamped
  "$@" 2>&1 | stamped
}

lab_machines() { python3 -m lab status --json | python3 -c 'import json, sys; [print(m["name"]) for m in json.load(sys.stdin)]'; }
open_forward() { curl -sS -m 5 -o /dev/null http://127.0.0.1:8080/ 2>/dev/null && echo "127.0.0.1:8080 still answers"; }

fib() {  # wait until the load balancer routes fib (consul-template's render and nginx's
  # reload trail the job's healthy deployment, by up to a minute under emulation): 180 s at most
  local answer deadline=$((SECONDS + 180))
  until answer=$(curl -fsS -m 30 http://127.0.0.1:8080/fib/10); do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 1
  done
  echo "hostvm-fib $answer"
}

host_facts
phase clone git clone -q "$share/src" "$checkout" || exit 2
cd "$checkout" || exit 2
echo "hostvm-fact lab-host $(python3 -m lab host)"

# Under TCG two emulated CPUs carry every machine: the lab stack with one client (three
# machines), written as a user edits a stack file; ./run keeps an existing Pulumi.lab.yaml.
sed 's/^  hashicluster:clients: 3$/  hashicluster:clients: 1/' stacks/lab.yaml >Pulumi.lab.yaml
grep -qx '  hashicluster:clients: 1' Pulumi.lab.yaml || { echo "stacks/lab.yaml has no 'clients: 3' line"; exit 2; }
# fib without containers: under TCG in this VM, a docker task's log collector (a plugin process
# Nomad starts per task) does not start within Nomad's plugin timeout ("failed to launch docker
# logger plugin: timeout while waiting for plugin to start"). Docker itself runs on the
# client here (its Docker step waits until `docker info` answers).
printf "  hashicluster:jobs: '[\"fib-raw-exec\"]'\n" >>Pulumi.lab.yaml
machines=3

phase up stamp ./run up || failed=1
if ! phase fib fib; then
  failed=1
  echo "--- why: the Nomad agent of one client, the end of its journal"
  python3 -m lab ssh lab-client1 journalctl -u nomad --no-pager -n 120
fi
echo "--- while up"
python3 -m lab status
lab_units
machined_machines
if [ "$(lab_units | grep -c running)" -ge "$machines" ]; then
  echo "hostvm-check units-while-up ok"
else
  echo "hostvm-check units-while-up FAILED"
  failed=1
fi

phase down stamp ./run down || failed=1
echo "--- after down"
check no-lab-machines lab_machines
check no-units lab_units
check no-machined-machines machined_machines
check no-machine-netns machine_netns
check no-lab-cgroups lab_cgroups
check no-lab-mounts lab_mounts
check no-nspawn nspawn_processes
check no-forward open_forward
exit "$failed"
