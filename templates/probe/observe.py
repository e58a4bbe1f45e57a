"""What a machine has of what the program put there: run on the machine by the drift probe
(cluster/services/drift.py) as `python3 - WANT < observe.py`.

Each install step leaves a manifest, MANIFESTS/PRODUCT.sha256: the sha256 of every file and
binary it put in place, as `sha256sum` prints them (`HASH  PATH` per line).

Reads: WANT, a JSON object {"products": [PRODUCT, ...], "manifests": MANIFESTS}.
Prints: one JSON object {PRODUCT: {"active": its unit's ActiveState, "enabled": its
UnitFileState, "manifest": false when there is none, "files": {PATH: "ok", "changed" or
"missing"}}}.
Changes nothing the program installed: it only reads, so running it again gives the same
answer. To stay fast on every refresh it keeps one cache, in /run (gone at reboot): the digest
of each file with the file's size, inode, mtime and ctime. A file whose status is unchanged is
not read again (a write changes its mtime and ctime, and ctime cannot be set back).
"""

import hashlib
import json
import os
import subprocess
import sys

PROPERTIES = ("ActiveState", "UnitFileState")
CACHE = os.environ.get("HASHICLUSTER_PROBE_CACHE", "/run/hashicluster/probe-digests.json")


def unit_state(unit: str) -> dict[str, str]:
    """The unit's ActiveState and UnitFileState, from `systemctl show`'s KEY=VALUE lines."""
    proc = subprocess.run(["systemctl", "show", unit, "--property=" + ",".join(PROPERTIES)],
                          capture_output=True, text=True, check=False)
    shown = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    return {"active": shown.get("ActiveState") or "unknown",
            "enabled": shown.get("UnitFileState") or "not-found"}


def load_cache() -> dict[str, list[object]]:
    try:
        with open(CACHE) as f:
            cache = json.load(f)
        return cache if isinstance(cache, dict) else {}
    except (OSError, ValueError):
        return {}


def save_cache(cache: dict[str, list[object]]) -> None:
    os.makedirs(os.path.dirname(CACHE), mode=0o700, exist_ok=True)
    tmp = CACHE + ".tmp"
    with open(tmp, "w") as f:
        json.dump(cache, f)
    os.replace(tmp, CACHE)


def current_digest(path: str, cache: dict[str, list[object]]) -> str | None:
    """The file's sha256 (None when there is no such file), read again only when its status
    changed since the cached digest was taken."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    key: list[object] = [st.st_size, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]
    cached = cache.get(path)
    if isinstance(cached, list) and cached[:4] == key:
        return str(cached[4])
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    cache[path] = [*key, digest]
    return digest


def file_state(path: str, digest: str, cache: dict[str, list[object]]) -> str:
    current = current_digest(path, cache)
    return "missing" if current is None else "ok" if current == digest else "changed"


def product_state(product: str, manifests: str, cache: dict[str, list[object]]) -> dict[str, object]:
    state: dict[str, object] = {**unit_state(product), "manifest": False, "files": {}}
    path = os.path.join(manifests, f"{product}.sha256")
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return state
    entries = [line.split(None, 1) for line in lines if line.strip()]
    state["manifest"] = True
    state["files"] = {name: file_state(name, digest, cache) for digest, name in entries}
    return state


def main() -> None:
    want = json.loads(sys.argv[1])
    cache = load_cache()
    print(json.dumps({p: product_state(p, want["manifests"], cache) for p in want["products"]}))
    save_cache(cache)


main()
