#!/bin/bash
# Boots one lab machine: runs systemd-nspawn with the command line the lab wrote for it in
# DIR/nspawn.args (NUL-separated). The file is read again at every start, the lab's restart
# loop or unit included, so settings changed while the machine ran (`lab up --containers` on a
# machine made without) take effect at its next boot, whoever asks for it.
# exec: systemd-nspawn takes this process's place (and PID: a unit's main process).
set -eu
dir=$1
mapfile -d '' -t args < "$dir/nspawn.args"
exec "${args[@]}"
