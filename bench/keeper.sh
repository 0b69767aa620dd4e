#!/usr/bin/env bash
# keeper.sh -- the keeper against its peers, measured in the same run, with ratios.
#
# Usage:
#   bench/keeper.sh                    builds daemonic (cargo build --release --bins, honours
#                                      CARGO_TARGET_DIR) and runs all three parts (~1 min)
#   DAEMONIC=/path/to/daemonic bench/keeper.sh          use that binary (and the daemonic-keeper
#                                      beside it), build nothing
#   PARTS="memory restart start" REPEAT=5 SETTLE=1 CYCLES=10 RUN_MS=1500 RUNS=30 ROUNDS=3 bench/keeper.sh
#   KEEP_WORK=1 bench/keeper.sh        keep the temporary directory (stamps, raw CSV)
# Needs: bash, cc (static libc for the restart probe if available), /proc (Linux).
# Peers, each skipped with "(not installed)" when missing (Debian: apt-get install runit s6
# daemontools daemon; start-stop-daemon comes with dpkg).
#
# What it measures (every number is from this run; ratios are daemonic / peer):
#  1. memory: USS (Private_Clean + Private_Dirty, /proc/PID/smaps_rollup) of the SECOND of two
#     instances running side by side, each supervising one `sleep` (so text pages are shared,
#     as on a machine with many services), after SETTLE s; median of REPEAT fresh starts.
#     Rows: daemonic start (the detached keeper, after its launcher has exited), daemonic run
#     (the foreground keeper), runsv, s6-supervise, daemontools supervise, libslack
#     `daemon --respawn`, and plain `sleep` as the floor. Target: daemonic keeper <= 128 KiB.
#  2. restart latency: program exit -> the next program's main(), after a stable run, with
#     src/stamp.c (static) as the program: it appends "S <CLOCK_MONOTONIC ns>" at main() and
#     "E <ns>" just before exiting after RUN_MS (1500) ms; latency = S(i+1) - E(i); median of
#     at least CYCLES (10) restarts. daemonic: `start --restart always --stable-after 1` and
#     `run` with the same policy; `start` twice, with its run directory (pidfile and status
#     record, rewritten at every restart) under /tmp and, if /dev/shm is tmpfs, on tmpfs as /run
#     and $XDG_RUNTIME_DIR are. Peers as /work/shared/bench/restart.sh runs them (steady
#     regime): runsv, s6-supervise (it waits 1 s after each death unless the service was ready
#     >= 1 s), s6-supervise with a notification-fd, daemontools supervise, libslack
#     `daemon --respawn --idiot --acceptable=1`. The services run concurrently, their starts
#     staggered over one period so their restarts do not coincide. Target: daemonic < 1 ms.
#  3. start latency: launch -> the pidfile names a running `sleep` (ready), and launch -> the
#     launcher returned (return), at RLIMIT_NOFILE 1024 and at the hard limit (soft = hard),
#     with src/detach_bench.c (the shared harness's timer: fork+exec from C, polled every 10 us,
#     a child subreaper that SIGKILLs and reaps everything after the clock stops). daemonic
#     start vs `start-stop-daemon --start --background --make-pidfile`, libslack `daemon`, and
#     src/cdaemon.c -w (a minimal C double fork that waits for the exec: the floor of a
#     daemonizer), and src/ckeeper.c (daemonic's start design in C and nothing else: one fork,
#     a session, a control socket, a status record, posix_spawn, the pid written after the exec,
#     the launcher told: the floor of a keeper). RUNS (30) per cell, in ROUNDS (3) interleaved
#     rounds.
#
# Clean-up: the script re-executes itself under src/subreaper.c, so every process it starts,
# detached or not, stays its descendant. Each part stops what it started (daemonic with
# `daemonic stop`, the rest by SIGKILL, parents first) and checks it is gone; at the end
# anything still below the script is reported, killed, and the exit status is 1.
#
# The C helpers in src/ are copies of the team's shared harness (/work/shared/bench/src), so
# that this repository alone can run it.
set -u

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SELF=$HERE/$(basename "${BASH_SOURCE[0]}")

