#!/bin/sh
# bench/order.sh -- regenerates bench/start-order.sym, the functions of `daemonic` that run on the
# path of a start (the launcher, and the keeper until it re-executes), which build.rs asks the
# linker to place first and together.
#
# Why: every 64 KiB window of code a process touches first costs a page fault (the kernel maps
# the window around it), and the launcher and the keeper each touch their code afresh. Spread
# over the 1.5 MiB of text, a start touched about 17 windows before its fork; placed together
# it touches 8 (bench/keeper.sh and ../shared/bench/detach.sh measure the start).
#
# Needs valgrind (callgrind lists every function executed, with its mangled name). The names
# carry hashes that change with the compiler and the dependencies' versions, not with the
# checkout's path: rerun this after a toolchain or Cargo.lock update. Stale names cost nothing
# but the ordering (the linker skips names it does not know).
#
# Usage: bench/order.sh
set -eu
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "order.sh: valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
cargo build --release --quiet
bin=target/$(rustc --print host-tuple)/release/daemonic
tmp=$(mktemp -d)
trap '"$bin" stop --pidfile "$tmp/p.pid" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
# The keeper's part is dumped when it enters its re-exec; the program itself is not traced.
valgrind --tool=callgrind --demangle=no --trace-children=yes --trace-children-skip='*sleep*' \
    --child-silent-after-fork=no --dump-before='_ZN8daemonic6keeper6Keeper6reexec*' \
    --callgrind-out-file="$tmp/cg.%p" \
    "$bin" start --pidfile "$tmp/p.pid" -- /bin/sleep 1000 2>"$tmp/valgrind.log"
# Wait for the keeper's dump (it re-executes once the launcher has gone and 10 ms passed).
for _ in $(seq 100); do
    ls "$tmp"/cg.*.1 >/dev/null 2>&1 && break
    sleep 0.1
done
python3 - "$tmp" > bench/start-order.sym <<'PY'
import glob, re, sys
# callgrind names each object and function in full once, then by number: (n).
names, seen = [], set()
for path in sorted(glob.glob(sys.argv[1] + "/cg.*")):
    objects, functions, current = {}, {}, None
    for line in open(path, errors="replace"):
        m = re.match(r"^(c?)(ob|fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if not m:
            continue
        called, kind, number, name = m.groups()
        table = objects if kind == "ob" else functions
        if name:
            table[number] = name
        if called:
            continue
        if kind == "ob":
            current = objects.get(number, "")
        elif current.endswith("/daemonic") and functions.get(number) not in seen:
            seen.add(functions[number])
            names.append(functions[number])
print("\n".join(names))
PY
echo "order.sh: $(wc -l < bench/start-order.sym) functions in bench/start-order.sym"
