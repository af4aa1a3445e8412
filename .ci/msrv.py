#!/usr/bin/env python3
"""MSRV check without the old toolchain (this workplace cannot download
one): the highest `rust-version` declared by any dependency that a feature
set compiles must not exceed what we promise. Our own code's use of the
standard library is checked by clippy's `incompatible_msrv` lint, which
reads `rust-version` from Cargo.toml (clippy runs with -D warnings)."""
import json
import subprocess
import sys

PROMISES = {
    # feature set -> the minimum Rust the README states for it
    "": "1.88",
    "axum,tracing,grpc,cache,test-kit,metrics": "1.88",
}


def version(v):
    parts = [int(x) for x in v.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


meta = json.loads(
    subprocess.check_output(
        ["cargo", "metadata", "--format-version", "1", "--locked"], text=True
    )
)
declared = {(p["name"], p["version"]): p.get("rust_version") for p in meta["packages"]}
ours = next(p for p in meta["packages"] if p["name"] == "tower-pat")
if ours.get("rust_version") != PROMISES[""]:
    sys.exit(f"Cargo.toml says rust-version {ours.get('rust_version')}, the README {PROMISES['']}")

# Companion crates: each promises the rust-version its Cargo.toml declares,
# with all its features.
COMPANIONS = ["tower-pat-sqlx-store", "tower-pat-redis", "tower-pat-utoipa", "tower-pat-leak-reports"]
checks = [("tower-pat", f, p) for f, p in PROMISES.items()]
for name in COMPANIONS:
    pkg = next(p for p in meta["packages"] if p["name"] == name)
    checks.append((name, None, pkg["rust_version"]))

failed = False
for crate, features, promise in checks:
    feature_args = (["--no-default-features", "--features", features]
                    if features is not None else ["--all-features"])
    tree = subprocess.check_output(
        ["cargo", "tree", "-p", crate, "--locked", *feature_args,
         "-e", "normal", "--prefix", "none", "-f", "{p}"],
        text=True,
    )
    highest, who = "0.0", "-"
    for line in tree.splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0] == crate or parts[0].startswith("tower-pat"):
            continue
        name, ver = parts[0], parts[1].lstrip("v")
        rv = declared.get((name, ver))
        if rv and version(rv) > version(highest):
            highest, who = rv, f"{name} {ver}"
    ok = version(highest) <= version(promise)
    failed |= not ok
    label = f"{crate} [{features or 'none'}]" if features is not None else f"{crate} [all features]"
    print(f"{label}: needs Rust {highest} ({who}); promised {promise}: "
          + ("ok" if ok else "BROKEN"))
sys.exit(1 if failed else 0)
