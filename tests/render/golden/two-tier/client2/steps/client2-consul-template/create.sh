# consul-template 1.0.0 sha256 cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc
# Installs consul-template on this machine, or brings it up to date:
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
HC_STATE=${HC_STATE:-/var/lib/hashicluster}  # another only in the scripts' own tests
product=${product:-}  # whose records the functions below keep: a script that keeps any sets it
keep_original() {
  local records=$HC_STATE/placed/$product parent missing=""
  if ! grep -qxF "$1" "$records" 2>/dev/null; then
    if [ -e "$1" ] || [ -L "$1" ]; then
      mkdir -p "$HC_STATE/originals$(dirname "$1")" && cp -a "$1" "$HC_STATE/originals$1"
    fi
    parent=$(dirname "$1")
    while [ ! -e "$parent" ]; do missing=$parent; parent=$(dirname "$parent"); done
    if [ -n "$missing" ]; then record dirs "$missing"; fi
    mkdir -p "$HC_STATE/placed" && echo "$1" >> "$records"
  fi
}
record() { mkdir -p "$HC_STATE/created" && echo "$2" >> "$HC_STATE/created/$product.$1"; }
make_dir() {
  if [ ! -d "$1" ]; then mkdir -p "$1" && record dirs "$1"; fi
  chmod "$2" "$1"; chown "$3:$3" "$1"
}
claim_data() {
  if grep -qsF "$1" "$HC_STATE/created/$product.dirs" "$HC_STATE/created/$product.empty"; then return 0; fi
  if [ ! -e "$1" ]; then
    record dirs "$1"
  elif [ -d "$1" ] && [ -z "$(ls -A "$1")" ]; then
    record empty "$(stat -c %a "$1") $1"
  fi
}
make_user() {
  if ! id -u "$1" >/dev/null 2>&1; then
    useradd --system --home-dir "$2" --shell /bin/false "$1" && record users "$1"
  fi
}
add_packages() {
  local missing="" package before
  for package in "$@"; do dpkg -s "$package" >/dev/null 2>&1 || missing="$missing $package"; done
  [ -n "$missing" ] || return 0
  before=$(mktemp)
  dpkg-query -W -f='${Package}\n' | sort > "$before"
  # shellcheck disable=SC2086  # one word per package
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing >/dev/null || { rm -f "$before"; return 1; }
  dpkg-query -W -f='${Package}\n' | sort | comm -13 "$before" - | while read -r package; do record packages "$package"; done
  rm -f "$before"
}
rc_links() { find /etc/rc0.d /etc/rc1.d /etc/rc2.d /etc/rc3.d /etc/rc4.d /etc/rc5.d /etc/rc6.d /etc/rcS.d -name "[SK][0-9][0-9]$product" 2>/dev/null | sort; }
keep_service() {
  local record=$HC_STATE/created/$product.service
  [ ! -e "$record" ] || return 0
  mkdir -p "$HC_STATE/created"
  local enabled
  enabled=$(systemctl is-enabled "$product" 2>/dev/null) || true
  { echo "${enabled:-absent}"; systemctl is-active "$product" 2>/dev/null || true; rc_links; } > "$record"
}
give_back() {
  local created=$HC_STATE/created/$product path link was_enabled="" was_active=""
  if [ -f "$HC_STATE/placed/$product" ]; then
    while read -r path; do
      if [ -e "$HC_STATE/originals$path" ] || [ -L "$HC_STATE/originals$path" ]; then
        rm -rf "$path" && mv "$HC_STATE/originals$path" "$path"
      else
        rm -rf "$path"
      fi
    done < "$HC_STATE/placed/$product"
  fi
  if [ -f "$created.dirs" ]; then sort -r "$created.dirs" | while read -r path; do rm -rf "$path"; done; fi
  if [ -f "$created.empty" ]; then
    while read -r mode path; do
      find "$path" -mindepth 1 -maxdepth 1 -exec rm -rf {} + && chmod "$mode" "$path"
    done < "$created.empty"
  fi
  if [ -f "$created.users" ]; then while read -r path; do userdel "$path" 2>/dev/null || true; done < "$created.users"; fi
  if [ -s "$created.packages" ]; then
    # shellcheck disable=SC2046  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -q $(cat "$created.packages") >/dev/null 2>&1 ||
      echo "warning: $product: could not purge the packages it added: $(tr '\n' ' ' < "$created.packages")" >&2
  fi
  systemctl daemon-reload
  if [ -f "$created.service" ]; then
    was_enabled=$(sed -n 1p "$created.service"); was_active=$(sed -n 2p "$created.service")
    case "$was_enabled" in
      enabled) systemctl enable --quiet "$product" 2>/dev/null || true ;;
      masked) systemctl mask --quiet "$product" 2>/dev/null || true ;;
    esac
    rc_links | while read -r link; do rm -f "$link"; done
    sed -n '3,$p' "$created.service" | while read -r link; do ln -sf "../init.d/$product" "$link"; done
    if [ "$was_active" = active ]; then systemctl restart "$product" 2>/dev/null || true; fi
  fi
  rm -f "$HC_STATE/placed/$product" "$created".*
}
put_file() {
  keep_original "$2"
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
    field, op, expected = re.match(r"([^=!^]+)(=|!=|\^=|!\^=)(.*)", condition).groups()
    got = text(at(item, field))
    return {"=": got == expected, "!=": got != expected, "^=": got.startswith(expected),
            "!^=": not got.startswith(expected)}[op]
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
product=consul-template
changed=0
mkdir -p /var/lib/hashicluster/staging
keep_original /etc/nginx/conf.d/services.conf
keep_original /etc/nginx/locations.d
if [ "$(sha256sum /usr/local/bin/consul-template 2>/dev/null | cut -d" " -f1)" != cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc ]; then
  packed=/var/lib/hashicluster/uploads/consul-template-1.0.0.gz new=/var/lib/hashicluster/uploads/consul-template-1.0.0.gz.bin
  [ -f "$packed" ] || fail "consul-template 1.0.0: $packed was not uploaded"
  gzip -dc "$packed" > "$new" || fail "consul-template 1.0.0: the uploaded $packed does not unpack (gzip -d); nothing installed"
  got=$(sha256sum "$new" | cut -d" " -f1)
  [ "$got" = cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc ] || fail "consul-template 1.0.0: sha256 of the uploaded binary is $got, expected cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc; nothing installed"
  keep_original /usr/local/bin/consul-template
  install -m 0755 "$new" /usr/local/bin/consul-template.new && mv /usr/local/bin/consul-template.new /usr/local/bin/consul-template; changed=1
fi
rm -f /var/lib/hashicluster/uploads/consul-template-1.0.0.gz /var/lib/hashicluster/uploads/consul-template-1.0.0.gz.bin
tmp=$(mktemp) && cat > "$tmp" <<'HASHICLUSTER_EOF'
# consul-template on the load balancer client2.demo: nginx's routes from Consul.
# Managed by hashicluster; edits are overwritten.
#
# Run with -config=/etc/consul-template.d/consul-template.hcl (this file only: consul-template
# would read every file of a -config directory as configuration, the templates included).
#
# After both files are written, the command checks nginx's whole config and reloads only if
# it passes. A refused config is reported and nginx keeps its routes (the command still
# exits 0: a failing command would stop consul-template). A stopped nginx stays stopped.

consul {
  address = "127.0.0.1:8501"
  ssl {
    enabled = true
    verify  = true
    ca_cert = "/etc/consul.d/tls/ca.pem"
  }

  # Keep trying while the local agent restarts (0 = no limit).
  retry {
    enabled     = true
    attempts    = 0
    backoff     = "250ms"
    max_backoff = "5s"
  }
}

log_level = "info"

# Render once changes settle for 500 ms, at most 2 s after the first: an instance that fails
# its health check leaves the load balancer within seconds.
wait {
  min = "500ms"
  max = "2s"
}

# The upstream groups (nginx's http context) ...
template {
  source               = "/etc/consul-template.d/services.ctmpl"
  destination          = "/etc/nginx/conf.d/services.conf"
  perms                = 0644
  error_on_missing_key = false
  command              = ["/bin/sh", "-c", "if nginx -t -q; then systemctl try-reload-or-restart nginx; else echo 'consul-template: nginx -t refused the new routes (see above); nginx keeps the previous ones' >&2; fi"]
  command_timeout      = "30s"
}

# ... and the routes (inside the port 80 server). Both come from the same data in the same
# pass, and the reload command, the same for both, runs once after both are written.
template {
  source               = "/etc/consul-template.d/locations.ctmpl"
  destination          = "/etc/nginx/locations.d/services.conf"
  perms                = 0644
  error_on_missing_key = false
  command              = ["/bin/sh", "-c", "if nginx -t -q; then systemctl try-reload-or-restart nginx; else echo 'consul-template: nginx -t refused the new routes (see above); nginx keeps the previous ones' >&2; fi"]
  command_timeout      = "30s"
}
HASHICLUSTER_EOF
put_file "$tmp" /etc/consul-template.d/consul-template.hcl 0644 root
tmp=$(mktemp) && cat > "$tmp" <<'HASHICLUSTER_EOF'
{{- /*
  A client's backend balancer: its upstream groups, rendered by consul-template into
  /etc/nginx/conf.d/services.conf. Managed by hashicluster.

  As the front balancer's services.ctmpl, but only the instances on this client's own node
  (HASHICLUSTER_NODE, set by the unit): one group per Consul service tagged "lb" with at least
  one passing instance here.
*/ -}}
# Generated by consul-template from services.ctmpl (backend balancer): do not edit.
# One upstream group per Consul service tagged "lb" with a healthy instance on this node.
{{- $node := env "HASHICLUSTER_NODE" }}
{{- range services }}
{{- if and (.Tags | contains "lb") (.Name | regexMatch "^[A-Za-z0-9][A-Za-z0-9-]*$") }}
{{- $service := .Name }}
{{- scratch.Set "servers" "" }}
{{- range service (printf "%s|passing" .Name) }}
{{- if eq .Node $node }}
{{- scratch.Set "servers" (printf "%s    server %s:%d max_fails=3 fail_timeout=5s;\n" (scratch.Get "servers") .Address .Port) }}
{{- end }}
{{- end }}
{{- if ne (scratch.Get "servers") "" }}

upstream {{ $service }} {
{{ scratch.Get "servers" }}    keepalive 16;
}
{{- end }}
{{- end }}
{{- end }}
HASHICLUSTER_EOF
put_file "$tmp" /etc/consul-template.d/services.ctmpl 0644 root
tmp=$(mktemp) && cat > "$tmp" <<'HASHICLUSTER_EOF'
{{- /*
  A client's backend balancer: its routes, rendered by consul-template into
  /etc/nginx/locations.d/services.conf. Managed by hashicluster.

  /<service>/... goes to /... on a healthy instance of this node (services.ctmpl's group of
  the same name); without one here, 503 at once, so the front balancer tries another client.
*/ -}}
# Generated by consul-template from locations.ctmpl (backend balancer): do not edit.
{{- $node := env "HASHICLUSTER_NODE" }}
{{- range services }}
{{- if and (.Tags | contains "lb") (.Name | regexMatch "^[A-Za-z0-9][A-Za-z0-9-]*$") }}
{{- scratch.Set "local" false }}
{{- range service (printf "%s|passing" .Name) }}{{ if eq .Node $node }}{{ scratch.Set "local" true }}{{ end }}{{ end }}
{{- if scratch.Get "local" }}

location /{{ .Name }}/ {
    proxy_pass http://{{ .Name }}/;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Prefix /{{ .Name }};
    proxy_connect_timeout 1s;
    proxy_next_upstream error timeout http_502 http_503;
    proxy_next_upstream_tries 3;
}
{{- else }}

location /{{ .Name }}/ {
    default_type text/plain;
    return 503 "no healthy instance of {{ .Name }} on this client\n";
}
{{- end }}
{{- end }}
{{- end }}
HASHICLUSTER_EOF
put_file "$tmp" /etc/consul-template.d/locations.ctmpl 0644 root
tmp=$(mktemp) && cat > "$tmp" <<'HASHICLUSTER_EOF'
# Managed by hashicluster; edits are overwritten.
[Unit]
Description=consul-template (nginx routes of the load balancer from Consul)
Documentation=https://github.com/hashicorp/consul-template
Wants=network-online.target consul.service
After=network-online.target consul.service nginx.service

[Service]
# root: it writes nginx's config and reloads nginx.
# The config file only: every file of a -config directory would be read as config.
# With ACLs, its Consul token (CONSUL_HTTP_TOKEN), in a file of mode 0600.
EnvironmentFile=-/etc/consul-template.d/token.env
# This node's name: the backend balancer routes to its instances only.
Environment=HASHICLUSTER_NODE=client2
ExecStart=/usr/local/bin/consul-template -config=/etc/consul-template.d/consul-template.hcl
ExecReload=/bin/kill --signal HUP $MAINPID
KillMode=process
KillSignal=SIGINT
Restart=on-failure
RestartSec=2
LimitNOFILE=65536

[Install]
WantedBy=multi-user.target
HASHICLUSTER_EOF
put_file "$tmp" /etc/systemd/system/consul-template.service 0644 root
while read -r path mode owner data; do
  tmp=$(mktemp) && printf %s "$data" | base64 -d > "$tmp"
  put_file "$tmp" "$path" "$mode" "$owner"
done
[ -s /etc/consul-template.d/token.env ] || fail "consul-template: the secret file /etc/consul-template.d/token.env did not arrive on stdin"
# What this step put in place, for the drift probe (templates/probe/observe.py): the sha256 of
# each file and of the binary, as sha256sum prints them.
mkdir -p /var/lib/hashicluster/manifest
sha256sum \
  /usr/local/bin/consul-template \
  /etc/consul-template.d/consul-template.hcl \
  /etc/consul-template.d/services.ctmpl \
  /etc/consul-template.d/locations.ctmpl \
  /etc/systemd/system/consul-template.service \
  /etc/consul-template.d/token.env \
  > /var/lib/hashicluster/manifest/consul-template.sha256.new && mv /var/lib/hashicluster/manifest/consul-template.sha256.new /var/lib/hashicluster/manifest/consul-template.sha256
if [ "$changed" = 1 ]; then systemctl daemon-reload; fi
keep_service
systemctl enable --quiet consul-template
if [ "$changed" = 1 ]; then systemctl restart consul-template; else systemctl start consul-template; fi
use_api
ready_state() { journalctl -u consul-template -n 20 --no-pager; }
ready() { [ -e /etc/nginx/conf.d/services.conf ]; }
wait_for "the local consul-template agent" 120 ready_state ready