PARTS=${PARTS:-"memory restart start"}
REPEAT=${REPEAT:-5}
SETTLE=${SETTLE:-1}
CYCLES=${CYCLES:-10}
RUN_MS=${RUN_MS:-1500}
RUNS=${RUNS:-30}

# ---- stage 1: temporary directory, helpers, daemonic; then again under a subreaper ----------
if [ -z "${_KEEPER_BENCH_WORK:-}" ]; then
    WORK=$(mktemp -d /tmp/daemonic-keeper-bench.XXXXXX) || exit 1
    BIN=$WORK/bin
    mkdir -p "$BIN"
    cc=${CC:-cc}
    for s in detach_bench cdaemon ckeeper stamp subreaper; do
        "$cc" -O2 -Wall -o "$BIN/$s" "$HERE/src/$s.c" || { rm -rf "$WORK"; exit 1; }
    done
    # the restart probe: static if the toolchain allows (less exec cost, as in restart.sh)
    "$cc" -O2 -static -o "$BIN/stamp.static" "$HERE/src/stamp.c" 2>/dev/null ||
        cp "$BIN/stamp" "$BIN/stamp.static"
    if [ -z "${DAEMONIC:-}" ]; then
        # every binary: daemonic re-executes its keeper into daemonic-keeper, found beside it
        (cd "$ROOT" && cargo build --release --quiet --bins) || { rm -rf "$WORK"; exit 1; }
        target=${CARGO_TARGET_DIR:-$ROOT/target}
        case $target in /*) ;; *) target=$ROOT/$target ;; esac
        # .cargo/config.toml builds for the host's own target: target/<host tuple>/release
        DAEMONIC=$target/$(rustc --print host-tuple)/release/daemonic
    fi
    export DAEMONIC _KEEPER_BENCH_WORK=$WORK
    exec "$BIN/subreaper" bash "$SELF" "$@"
fi

# ---- stage 2: the measurements ---------------------------------------------------------------
WORK=$_KEEPER_BENCH_WORK
BIN=$WORK/bin
[ -x "$DAEMONIC" ] || { echo "keeper.sh: $DAEMONIC: not an executable" >&2; exit 1; }
SLEEP=$(command -v sleep)
case $SLEEP in /*) ;; *) SLEEP=/bin/sleep ;; esac
STATUS=0
SHM=""   # a run directory on tmpfs for part 2, made there if /dev/shm is tmpfs

have() { command -v "$1" >/dev/null 2>&1; }

# DESC=(every descendant of PID), breadth first, read with builtins only (no subprocess of ours
# shows up in it)
collect_descendants() {
    DESC=()
    local q=("$1") p t c kids
    while [ ${#q[@]} -gt 0 ]; do
        p=${q[0]}
        q=("${q[@]:1}")
        for t in /proc/"$p"/task/*/children; do
            [ -r "$t" ] || continue
            kids=()
            { read -r -a kids <"$t"; } 2>/dev/null   # it may have exited meanwhile
            for c in "${kids[@]}"; do DESC+=("$c"); q+=("$c"); done
        done
    done
}
alive() { # pid -> 0 while it exists and is not a zombie
    local st
    st=$(awk '{sub(/^.*\) /, ""); print $1}' /proc/"$1"/stat 2>/dev/null) || return 1
    [ -n "$st" ] && [ "$st" != Z ]
}
ppid_of() { awk '{sub(/^.*\) /, ""); print $2}' /proc/"$1"/stat 2>/dev/null; }
comm_of() { cat /proc/"$1"/comm 2>/dev/null; }
wait_gone() { # pid... -> 0 once none is alive (5 s at most)
    local p i
    for p in "$@"; do
        for i in $(seq 250); do alive "$p" || break; sleep 0.02; done
        alive "$p" && return 1
    done
    return 0
}
kill_tree() { # SIGKILL pid and its descendants (parents first), then check they are gone
    local top=$1 all
    collect_descendants "$top"
    all=("$top" "${DESC[@]}")
    kill -KILL "${all[@]}" 2>/dev/null
    # anything a dying supervisor forked meanwhile
    collect_descendants "$top"
    [ ${#DESC[@]} -gt 0 ] && kill -KILL "${DESC[@]}" 2>/dev/null
    if ! wait_gone "${all[@]}"; then
        echo "# ERROR: still running after SIGKILL: ${all[*]}" >&2
        STATUS=1
    fi
}
wait_child_comm() { # pid comm timeout_s -> 0 once a descendant of pid runs comm
    local i d
    for i in $(seq $(($3 * 50))); do
        collect_descendants "$1"
        for d in "${DESC[@]}"; do [ "$(comm_of "$d")" = "$2" ] && return 0; done
        sleep 0.02
    done
    return 1
}
pid_in() { # pidfile -> the pid it names, if complete
    local v
    [ -s "$1" ] && read -r v <"$1" && [ -n "$v" ] && echo "$v"
}
wait_pidfile() { # pidfile timeout_s -> the pid
    local i v
    for i in $(seq $(($2 * 50))); do
        v=$(pid_in "$1") && alive "$v" && { echo "$v"; return 0; }
        sleep 0.02
    done
    return 1
}
median() { sort -g | awk '{v[NR]=$1} END{if(NR==0){print "nan"; exit} print (NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2}'; }
stats() { # numbers on stdin -> "median [min-max] n=N"
    sort -g | awk '{v[NR]=$1} END{ if(NR==0){print "n=0"; exit}
        m = (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2;
        printf "%.3f [%.3f-%.3f] n=%d\n", m, v[1], v[NR], NR }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (a=="" || b=="" || a=="nan" || b=="nan" || b+0==0) print "-"; else printf "%.3gx", a/b }'; }
pkgver() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }
svcdir() { # dir -> runit/s6/daemontools service dir whose ./run execs sleep
    mkdir -p "$1"
    printf '#!/bin/sh\nexec %s 100000\n' "$SLEEP" >"$1/run"
    chmod +x "$1/run"
}

finish() {
    local rc=$? left=() p pass
    # what is still below the script; killed, and looked for again (a dying supervisor may just
    # have forked)
    for pass in 1 2 3 4 5; do
        collect_descendants $$
        left=()
        for p in "${DESC[@]}"; do alive "$p" && left+=("$p"); done
        [ ${#left[@]} -gt 0 ] || break
        if [ "$pass" = 1 ] && [ "$INTERRUPTED" = 1 ]; then
            echo "# interrupted: killing the ${#left[@]} processes started so far"
        elif [ "$pass" = 1 ]; then
            echo "# ERROR: processes left running, now killed:"
            for p in "${left[@]}"; do echo "#   $p $(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null)"; done
            STATUS=1
        fi
        kill -KILL "${left[@]}" 2>/dev/null
        wait_gone "${left[@]}"
    done
    [ ${#left[@]} -gt 0 ] && { echo "# ERROR: still running: ${left[*]}"; STATUS=1; }
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "# kept $WORK"; else rm -rf "$WORK"; fi
    [ -n "$SHM" ] && rm -rf "$SHM"
    [ "$rc" = 0 ] && rc=$STATUS
    exit "$rc"
}
trap finish EXIT
INTERRUPTED=0
trap 'INTERRUPTED=1; exit 130' INT
trap 'INTERRUPTED=1; exit 143' TERM

echo "# daemonic keeper vs peers, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
echo "# $DAEMONIC ($("$DAEMONIC" --version 2>/dev/null))"
echo "# linux $(uname -r); $(nproc) cpus; runit $(pkgver runit); s6 $(pkgver s6);" \
    "daemontools $(pkgver daemontools); libslack daemon $(pkgver daemon); dpkg $(pkgver dpkg)"

# ---- 1. memory -------------------------------------------------------------------------------
# mem_start TOOL I -> "TOP MEASURED" for instance I (1 or 2) of TOOL, or nothing
mem_start() {
    local tool=$1 i=$2 d=$WORK/mem/$1-$2 p
    mkdir -p "$WORK/mem"
    case $tool in
        sleep) "$SLEEP" 100000 </dev/null >/dev/null 2>&1 &
            echo "$! $!" ;;
        daemonic-start)
            "$DAEMONIC" start --pidfile "$d.pid" -- "$SLEEP" 100000 </dev/null >/dev/null 2>"$d.err" || return
            p=$(pid_in "$d.pid") || return
            p=$(ppid_of "$p")
            echo "$p $p" ;;
        daemonic-run) "$DAEMONIC" run -- "$SLEEP" 100000 </dev/null >/dev/null 2>&1 &
            echo "$! $!" ;;
        runsv) svcdir "$d"; runsv "$d" </dev/null >/dev/null 2>&1 &
            echo "$! $!" ;;
        s6-supervise) svcdir "$d"; s6-supervise "$d" </dev/null >/dev/null 2>&1 &
            echo "$! $!" ;;
        supervise) svcdir "$d"; supervise "$d" </dev/null >/dev/null 2>&1 &
            echo "$! $!" ;;
        libslack-daemon)
            daemon --respawn --name="kbmem$i" --pidfile="$d.pid" -- "$SLEEP" 100000 </dev/null >/dev/null 2>&1
            p=$(wait_pidfile "$d.pid" 5) || return
            echo "$p $p" ;;
    esac
}
mem_stop() { # tool instance top
    if [ "$1" = daemonic-start ]; then
        local prog
        prog=$(pid_in "$WORK/mem/$1-$2.pid")
        if ! "$DAEMONIC" stop --pidfile "$WORK/mem/$1-$2.pid" >/dev/null 2>&1; then
            echo "# ERROR: daemonic stop --pidfile $WORK/mem/$1-$2.pid failed" >&2
            STATUS=1
        fi
        if ! wait_gone "$3" ${prog:+"$prog"}; then
            echo "# ERROR: after daemonic stop, keeper $3 or program ${prog:-?} still runs" >&2
            STATUS=1
        fi
    fi
    kill_tree "$3"
}
mem_of() { # pid -> "rss pss uss" (KiB)
    awk '/^VmRSS:/{r=$2} FILENAME ~ /smaps_rollup/ && /^Pss:/{p=$2}
         FILENAME ~ /smaps_rollup/ && /^Private_(Clean|Dirty):/{u+=$2}
         END{print r, p, u}' /proc/"$1"/status /proc/"$1"/smaps_rollup
}
part_memory() {
    local tools="sleep daemonic-start daemonic-run runsv s6-supervise supervise libslack-daemon"
    local tool bin r i tops meas line rss pss uss ok label
    local -A ROW=() USS=()
    for tool in $tools; do
        case $tool in
            sleep) bin=$SLEEP ;; daemonic-*) bin=$DAEMONIC ;; libslack-daemon) bin=daemon ;; *) bin=$tool ;;
        esac
        have "$bin" || { ROW[$tool]="(not installed)"; continue; }
        local rs=() ps=() us=()
        ok=1
        for r in $(seq "$REPEAT"); do
            tops=() meas=()
            for i in 1 2; do
                line=$(mem_start "$tool" "$i")
                [ -n "$line" ] || { ok=0; break; }
                tops+=("${line% *}"); meas+=("${line#* }")
            done
            if [ "$ok" = 1 ] && [ "$tool" != sleep ]; then
                for i in 0 1; do wait_child_comm "${tops[$i]}" sleep 10 || ok=0; done
            fi
            if [ "$ok" = 1 ]; then
                sleep "$SETTLE"
                read -r rss pss uss < <(mem_of "${meas[1]}")
                rs+=("$rss"); ps+=("$pss"); us+=("$uss")
            fi
            for i in "${!tops[@]}"; do mem_stop "$tool" $((i + 1)) "${tops[$i]}"; done
            [ "$ok" = 1 ] || break
        done
        if [ "$ok" != 1 ]; then
            ROW[$tool]="(did not start its sleep)"
            STATUS=1
            continue
        fi
        USS[$tool]=$(printf '%s\n' "${us[@]}" | median)
        ROW[$tool]=$(printf '%7s %7s %7s %-11s' "$(printf '%s\n' "${rs[@]}" | median)" \
            "$(printf '%s\n' "${ps[@]}" | median)" "${USS[$tool]}" \
            "$(printf '%s\n' "${us[@]}" | sort -n | sed -n '1p;$p' | paste -sd-)")
    done
    echo
    echo "## 1. memory: the 2nd of two instances side by side, each supervising one sleep" \
        "(KiB, median of $REPEAT fresh starts, after ${SETTLE}s)"
    printf '%-30s %7s %7s %7s %-11s %-16s %s\n' process VmRSS Pss USS "USS range" \
        "start-keeper/it" "run-keeper/it"
    for tool in $tools; do
        case $tool in
            sleep) label="sleep (floor)" ;;
            daemonic-start) label="daemonic start (keeper)" ;;
            daemonic-run) label="daemonic run (keeper)" ;;
            supervise) label="supervise (daemontools)" ;;
            libslack-daemon) label="daemon --respawn (libslack)" ;;
            *) label=$tool ;;
        esac
        if [ -z "${USS[$tool]:-}" ]; then
            printf '%-30s %s\n' "$label" "${ROW[$tool]}"
            continue
        fi
        printf '%-30s %s %-16s %s\n' "$label" "${ROW[$tool]}" \
            "$(ratio "${USS[daemonic-start]:-}" "${USS[$tool]}")" \
            "$(ratio "${USS[daemonic-run]:-}" "${USS[$tool]}")"
    done
    for tool in daemonic-start daemonic-run; do
        uss=${USS[$tool]:-}
        [ -n "$uss" ] || continue
        if [ "$uss" -le 128 ]; then ok=met; else ok="NOT met"; fi
        echo "target: ${tool/-/ } keeper USS <= 128 KiB: $uss KiB, $ok"
    done
}

