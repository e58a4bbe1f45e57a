#!/usr/bin/env python3
"""A stand-in for the go command, driven by $FAKE_GO_ROOT (for the build tests).

$FAKE_GO_ROOT/modules/<path>@<version>/ holds module dirs (LICENSE, go.mod); every call is
appended to $FAKE_GO_ROOT/calls.log; $FAKE_GO_FAIL names a sub-command that must fail;
$FAKE_GO_SUM is written into go.sum by `go mod tidy`.
"""

import json
import os
import sys
from pathlib import Path

root = Path(os.environ["FAKE_GO_ROOT"])
args = sys.argv[1:]
with (root / "calls.log").open("a") as log:
    log.write(" ".join(args) + "\n")
if os.environ.get("FAKE_GO_FAIL") == args[0]:
    print(f"fake go: {args[0]} failed on purpose", file=sys.stderr)
    sys.exit(1)


def module_json(module_at: str) -> dict[str, str]:
    path, version = module_at.split("@")
    mod_dir = root / "modules" / module_at
    info = root / f"{path.replace('/', '_')}.info"
    info.write_text(json.dumps({"Version": version, "Time": "2023-10-30T12:58:10Z"}))
    return {
        "Path": path,
        "Version": version,
        "Dir": str(mod_dir),
        "GoMod": str(mod_dir / "go.mod"),
        "Info": str(info),
    }


if args[:3] == ["mod", "download", "-json"]:
    print(json.dumps(module_json(args[3])))
elif args[:2] == ["mod", "tidy"]:
    Path("go.sum").write_text(os.environ.get("FAKE_GO_SUM", "example.com/dep v1.0.0 h1:x=\n"))
elif args[:2] == ["list", "-deps"]:
    print("example.com/fake v1.0.0\nexample.com/dep v1.0.0")
elif args[:3] == ["list", "-m", "-json"]:
    required = [
        line.split()[0:2]
        for line in Path("go.mod").read_text().splitlines()
        if line.startswith("\t") and "=>" not in line
    ]
    version = dict(required)[args[3]]
    print(json.dumps(module_json(f"{args[3]}@{version}")))
elif args[0] == "build":
    out = Path(args[args.index("-o") + 1])
    ldflags = args[args.index("-ldflags") + 1]
    target = f"{os.environ.get('GOOS')}/{os.environ.get('GOARCH')} cgo={os.environ.get('CGO_ENABLED')}"
    out.write_text(f"#!/bin/sh\necho 'built {args[-1]} with {ldflags} for {target}'\n")
    out.chmod(0o755)
elif args[:2] == ["env", "GOVERSION"]:
    print("go1.99.0")
else:
    print(f"fake go: unexpected arguments {args}", file=sys.stderr)
    sys.exit(2)
