# consul 1.0.0 sha256 cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc
# Installs consul on this machine, or brings it up to date:
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
# The sha256 of the binary unpacked here is recorded (for the drift probe, and for this step's
# next run: a binary missing or differing from its record is installed again) in
# /var/lib/hashicluster/staging/consul.installed-binary-sha256; an install from before records were kept gets its record now.
installed() { sha256sum /usr/local/bin/consul 2>/dev/null | cut -d" " -f1; }
if [ ! -s /var/lib/hashicluster/staging/consul.installed-binary-sha256 ] && [ "$(cat /var/lib/hashicluster/staging/consul.installed-zip-sha256 2>/dev/null)" = cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc ]; then
  installed > /var/lib/hashicluster/staging/consul.installed-binary-sha256
fi
if [ "$(cat /var/lib/hashicluster/staging/consul.installed-zip-sha256 2>/dev/null)" != cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc ] || [ ! -x /usr/local/bin/consul ] ||
   [ "$(installed)" != "$(cat /var/lib/hashicluster/staging/consul.installed-binary-sha256 2>/dev/null)" ]; then
  zip=/var/lib/hashicluster/staging/consul-1.0.0.download
  curl -fsSL --retry 3 -o "$zip" '' || fail "consul 1.0.0: download of  failed"
  got=$(sha256sum "$zip" | cut -d" " -f1)
  [ "$got" = cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc ] || { rm -f "$zip"; fail "consul 1.0.0: sha256 of  is $got, expected cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc; nothing installed"; }
  new=/var/lib/hashicluster/staging/consul-1.0.0.bin
  unzip -p "$zip" consul > "$new" && rm -f "$zip"
  install -m 0755 "$new" /usr/local/bin/consul.new && mv /usr/local/bin/consul.new /usr/local/bin/consul; changed=1
  rm -f "$new"
  installed > /var/lib/hashicluster/staging/consul.installed-binary-sha256
  echo cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc > /var/lib/hashicluster/staging/consul.installed-zip-sha256
fi
id -u consul >/dev/null 2>&1 || useradd --system --home-dir /opt/consul --shell /bin/false consul
install -d -m 0750 -o consul -g consul /opt/consul
install -d -m 0750 -o consul -g consul /etc/consul.d
tmp=$(mktemp) && cat > "$tmp" <<'HASHICLUSTER_EOF'
# Consul agent: settings every node shares. Managed by hashicluster; edits are overwritten.
datacenter     = "dc1"
node_name      = "frontend"
data_dir       = "/opt/consul"
bind_addr      = "10.210.1.20"
advertise_addr = "10.210.1.20"

client_addr    = "127.0.0.1"
retry_join     = ["10.210.1.10"]
log_level      = "INFO"

# No calls home to check for new versions.
disable_update_check = true
HASHICLUSTER_EOF
put_file "$tmp" /etc/consul.d/consul.hcl 0640 consul
tmp=$(mktemp) && cat > "$tmp" <<'HASHICLUSTER_EOF'
# How the project's scripts on this machine reach the Consul and Nomad APIs (sourced).
# Managed by hashicluster; edits are overwritten. Consul reads only *.hcl and *.json here.
export CONSUL_HTTP_ADDR=https://127.0.0.1:8501
export CONSUL_CACERT=/etc/consul.d/tls/ca.pem
export NOMAD_CACERT=/etc/consul.d/tls/ca.pem
NOMAD_SCHEME=https
# The machine's tokens (files of mode 0600): the CLIs read them from the environment, curl
# sends them as headers from a file; neither is ever an argument of a process.
export CONSUL_HTTP_TOKEN_FILE=/etc/consul.d/api.token
[ ! -r /etc/nomad.d/api.token ] || export NOMAD_TOKEN="$(cat /etc/nomad.d/api.token)"
# `api URL`: curl for the cluster's APIs, checked against the cluster's CA,
# with this machine's tokens (each API reads its own header).
api() {
  [ ! -r /etc/consul.d/api.header ] || set -- -H @/etc/consul.d/api.header "$@"
  [ ! -r /etc/nomad.d/api.header ] || set -- -H @/etc/nomad.d/api.header "$@"
  curl -sf --cacert /etc/consul.d/tls/ca.pem "$@"
}
HASHICLUSTER_EOF
put_file "$tmp" /etc/consul.d/api.env 0640 consul
tmp=$(mktemp) && cat > "$tmp" <<'HASHICLUSTER_EOF'
# TLS with the cluster's CA. Managed by hashicluster; edits are overwritten.
# The key and certificates come on the install step's stdin (the key is a secret).
tls {
  defaults {
    ca_file         = "/etc/consul.d/tls/ca.pem"
    cert_file       = "/etc/consul.d/tls/agent.pem"
    key_file        = "/etc/consul.d/tls/agent-key.pem"
    verify_outgoing = true
  }
  # Agents talk to each other only with a certificate of the CA, and a server only if it
  # holds server.dc1.consul.
  internal_rpc {
    verify_incoming        = true
    verify_server_hostname = true
  }
  # API clients check the agent with the CA; the ACL tokens say who they are.
  https {
    verify_incoming = false
  }
}