# ---- 2. restart latency ----------------------------------------------------------------------
# rs_start TOOL DIR -> the top pid to kill at the end
rs_start() {
    local tool=$1 d=$2
    case $tool in
        daemonic-start | daemonic-start-tmpfs)
            "$DAEMONIC" start --restart always --stable-after 1 --rundir "$(rundir_of "$tool")" -n kb-restart \
                -d "$d" -- "$BIN/stamp.static" -f "$d/stamps.log" -m "$RUN_MS" </dev/null >/dev/null 2>"$d.err" || return
            ppid_of "$(pid_in "$(rundir_of "$tool")/kb-restart.pid")" ;;
        daemonic-run)
            "$DAEMONIC" run --restart always --stable-after 1 -d "$d" -- \
                "$BIN/stamp.static" -f "$d/stamps.log" -m "$RUN_MS" </dev/null >/dev/null 2>"$d.err" &
            echo $! ;;
        runsv) runsv "$d" </dev/null >/dev/null 2>&1 &
            echo $! ;;
        s6-supervise) s6-supervise "$d" </dev/null >/dev/null 2>&1 &
            echo $! ;;
        s6-supervise-notify) echo 3 >"$d/notification-fd"
            s6-supervise "$d" </dev/null >/dev/null 2>&1 &
            echo $! ;;
        supervise) supervise "$d" </dev/null >/dev/null 2>&1 &
            echo $! ;;
        libslack-daemon)
            # --idiot --acceptable=1: a 1.5 s run is not a failure (as restart.sh runs it);
            # --unsafe: the probe lives under /tmp
            daemon --respawn --unsafe --idiot --acceptable=1 --name=kbrestart --pidfile="$d.pid" \
                --chdir="$d" -- "$BIN/stamp.static" </dev/null >/dev/null 2>&1
            wait_pidfile "$d.pid" 5 ;;
    esac
}
rundir_of() { if [ "$1" = daemonic-start-tmpfs ]; then echo "$SHM"; else echo "$WORK/run"; fi; }
latencies() { awk '$1=="E"{e=$2} $1=="S"{ if (e) { printf "%.3f\n", ($2-e)/1e6; e=0 } }' "$1" 2>/dev/null; }
starts() { grep -c '^S' "$1" 2>/dev/null || true; }
part_restart() {
    local tools="daemonic-start daemonic-start-tmpfs daemonic-run runsv s6-supervise s6-supervise-notify supervise libslack-daemon"
    local tool bin d top run=() stagger n deadline done_all
    declare -A TOP=()
    declare -gA RS_MED=()
    echo
    echo "## 2. restart latency: program exit -> next program's main() after a ${RUN_MS} ms run" \
        "(ms, median [min-max] n=restarts; services run concurrently, staggered)"
    for tool in $tools; do
        case $tool in
            daemonic-*) bin=$DAEMONIC ;; libslack-daemon) bin=daemon ;; s6-*) bin=s6-supervise ;; *) bin=$tool ;;
        esac
        # the same keeper with its run directory on tmpfs, as /run and $XDG_RUNTIME_DIR are
        if [ "$tool" = daemonic-start-tmpfs ]; then
            [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] &&
                SHM=$(mktemp -d /dev/shm/daemonic-keeper-bench.XXXXXX 2>/dev/null) || continue
        fi
        if have "$bin"; then run+=("$tool"); fi
    done
    stagger=$(awk -v ms="$RUN_MS" -v n="${#run[@]}" 'BEGIN{printf "%.3f", ms / n / 1000}')
    for tool in "${run[@]}"; do
        d=$WORK/restart/$tool
        mkdir -p "$d"
        ln -s "$BIN/stamp.static" "$d/run"
        echo "$RUN_MS" >"$d/stamp_ms"
        top=$(rs_start "$tool" "$d")
        if [ -z "$top" ]; then
            echo "# ERROR: $tool did not start: $(cat "$d.err" 2>/dev/null)"
            STATUS=1
            continue
        fi
        TOP[$tool]=$top
        sleep "$stagger"
    done
    # every service until CYCLES+1 starts (s6-supervise without notification: ~2.5 s a cycle)
    deadline=$(($(date +%s) + (CYCLES + 2) * (RUN_MS + 1100) / 1000 + 5))
    while :; do
        done_all=1
        for tool in "${!TOP[@]}"; do
            n=$(starts "$WORK/restart/$tool/stamps.log")
            [ "${n:-0}" -gt "$CYCLES" ] || done_all=0
        done
        [ "$done_all" = 1 ] && break
        [ "$(date +%s)" -lt "$deadline" ] || break
        sleep 0.2
    done
    for tool in "${!TOP[@]}"; do
        if [ "$tool" = daemonic-start ] || [ "$tool" = daemonic-start-tmpfs ]; then
            local prog
            prog=$(pid_in "$(rundir_of "$tool")/kb-restart.pid")
            "$DAEMONIC" stop --rundir "$(rundir_of "$tool")" -n kb-restart >/dev/null 2>&1 || {
                echo "# ERROR: daemonic stop -n kb-restart failed" >&2
                STATUS=1
            }
            wait_gone "${TOP[$tool]}" ${prog:+"$prog"} || {
                echo "# ERROR: after daemonic stop, keeper ${TOP[$tool]} or program ${prog:-?} still runs" >&2
                STATUS=1
            }
        fi
        kill_tree "${TOP[$tool]}"
    done
    printf '%-22s %-34s %-20s %s\n' supervisor "latency ms" "daemonic start / it" "daemonic run / it"
    for tool in "${!TOP[@]}"; do
        RS_MED[$tool]=$(latencies "$WORK/restart/$tool/stamps.log" | median)
    done
    for tool in $tools; do
        if [ -z "${TOP[$tool]:-}" ]; then
            printf '%-22s %s\n' "$tool" "(not installed, or did not start)"
            continue
        fi
        n=$(latencies "$WORK/restart/$tool/stamps.log" | wc -l)
        [ "$n" -ge "$CYCLES" ] || { echo "# WARNING: $tool restarted only $n times" >&2; STATUS=1; }
        printf '%-22s %-34s %-20s %s\n' "$tool" "$(latencies "$WORK/restart/$tool/stamps.log" | stats)" \
            "$(ratio "${RS_MED[daemonic-start]:-}" "${RS_MED[$tool]}")" "$(ratio "${RS_MED[daemonic-run]:-}" "${RS_MED[$tool]}")"
    done
    for tool in daemonic-start daemonic-start-tmpfs daemonic-run; do
        [ -n "${RS_MED[$tool]:-}" ] || continue
        echo "target: $tool median restart < 1 ms: ${RS_MED[$tool]} ms," \
            "$(awk -v m="${RS_MED[$tool]}" 'BEGIN{print (m!="nan" && m < 1) ? "met" : "NOT met"}')"
    done
}

