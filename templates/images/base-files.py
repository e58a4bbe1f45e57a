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