# The API over HTTPS only.
ports {
  http  = -1
  https = 8501
}
HASHICLUSTER_EOF
put_file "$tmp" /etc/consul.d/tls.hcl 0640 consul
tmp=$(mktemp) && cat > "$tmp" <<'HASHICLUSTER_EOF'
# Managed by hashicluster; edits are overwritten.
[Unit]
Description=Consul agent (client)
Documentation=https://developer.hashicorp.com/consul/docs
Wants=network-online.target
After=network-online.target

[Service]
Type=notify
User=consul
Group=consul
ExecStart=/usr/local/bin/consul agent -config-dir=/etc/consul.d
ExecReload=/bin/kill --signal HUP $MAINPID
KillMode=process
KillSignal=SIGTERM
Restart=on-failure
RestartSec=2
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
HASHICLUSTER_EOF
put_file "$tmp" /etc/systemd/system/consul.service 0644 root
while read -r path mode owner data; do
  tmp=$(mktemp) && printf %s "$data" | base64 -d > "$tmp"
  put_file "$tmp" "$path" "$mode" "$owner"
done
[ -s /etc/consul.d/tls/ca.pem ] || fail "consul: the secret file /etc/consul.d/tls/ca.pem did not arrive on stdin"
[ -s /etc/consul.d/tls/agent.pem ] || fail "consul: the secret file /etc/consul.d/tls/agent.pem did not arrive on stdin"
[ -s /etc/consul.d/tls/agent-key.pem ] || fail "consul: the secret file /etc/consul.d/tls/agent-key.pem did not arrive on stdin"
[ -s /etc/consul.d/gossip.hcl ] || fail "consul: the secret file /etc/consul.d/gossip.hcl did not arrive on stdin"
[ -s /etc/consul.d/acl.hcl ] || fail "consul: the secret file /etc/consul.d/acl.hcl did not arrive on stdin"
[ -s /etc/consul.d/api.token ] || fail "consul: the secret file /etc/consul.d/api.token did not arrive on stdin"
[ -s /etc/consul.d/api.header ] || fail "consul: the secret file /etc/consul.d/api.header did not arrive on stdin"
if [ -e /etc/consul.d/backend.hcl ]; then rm -f /etc/consul.d/backend.hcl; changed=1; fi
# What this step put in place, for the drift probe (templates/probe/observe.py): the sha256 of
# each file and of the binary, as sha256sum prints them.
mkdir -p /var/lib/hashicluster/manifest
sha256sum \
  /usr/local/bin/consul \
  /etc/consul.d/consul.hcl \
  /etc/consul.d/api.env \
  /etc/consul.d/tls.hcl \
  /etc/systemd/system/consul.service \
  /etc/consul.d/tls/ca.pem \
  /etc/consul.d/tls/agent.pem \
  /etc/consul.d/tls/agent-key.pem \
  /etc/consul.d/gossip.hcl \
  /etc/consul.d/acl.hcl \
  /etc/consul.d/api.token \
  /etc/consul.d/api.header \
  > /var/lib/hashicluster/manifest/consul.sha256.new && mv /var/lib/hashicluster/manifest/consul.sha256.new /var/lib/hashicluster/manifest/consul.sha256
if [ "$changed" = 1 ]; then systemctl daemon-reload; fi
systemctl enable --quiet consul
if [ "$changed" = 1 ]; then systemctl restart consul; else systemctl start consul; fi
use_api
ready_state() { consul members; journalctl -u consul -n 20 --no-pager; }
ready() { has_leader "$CONSUL_HTTP_ADDR"; }
wait_for "the local consul agent" 120 ready_state ready
