#!/usr/bin/env bash
# bench/logs.sh -- log capture: throughput against s6-log, svlogd, multilog and `cat > file`, and
# zero lines lost over 1,000 restarts.
#
# 1. Throughput: runs the reference harness ../shared/bench/logtput.sh (200 MB of numbered
#    100-byte lines, timestamps, 10 MB rotation, every line verified present once, in order,
#    intact) with `daemonic logger` added, then prints daemonic's ratio to each peer.
#    Targets: >= 400 MB/s, >= 2x s6-log. Needs `apt-get install s6 runit daemontools`; a missing
#    peer is reported by the harness as "(not installed)".
# 2. Restarts: a program that prints "line N" just before it exits, restarted 1,000 times by a
#    keeper (--restart always --stable-after 0), logging with --log; then every line 1..1000 must
#    be in the log exactly once, in order. Also prints the restarts per second achieved.
# 3. Memory while logging: the USS of the second of two keepers, each logging a flood (`yes`)
#    or a line every 50 ms, against s6-log (the logger alone) fed the same. Target <= 128 KiB.
#
# Usage: bench/logs.sh            RESTARTS=1000 RUNS=5 REPEAT=3 bench/logs.sh
# Builds the release binaries first. Everything it starts is stopped at the end.
set -u
cd "$(dirname "$0")/.."
root=$(pwd)
cargo build --release --quiet || exit 1
D=$root/target/$(rustc --print host-tuple)/release/daemonic
work=$(mktemp -d /tmp/daemonic-bench-logs.XXXXXX)
export DAEMONIC_RUNDIR=$work/run
trap '"$D" stop -n restarts >/dev/null 2>&1; for i in 1 2; do "$D" stop -n "mem$i" >/dev/null 2>&1; done; pkill -f "$work/s6-" 2>/dev/null; rm -rf "$work"' EXIT

echo "## 1. throughput (reference harness ../shared/bench/logtput.sh, daemonic added)"
harness=$root/../shared/bench/logtput.sh
if [ -x "$harness" ]; then
    out=$work/logtput.txt
    RUNS=${RUNS:-5} EXTRA_LOGGERS="daemonic=$D logger --log-size {SIZE} --log-keep 100 {DIR}" \
        "$harness" 2>&1 | tee "$out"
    mbs() { awk -v t="$1" '$1 == t && $2 ~ /^[0-9.]+$/ {print $2}' "$out"; }
    ours=$(mbs daemonic)
    for peer in s6-log svlogd multilog cat; do
        theirs=$(mbs "$peer")
        if [ -n "$ours" ] && [ -n "$theirs" ]; then
            awk -v a="$ours" -v b="$theirs" -v p="$peer" 'BEGIN { printf "daemonic / %-8s %.2fx (%s vs %s MB/s)\n", p, a / b, a, b }'
        fi
    done
else
    echo "(../shared/bench/logtput.sh not found: skipped)"
fi

echo
echo "## 2. lines lost over restarts"
n=${RESTARTS:-1000}
counter=$work/counter
prog=$work/numbered.sh
cat >"$prog" <<EOF
#!/bin/sh
n=\$(( \$(cat $counter 2>/dev/null || echo 0) + 1 ))
echo \$n > $counter
echo "line \$n"
if [ \$n -ge $n ]; then exec sleep 100000; fi
exit 1
EOF
chmod +x "$prog"
start=$(date +%s.%N)
"$D" start -n restarts --log "$work/log" --log-keep 1000 --restart always --stable-after 0 -- "$prog" || exit 1
# (The program rewrites the counter with `>`: it may read empty for a moment.)
count() { local c; c=$(cat "$counter" 2>/dev/null); echo "${c:-0}"; }
while [ "$(count)" -lt "$n" ]; do sleep 0.05; done
# The last line reaches the log a moment after the counter.
for _ in $(seq 100); do grep -q "line $n\$" "$work/log/current" && break; sleep 0.02; done
end=$(date +%s.%N)
"$D" stop -n restarts >/dev/null
got=$(cat "$work"/log/@* "$work/log/current" 2>/dev/null | grep -o 'line [0-9]*$' | awk '{print $2}')
present=$(printf '%s\n' "$got" | grep -c .)
in_order=$(printf '%s\n' "$got" | awk -v n="$n" 'NR != $1 {bad++} END {print (bad == 0 && NR == n) ? "yes" : "no"}')
restarts=$(grep -c 'daemonic: started (pid' <(cat "$work"/log/@* "$work/log/current" 2>/dev/null))
awk -v n="$n" -v p="$present" -v o="$in_order" -v r="$restarts" -v s="$start" -v e="$end" \
    'BEGIN { printf "%d runs (%d starts logged): %d of %d lines present, each once and in order: %s; %.0f restarts/s\n", n, r, p, n, o, (n - 1) / (e - s) }'
[ "$present" = "$n" ] && [ "$in_order" = yes ]
lost_none=$?

echo
repeat=${REPEAT:-3}
echo "## 3. memory while logging: USS (Private_Clean + Private_Dirty) of the second of two"
echo "## instances side by side, KiB, median of $repeat; a flood (yes) and a line every 50 ms"
uss() { awk '/^Private_(Clean|Dirty):/ {s += $2} END {print s}' "/proc/$1/smaps_rollup"; }
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
text=012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789
feed() { # feed MODE: the program's output
    case $1 in
    flood) exec yes "$text" ;;
    slow) while :; do echo "$text"; sleep 0.05; done ;;
    esac
}
export -f feed 2>/dev/null || true
# daemonic: the keeper is supervisor and logger in one process.
keeper_uss() {
    for i in 1 2; do
        "$D" start -n "mem$i" --log "$work/mem$i" --log-size 1000000 --log-keep 2 \
            -- bash -c "text=$text; $(declare -f feed); feed $1" || return 1
    done
    sleep 1
    k=$("$D" status -n mem2 --json | tr ',' '\n' | sed -n 's/.*"keeper_pid": *\([0-9]*\).*/\1/p')
    uss "$k"
    "$D" stop -n mem1 >/dev/null
    "$D" stop -n mem2 >/dev/null
}
# s6-log: the logger alone (s6-supervise is a second process beside it).
s6log_uss() {
    for i in 1 2; do
        bash -c "text=$text; $(declare -f feed); feed $1" | s6-log -b n2 s1000000 T "$work/s6-$i" &
    done
    sleep 1
    p=$(pgrep -f "s6-log -b n2 s1000000 T $work/s6-2" | head -n 1)
    uss "$p"
    pkill -f "s6-log -b n2 s1000000 T $work/s6-" 2>/dev/null
    wait 2>/dev/null
}
for mode in flood slow; do
    ours=$(for _ in $(seq "$repeat"); do keeper_uss "$mode"; done | median)
    line="daemonic keeper ($mode): $ours KiB"
    if command -v s6-log >/dev/null 2>&1; then
        theirs=$(for _ in $(seq "$repeat"); do s6log_uss "$mode"; done | median)
        line="$line; s6-log alone: $theirs KiB; ratio $(awk -v a="$ours" -v b="$theirs" 'BEGIN { printf "%.2fx", a / b }')"
    fi
    echo "$line; target <= 128 KiB: $([ "$ours" -le 128 ] && echo met || echo NOT met)"
done
exit "$lost_none"
