{#-
hashicluster's shell library, included by the steps' scripts at render time
({% include "steps/lib.sh" %}). Function definitions only: including it runs nothing.
The interface:

  fail MESSAGE...      print `error: MESSAGE` on stderr and exit 1.
  stamp                print the time as UTC with milliseconds (2024-01-31T12:00:00.123Z).
  use_api              source /etc/consul.d/api.env when it is there (the consul step writes it):
                       sets CONSUL_HTTP_ADDR (Consul's local API URL), NOMAD_SCHEME (http or
                       https), CONSUL_CACERT and NOMAD_CACERT (with TLS), CONSUL_HTTP_TOKEN_FILE
                       and NOMAD_TOKEN (with ACLs), and defines `api`.
  api CURL-ARGS...     (from api.env) curl -sf for the cluster's APIs, with the cluster's CA and
                       this machine's token headers; prints the body, fails on an HTTP error.
  wait_for WHAT TIMEOUT STATE CONDITION [ARG...]
                       run CONDITION ARG... every 0.2 s until it succeeds, then print
                       `WHAT: ready`. After TIMEOUT seconds print `error: WHAT not ready after
                       TIMEOUTs; last state seen:` and the output of the command STATE on
                       stderr, and exit 1.
  put_file TMP PATH MODE OWNER
                       install the file TMP as PATH (MODE, OWNER:OWNER) when their contents
                       differ and set changed=1; otherwise only fix PATH's mode and owner.
                       TMP is removed either way.
  has_leader URL       true when the Consul or Nomad API at URL knows its cluster's leader
                       (needs `api`).
  alive ROLE COUNT     true when the local Consul agent knows COUNT or more alive members of
                       ROLE (server, client) (needs `api`).
  nomad_node_ready URL true when this machine's Nomad client, asked at URL, is `ready`.
  json_field FIELD     print the field FIELD of the JSON object on stdin: a string as it is,
                       anything else as JSON (true, 3); an empty line when it has none. Print
                       nothing and return 1 when stdin is not JSON.
  json_count LIST [FIELD=VALUE | FIELD!=VALUE | FIELD^=PREFIX]...
                       print how many items of the list at LIST (a dotted path into the JSON on
                       stdin; `.` for the document; a JSON object's items are its values) match
                       every condition; FIELD is a dotted path into the item, VALUE compared as
                       json_field prints it. Print nothing and return 1 when stdin is not JSON.
  json_rows FIELD...   print one line per item of the JSON list on stdin: its FIELDs separated
                       by tabs; print nothing and return 1 when stdin is not JSON.
  json_set JSON FIELD FILE
                       print the JSON object JSON with FIELD set to the content of FILE (its
                       trailing newlines dropped): a secret reaches JSON through a file, never
                       through a process's arguments.
The json_* functions need python3 (in the machines' base). The scripts run in root's login
shell, bash: `local`, `$'\t'`. A script that uses put_file sets changed=0 first.

URLs are written as the scripts use them, e.g. "$NOMAD_SCHEME://10.210.1.10:4646".
-#}
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
