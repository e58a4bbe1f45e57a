# The image of job fib: built on client1 from jobs/fib/ (on stdin, a base64 tar)
# and pushed to the cluster's registry as frontend.lb.demo:5000/fib:8c1f087343915ea1 and frontend.lb.demo:5000/fib:latest.
# Its base, hashicluster/python3:621d3acc482f9900, is made here first if this machine's Docker does not have it: python3
# and the packages it depends on, their files taken from this machine's own Debian
# (templates/images/base-files.py), imported as one layer. Nothing is pulled from a registry
# on the internet.
# Reads: stdin (the build context); the template values.
# A second run changes nothing but the layers' times: the base is made once, the build's
# layers come from Docker's cache, and the registry keeps what it has.
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
context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
base64 -d | tar -x -C "$context"
if ! docker image inspect hashicluster/python3:621d3acc482f9900 >/dev/null 2>&1; then
  echo "$(stamp) client1: making the base image hashicluster/python3:621d3acc482f9900 from this machine's python3"
  files=$(mktemp)
  python3 - > "$files" <<'HASHICLUSTER_EOF'
"""The files of a python3 base image, from this machine's own Debian packages.

Prints, one per line, every path that the package python3 and the packages it depends on
(Pre-Depends and Depends, the first installed alternative of each, transitively) installed
and that exists here, documentation left out: what python3 and its standard library need
to run, and nothing else of the machine. A path under a merged-/usr link (/lib -> usr/lib)
is printed as its target's, and the links come first, so that the image has the same layout
as the machine.
Reads dpkg's database through two dpkg-query calls (a process each is slow under emulation).
"""

import os
import subprocess
import sys

ROOT_PACKAGE = "python3"
# Documentation, manuals and translations: not needed to run anything.
LEFT_OUT = tuple(f"/usr/share/{d}/" for d in ("doc", "doc-base", "man", "info", "locale", "lintian",
                                               "bug", "menu", "pixmaps", "polkit-1"))


def query(*args: str) -> list[str]:
    """dpkg-query's lines (what it found, when it did not find everything it was asked)."""
    done = subprocess.run(["dpkg-query", *args], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()


def installed_packages() -> dict[str, list[str]]:
    """Every installed package -> its Pre-Depends and Depends clauses, in one query."""
    packages = {}
    for line in query("-W", "-f=${Package}\t${db:Status-Status}\t${Pre-Depends}, ${Depends}\n"):
        name, status, depends = line.split("\t")
        if status == "installed":
            packages[name] = [c for c in depends.split(",") if c.strip()]
    return packages


def closure(root: str, packages: dict[str, list[str]]) -> list[str]:
    """ROOT and, transitively, the first installed alternative of each of its dependencies."""
    seen, todo = {root}, [root]
    while todo:
        for clause in packages[todo.pop()]:
            names = [a.strip().split(" ")[0].split(":")[0] for a in clause.split("|")]
            dep = next((name for name in names if name in packages), None)
            if dep is not None and dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return sorted(seen)


def canonical(path: str) -> str:
    """PATH with its directory resolved (merged /usr), the file itself left as it is."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def main() -> None:
    packages = installed_packages()
    if ROOT_PACKAGE not in packages:
        sys.exit(f"{ROOT_PACKAGE} is not installed on this machine")
    links = [f"/{name}" for name in ("bin", "sbin", "lib", "lib64") if os.path.islink(f"/{name}")]
    # One query for every package's files (dpkg-query -L takes several).
    paths = {canonical(path) for path in query("-L", *closure(ROOT_PACKAGE, packages))
             if path.startswith("/") and path not in ("/", "/.")}
    kept = sorted(p for p in paths
                  if os.path.lexists(p) and not os.path.isdir(p) and not p.startswith(LEFT_OUT))
    print("\n".join(path.lstrip("/") for path in [*links, *kept]))


main()
HASHICLUSTER_EOF
  tar -c -C / --no-recursion --files-from "$files" | docker import --change 'ENV PATH=/usr/bin:/bin' - hashicluster/python3:621d3acc482f9900 >/dev/null
  rm -f "$files"
fi
echo "$(stamp) client1: building frontend.lb.demo:5000/fib:8c1f087343915ea1"
docker build --quiet --build-arg BASE=hashicluster/python3:621d3acc482f9900 --tag frontend.lb.demo:5000/fib:8c1f087343915ea1 --tag frontend.lb.demo:5000/fib:latest "$context" >/dev/null
docker run --rm --entrypoint /usr/bin/python3 frontend.lb.demo:5000/fib:8c1f087343915ea1 -c 'import http.server, json' ||
  fail "frontend.lb.demo:5000/fib:8c1f087343915ea1: python3 does not start in the image"
for tag in frontend.lb.demo:5000/fib:8c1f087343915ea1 frontend.lb.demo:5000/fib:latest; do
  docker push --quiet "$tag" >/dev/null || fail "cannot push $tag to the registry frontend.lb.demo:5000"
done
echo "$(stamp) client1: pushed frontend.lb.demo:5000/fib:8c1f087343915ea1 ($(docker image inspect --format '{{.Size}}' frontend.lb.demo:5000/fib:8c1f087343915ea1) bytes)"
