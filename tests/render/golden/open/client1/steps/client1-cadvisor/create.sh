# cadvisor 1.0.0 sha256 cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc
# Installs cadvisor on this machine, or brings it up to date:
# its binary (refused, before the installed copy is touched, unless its sha256 is the pinned one),
# its files, its secret files and its systemd unit; then starts it and waits until it works.
# A change restarts it at once.
# Reads: the template values (the pin, files, user, ...); on stdin, one `PATH MODE OWNER BASE64`
# line per secret file.
# A second run changes nothing: the binary and every file are compared before they are
# written, and nothing restarts unless something changed.
set -eu
# --- hashicluster's shell library (documented in templates/steps/lib.sh)
fail() { echo "error: $*" >&2; exit 1; }
stamp() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }
use_api() {
  # shellcheck source=/dev/null
  [ ! -r /etc/consul.d/api.env ] || . /etc/consul.d/api.env
}
wait_for() {
  local what=$1 timeout=$2 state=$3 deadline
  shift 3
  deadline=$(( $(date +%s) + timeout ))
  until "$@"; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "error: $what not ready after ${timeout}s; last state seen:" >&2
      ("$state") >&2 2>&1 || true
      exit 1
    fi
    sleep 0.2
  done
  echo "$what: ready"
}
put_file() {
  if ! cmp -s "$1" "$2"; then
    install -D -m "$3" -o "$4" -g "$4" "$1" "$2"
    # shellcheck disable=SC2034  # read by the script that calls put_file
    changed=1
  else
    chmod "$3" "$2"; chown "$4:$4" "$2"
  fi
  rm -f "$1"
}
has_leader() { api "$1/v1/status/leader" | grep -q :; }
alive() {
  local role=node count
  [ "$1" = server ] && role=consul
  count=$(api "$CONSUL_HTTP_ADDR/v1/agent/members" 2>/dev/null | json_count . Status=1 Tags.role="$role") &&
    [ "$count" -ge "$2" ]
}
nomad_node_ready() { [ "$(NOMAD_ADDR=$1 nomad node status -self -json 2>/dev/null | json_field Status)" = ready ]; }
json_field() {
  python3 -c 'import json, sys
try:
    value = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
field = value.get(sys.argv[1], "") if isinstance(value, dict) else ""
print(field if isinstance(field, str) else json.dumps(field))' "$1"
}
json_count() {
  python3 -c 'import json, re, sys
def at(value, path):
    for key in path.split(".") if path != "." else []:
        value = value.get(key) if isinstance(value, dict) else None
    return value
def text(value):
    return value if isinstance(value, str) else json.dumps(value)
def matches(item, condition):
    field, op, expected = re.match(r"([^=!^]+)(=|!=|\^=)(.*)", condition).groups()
    got = text(at(item, field))
    return {"=": got == expected, "!=": got != expected, "^=": got.startswith(expected)}[op]
try:
    items = at(json.load(sys.stdin), sys.argv[1])
except ValueError:
    sys.exit(1)
items = list(items.values()) if isinstance(items, dict) else items or []
print(sum(all(matches(item, c) for c in sys.argv[2:]) for item in items))' "$@"
}
json_rows() {
  python3 -c 'import json, sys
try:
    items = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
for item in items or []:
    print("\t".join(str(item.get(field, "")) for field in sys.argv[1:]))' "$@"
}
json_set() {
  python3 -c 'import json, sys
value = json.loads(sys.argv[1])
with open(sys.argv[3]) as f:
    value[sys.argv[2]] = f.read().rstrip("\n")
print(json.dumps(value))' "$@"
}
# --- end of the library
changed=0
mkdir -p /var/lib/hashicluster/staging
if [ "$(sha256sum /usr/local/bin/cadvisor 2>/dev/null | cut -d" " -f1)" != cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc ]; then
  new=/var/lib/hashicluster/staging/cadvisor-1.0.0
  [ -f "$new" ] || fail "cadvisor 1.0.0: $new was not uploaded"
  got=$(sha256sum "$new" | cut -d" " -f1)
  [ "$got" = cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc ] || fail "cadvisor 1.0.0: sha256 of the uploaded binary is $got, expected cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc; nothing installed"
  install -m 0755 "$new" /usr/local/bin/cadvisor.new && mv /usr/local/bin/cadvisor.new /usr/local/bin/cadvisor; changed=1
fi
rm -f /var/lib/hashicluster/staging/cadvisor-1.0.0
tmp=$(mktemp) && cat > "$tmp" <<'HASHICLUSTER_EOF'
# Managed by hashicluster; edits are overwritten.
[Unit]
Description=cAdvisor (container and machine metrics of client1.demo)
Documentation=https://github.com/google/cadvisor
Wants=network-online.target
# Docker first: cAdvisor looks for Docker's daemon once, when it starts.
After=network-online.target docker.service

[Service]
# root: it reads every cgroup and process of the machine.
ExecStart=/usr/local/bin/cadvisor -port 8080 -listen_ip 10.210.1.31
KillSignal=SIGTERM
Restart=on-failure
RestartSec=2

[Install]
WantedBy=multi-user.target
HASHICLUSTER_EOF
put_file "$tmp" /etc/systemd/system/cadvisor.service 0644 root
# What this step put in place, for the drift probe (templates/probe/observe.py): the sha256 of
# each file and of the binary, as sha256sum prints them.
mkdir -p /var/lib/hashicluster/manifest
sha256sum \
  /usr/local/bin/cadvisor \
  /etc/systemd/system/cadvisor.service \
  > /var/lib/hashicluster/manifest/cadvisor.sha256.new && mv /var/lib/hashicluster/manifest/cadvisor.sha256.new /var/lib/hashicluster/manifest/cadvisor.sha256
if [ "$changed" = 1 ]; then systemctl daemon-reload; fi
systemctl enable --quiet cadvisor
if [ "$changed" = 1 ]; then systemctl restart cadvisor; else systemctl start cadvisor; fi
use_api
ready_state() { journalctl -u cadvisor -n 20 --no-pager; }
ready() { curl -sf http://10.210.1.31:8080/healthz >/dev/null; }
wait_for "the local cadvisor agent" 120 ready_state ready
