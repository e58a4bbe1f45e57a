"""The files of a python3 base image, from this machine's own Debian packages.

Prints, one per line, every path that the package python3 and the packages it depends on
(Pre-Depends and Depends, the first installed alternative of each, transitively) installed
and that exists here, documentation left out: what python3 and its standard library need
to run, and nothing else of the machine. A path under a merged-/usr link (/lib -> usr/lib)
is printed as its target's, and the links come first, so that the image has the same layout
as the machine.
Reads dpkg's database through dpkg-query, with formats that print one field per line.
"""

import os
import subprocess
import sys

ROOT_PACKAGE = "python3"
# Documentation, manuals and translations: not needed to run anything.
LEFT_OUT = tuple(f"/usr/share/{d}/" for d in ("doc", "doc-base", "man", "info", "locale", "lintian",
                                               "bug", "menu", "pixmaps", "polkit-1"))


def query(*args: str) -> list[str]:
    done = subprocess.run(["dpkg-query", *args], capture_output=True, text=True, check=False)
    return done.stdout.splitlines() if done.returncode == 0 else []


def installed(package: str) -> bool:
    return query("-W", "-f=${db:Status-Status}\n", package) == ["installed"]


def dependencies(package: str) -> list[str]:
    """The installed package of each of PACKAGE's Pre-Depends and Depends."""
    fields = query("-W", "-f=${Pre-Depends}\n${Depends}\n", package)
    found = []
    for clause in ",".join(fields).split(","):
        for alternative in clause.split("|"):
            name = alternative.strip().split(" ")[0].split(":")[0]
            if name and installed(name):
                found.append(name)
                break
    return found


def closure(root: str) -> list[str]:
    seen, todo = {root}, [root]
    while todo:
        for dep in dependencies(todo.pop()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return sorted(seen)


def canonical(path: str) -> str:
    """PATH with its directory resolved (merged /usr), the file itself left as it is."""
    return os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))


def main() -> None:
    if not installed(ROOT_PACKAGE):
        sys.exit(f"{ROOT_PACKAGE} is not installed on this machine")
    links = [f"/{name}" for name in ("bin", "sbin", "lib", "lib64") if os.path.islink(f"/{name}")]
    paths = {canonical(path) for package in closure(ROOT_PACKAGE) for path in query("-L", package)
             if path.startswith("/") and path not in ("/", "/.")}
    kept = sorted(p for p in paths
                  if os.path.lexists(p) and not os.path.isdir(p) and not p.startswith(LEFT_OUT))
    print("\n".join(path.lstrip("/") for path in [*links, *kept]))


main()