# ---- 3. start latency ------------------------------------------------------------------------
st_cmd() { # tool -> argv words, {PIDFILE} substituted by the caller
    case $1 in
        daemonic-start) echo "$DAEMONIC start --pidfile {PIDFILE} -- $SLEEP 100000" ;;
        start-stop-daemon) echo "start-stop-daemon --start --quiet --background --make-pidfile --pidfile {PIDFILE} --exec $SLEEP -- 100000" ;;
        libslack-daemon) echo "daemon --name=kbstart --pidfile={PIDFILE} -- $SLEEP 100000" ;;
        cdaemon-w) echo "$BIN/cdaemon -w {PIDFILE} $SLEEP 100000" ;;
        ckeeper) echo "$BIN/ckeeper {PIDFILE} $SLEEP 100000" ;;
    esac
}
part_start() {
    local tools="daemonic-start start-stop-daemon libslack-daemon cdaemon-w ckeeper"
    local hard limits L tool round rounds=${ROUNDS:-3} per cmd argv raw=$WORK/start.csv
    hard=$(ulimit -Hn)
    limits="1024"
    [ "$hard" != 1024 ] && limits="1024 $hard"
    per=$(((RUNS + rounds - 1) / rounds))
    : >"$raw"
    mkdir -p "$WORK/start"
    for L in $limits; do
        for round in $(seq "$rounds"); do
            for tool in $tools; do
                cmd=$(st_cmd "$tool")
                read -ra argv <<<"${cmd//\{PIDFILE\}/$WORK/start/$tool.pid}"
                have "${argv[0]}" || continue
                (
                    ulimit -n "$L" || exit 3
                    "$BIN/detach_bench" -n "$per" -w 1 -q -l "$tool" -o "$raw.$L" \
                        -p "$WORK/start/$tool.pid" -- "${argv[@]}"
                ) >/dev/null 2>"$WORK/start/err" || {
                    echo "# ERROR: $tool at nofile $L: $(head -3 "$WORK/start/err")"
                    STATUS=1
                }
            done
        done
    done
    echo
    echo "## 3. start latency: launch -> pidfile names a running sleep (ready) and -> launcher" \
        "returned (return), ms, median of $((per * rounds)) [min-max]"
    printf '%-19s' tool
    for L in $limits; do printf ' %-38s' "nofile $L: ready (return)"; done
    printf '\n'
    declare -A READY=()
    for tool in $tools; do
        cmd=$(st_cmd "$tool")
        read -ra argv <<<"$cmd"
        if ! have "${argv[0]}"; then printf '%-19s %s\n' "$tool" "(not installed)"; continue; fi
        printf '%-19s' "$tool"
        for L in $limits; do
            READY[$tool,$L]=$(awk -F, -v t="$tool" '$1==t{print $4}' "$raw.$L" 2>/dev/null | median)
            printf ' %-38s' "$(awk -F, -v t="$tool" '$1==t{print $4}' "$raw.$L" 2>/dev/null | stats | cut -d' ' -f1-2) ($(awk -F, -v t="$tool" '$1==t{print $3}' "$raw.$L" 2>/dev/null | median | xargs printf '%.3f'))"
        done
        printf '\n'
    done
    for tool in start-stop-daemon libslack-daemon cdaemon-w ckeeper; do
        [ -n "${READY[$tool,1024]:-}" ] || continue
        printf 'daemonic start / %-18s' "$tool:"
        for L in $limits; do printf ' %s at %s;' "$(ratio "${READY[daemonic-start,$L]:-}" "${READY[$tool,$L]}")" "$L"; done
        printf '  (ready; above 1: daemonic is slower)\n'
    done
}

for part in $PARTS; do
    case $part in
        memory) part_memory ;;
        restart) part_restart ;;
        start) part_start ;;
        *) echo "keeper.sh: unknown part $part (memory, restart, start)" >&2; STATUS=2 ;;
    esac
done
exit "$STATUS"
