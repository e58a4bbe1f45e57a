# docker
# Installs docker on this machine, or brings it up to date:
# its Debian packages (docker.io),
# its files, its secret files and its systemd unit; then starts it and waits until it works.
# A change restarts it at once.
# On a machine that asks for a reboot (/run/reboot-required) it is only enabled: the reboot
# (the machine's roll turn) starts it.
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
dpkg -s docker.io >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/dev/null || fail "docker: cannot install the Debian package docker.io (apt-get install failed: is a Debian mirror reachable?). Install it on this machine; a lab machine gets its packages from the lab base it was made from: ./run down and ./run up make it anew"
have=$(dpkg-query -W -f='${Version}' docker.io)
[ "$have" = 20.10.24+dfsg1-1+deb12u1+b6 ] || fail "docker: docker.io $have is installed, the stack pins 20.10.24+dfsg1-1+deb12u1+b6: pin what the machines have (pulumi config set --path 'hashicluster:docker.version' '$have') or install docker.io=20.10.24+dfsg1-1+deb12u1+b6 on them"
tmp=$(mktemp) && cat > "$tmp" <<'HASHICLUSTER_EOF'
{

  "dns": ["10.210.1.31"],
  "live-restore": true,
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "3"}
}
HASHICLUSTER_EOF
put_file "$tmp" /etc/docker/daemon.json 0644 root
while read -r path mode owner data; do
  tmp=$(mktemp) && printf %s "$data" | base64 -d > "$tmp"
  put_file "$tmp" "$path" "$mode" "$owner"
done
[ -s /usr/local/share/ca-certificates/hashicluster-ca.crt ] || fail "docker: the secret file /usr/local/share/ca-certificates/hashicluster-ca.crt did not arrive on stdin"
# What this step put in place, for the drift probe (templates/probe/observe.py): the sha256 of
# each file, as sha256sum prints them.
mkdir -p /var/lib/hashicluster/manifest
sha256sum \
  /etc/docker/daemon.json \
  /usr/local/share/ca-certificates/hashicluster-ca.crt \
  > /var/lib/hashicluster/manifest/docker.sha256.new && mv /var/lib/hashicluster/manifest/docker.sha256.new /var/lib/hashicluster/manifest/docker.sha256
if [ "$changed" = 1 ]; then update-ca-certificates --fresh >/dev/null; fi
if [ "$changed" = 1 ]; then systemctl daemon-reload; fi
systemctl enable --quiet docker
if [ -e /run/reboot-required ]; then
  echo "docker: installed; it starts at the reboot this machine asks for (/run/reboot-required), in its roll turn"
  exit 0
fi
if [ "$changed" = 1 ]; then systemctl restart docker; else systemctl start docker; fi
use_api
ready_state() { journalctl -u docker -u containerd -n 20 --no-pager; }
ready() { docker info >/dev/null 2>&1; }
wait_for "the local docker agent" 120 ready_state ready
