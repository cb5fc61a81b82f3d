#!/usr/bin/env bash
# A throwaway single-node Slurm cluster (slurmctld + slurmd + its own munged) for the
# integration tests that submit deploy/slurm.sh as a job array.
#
#   tools/slurm-cluster.sh check        # exit 0 when it can run here, else say why, exit 1
#   tools/slurm-cluster.sh start DIR    # start one in DIR (created), wait until its node is idle
#   tools/slurm-cluster.sh wait DIR JOBID [SECONDS]  # wait for a job (array), check its tasks
#   tools/slurm-cluster.sh stop DIR     # cancel its jobs, stop its daemons (idempotent)
#
# Then: SLURM_CONF=DIR/slurm.conf sbatch --array=0-3 --wait ... (exits with the highest
# exit code of the tasks; it polls every 2 s), or sbatch --parsable (prints JOBID) and
# `wait`, which polls squeue every 0.25 s, then reads each task's state and exit code
# from DIR/log/jobcomp.txt: exit 0 when all COMPLETED with 0:0, else it lists the others
# and exits 1; after SECONDS (default 600) it cancels the job and exits 124. Finished
# jobs leave squeue/scontrol after 5 s (MinJobAge); jobcomp.txt keeps them all.
#
# Needs root and Debian's slurmctld, slurmd, slurm-client and munge (`make sched-deps`).
# DIR holds slurm.conf, the controller's state (state/), the logs (log/: slurmctld.log,
# slurmd.log, munged.log, jobcomp.txt) and the munge key (munge/). The unix sockets
# (munged's, and slurmstepd's in slurmd's spool), the spool and the pid files go into
# DIR/run, or, where DIR is too long for a socket path (108 bytes), into a short
# /tmp/cmcl-slurm.XXXXXX that DIR/run links to and `stop` removes. The cluster leaves
# any system munged or Slurm alone: its own munge socket and key, and two free TCP ports
# (not 6817/6818). `start` first stops whatever an earlier cluster in DIR left running.
# Jobs run as their submitter (root) with sbatch's environment (--export=ALL).
set -euo pipefail

export PATH="$PATH:/usr/sbin:/sbin"
readonly BINARIES=(munged munge unmunge slurmctld slurmd sbatch squeue sinfo scancel scontrol)
readonly START_TIMEOUT=${SLURM_CLUSTER_TIMEOUT:-60}

usage() {
    echo "usage: $0 check | start DIR | wait DIR JOBID [SECONDS] | stop DIR" >&2
    exit 2
}

die() {
    echo "slurm-cluster: $*" >&2
    exit 1
}

# Why a cluster cannot run here, or nothing.
why_not() {
    local b
    if [ "$EUID" != 0 ]; then
        echo "not root: a throwaway Slurm cluster needs root (run the tests as root)"
        return
    fi
    for b in "${BINARIES[@]}"; do
        if ! command -v "$b" >/dev/null 2>&1; then
            echo "$b not installed: run 'make sched-deps' as root (apt-get install slurmctld slurmd slurm-client munge)"
            return
        fi
    done
}

cmd_check() {
    local reason
    reason=$(why_not)
    if [ -n "$reason" ]; then
        echo "$reason" >&2
        return 1
    fi
}

# True when some TCP socket (v4 or v6, any state) uses local port $1.
port_in_use() {
    local hex
    hex=$(printf ':%04X' "$1")
    awk -v p="$hex" 'FNR > 1 && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# Two free consecutive ports, searched from a start derived from DIR so that clusters in
# two directories rarely try the same ones.
free_ports() {
    local dir=$1 base p
    base=$((20000 + $(printf '%s' "$dir" | cksum | cut -d' ' -f1) % 20000))
    for ((p = base; p < base + 2000; p += 2)); do
        if ! port_in_use "$p" && ! port_in_use "$((p + 1))"; then
            echo "$p $((p + 1))"
            return
        fi
    done
    die "no two free TCP ports in $base-$((base + 2000))"
}

# True when process $1 exists and is not a zombie.
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ]
}

# The pid in pid file $1 when that process is alive and its command name is $2.
live_pid() {
    local file=$1 name=$2 pid
    [ -f "$file" ] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [ -n "$pid" ] && alive "$pid" || return 1
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] || return 1
    echo "$pid"
}

# True while daemon $1 (pid file $2) of slurm.conf $3 runs; before it writes its pid
# file, by its command line.
daemon_up() {
    local name=$1 file=$2 conf=$3 pid
    [ -f "$file" ] && { live_pid "$file" "$name" >/dev/null; return; }
    for pid in $(pgrep -x "$name" 2>/dev/null || true); do
        alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "-f $conf " && return 0
    done
    return 1
}

# Waits up to $1 tenths of a second for the given pids to exit; false if some are left.
wait_gone() {
    local tenths=$1 pid i left
    shift
    for ((i = 0; i < tenths; i++)); do
        left=0
        for pid in "$@"; do
            if alive "$pid"; then left=1; fi
        done
        [ "$left" = 0 ] && return 0
        sleep 0.1
    done
    return 1
}

# SIGTERM the given pids, wait up to $1 seconds, then SIGKILL what is left.
kill_and_wait() {
    local wait_s=$1
    shift
    [ $# -gt 0 ] || return 0
    kill -TERM "$@" 2>/dev/null || true
    wait_gone $((wait_s * 10)) "$@" && return 0
    kill -KILL "$@" 2>/dev/null || true
    wait_gone 20 "$@" || true
}

# What a cluster that lost its daemons leaves running: slurmstepd processes (they outlive
# slurmd) that log into its slurmd.log, and job processes, whose environment has
# SLURM_JOB_ID and sbatch's SLURM_CONF=$2 (never this script or its callers).
leftover_pids() {
    local log=$1 conf=$2 pid fd self=" " p=$$
    while [ "$p" -gt 1 ] 2>/dev/null; do
        self+="$p "
        p=$(awk '{ print $4 }' "/proc/$p/stat" 2>/dev/null || echo 0)
    done
    for pid in $(pgrep -x slurmstepd 2>/dev/null || true); do
        for fd in /proc/"$pid"/fd/*; do
            if [ "$(readlink "$fd" 2>/dev/null)" = "$log" ]; then
                echo "$pid"
                break
            fi
        done
    done
    # shellcheck disable=SC2013 # pids, one word each
    for pid in $(grep -lsxF -z "SLURM_CONF=$conf" /proc/[0-9]*/environ | cut -d/ -f3); do
        case $self in *" $pid "*) continue ;; esac
        grep -qsz '^SLURM_JOB_ID=' "/proc/$pid/environ" && echo "$pid"
    done
}

cmd_stop() {
    local dir=$1 run pid target i
    [ -d "$dir" ] || return 0
    dir=$(cd "$dir" && pwd -P)
    run="$dir/run"
    # Cancel the jobs while the controller is up, so that their steps end cleanly.
    if [ -f "$dir/slurm.conf" ] && live_pid "$run/slurmctld.pid" slurmctld >/dev/null; then
        local jobs
        jobs=$(SLURM_CONF="$dir/slurm.conf" timeout 10 squeue -h -o %A 2>/dev/null || true)
        if [ -n "$jobs" ]; then
            # shellcheck disable=SC2086
            SLURM_CONF="$dir/slurm.conf" timeout 10 scancel $jobs 2>/dev/null || true
            for ((i = 0; i < 100; i++)); do
                [ -z "$(SLURM_CONF="$dir/slurm.conf" timeout 5 squeue -h -t R,CG -o %A 2>/dev/null || true)" ] && break
                sleep 0.1
            done
        fi
    fi
    if pid=$(live_pid "$run/slurmd.pid" slurmd); then kill_and_wait 10 "$pid"; fi
    # shellcheck disable=SC2046
    kill_and_wait 2 $(leftover_pids "$dir/log/slurmd.log" "$dir/slurm.conf")
    if pid=$(live_pid "$run/slurmctld.pid" slurmctld); then kill_and_wait 10 "$pid"; fi
    if pid=$(live_pid "$run/munged.pid" munged); then kill_and_wait 5 "$pid"; fi
    if [ -L "$run" ]; then
        target=$(readlink "$run")
        case $target in /tmp/cmcl-slurm.*) rm -rf "$target" ;; esac
        rm -f "$run"
    else
        rm -rf "$run"
    fi
}

print_logs() {
    local dir=$1 f
    for f in munged.log slurmctld.log slurmd.log; do
        if [ -f "$dir/log/$f" ]; then
            echo "---- tail $dir/log/$f" >&2
            tail -n 25 "$dir/log/$f" >&2
        fi
    done
}

# Stops what was started and exits, printing the logs.
fail_start() {
    local dir=$1
    shift
    echo "slurm-cluster: $*" >&2
    print_logs "$dir"
    cmd_stop "$dir" || true
    exit 1
}

cmd_start() {
    local dir=$1 reason node cpus mem_kb mem ports cport dport run conf sock i state=
    reason=$(why_not)
    [ -z "$reason" ] || die "$reason"
    case $dir in *[[:space:]]*) die "DIR must not contain white space (slurm.conf cannot quote it): $dir" ;; esac
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd -P)
    case $dir in *[[:space:]]*) die "DIR must not contain white space (slurm.conf cannot quote it): $dir" ;; esac

    cmd_stop "$dir"
    rm -rf "$dir/state" "$dir/log" "$dir/munge" "$dir/slurm.conf"
    mkdir -p "$dir/state" "$dir/log" "$dir/munge"
    chmod 700 "$dir/munge"

    node=$(hostname -s)
    # A unix socket path has at most 107 bytes; slurmstepd's is
    # SPOOL/NODE_JOBID.STEPID with ids of up to 10 digits ("/run/spool/" is 11 bytes,
    # "_" "." and two ids 22).
    if [ $((${#dir} + 11 + ${#node} + 22)) -le 107 ]; then
        run="$dir/run"
        mkdir -p "$run"
    else
        run=$(mktemp -d /tmp/cmcl-slurm.XXXXXX)
        ln -s "$run" "$dir/run"
    fi
    [ $((${#run} + 7 + ${#node} + 22)) -le 107 ] || die "host name too long for slurmstepd's socket path: $node"
    chmod 755 "$run"
    mkdir -p "$run/spool"

    # munged with its own key, socket, pid file and log.
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
    chmod 600 "$dir/munge/munge.key"
    sock="$run/munge.socket"
    munged --force --socket="$sock" --key-file="$dir/munge/munge.key" --pid-file="$run/munged.pid" \
        --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed" \
        || fail_start "$dir" "munged did not start"
    for ((i = 0; i < 50; i++)); do
        [ -S "$sock" ] && break
        sleep 0.1
    done
    munge -n -S "$sock" | unmunge -S "$sock" >/dev/null 2>&1 || fail_start "$dir" "munged does not answer on $sock"

    cpus=$(nproc)
    mem_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
    mem=$((mem_kb / 1024 / 2))
    [ "$mem" -le 1024 ] || mem=1024
    ports=$(free_ports "$dir")
    read -r cport dport <<<"$ports"
    conf="$dir/slurm.conf"
    cat >"$conf" <<EOF
# Written by tools/slurm-cluster.sh: a throwaway single-node cluster.
ClusterName=cmcl-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$cport
SlurmdPort=$dport
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$sock
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$run/spool
SlurmctldPidFile=$run/slurmctld.pid
SlurmdPidFile=$run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
# Reject at submission what this node can never run (more CPUs or memory than it has),
# rather than leaving it pending for ever (sbatch --wait would hang).
EnforcePartLimits=ALL
SlurmdParameters=config_overrides
MailProg=/bin/true
InactiveLimit=0
KillWait=5
# Schedule at once (batch jobs wait up to 3 s by default). Keep finished jobs 5 s (not
# 300): sbatch --wait polls every 2 s where MinJobAge < 6, else at 2, 10, 42, 74... s;
# jobcomp.txt keeps every job.
SchedulerParameters=batch_sched_delay=0
MinJobAge=5
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

    slurmctld -c -f "$conf" || fail_start "$dir" "slurmctld did not start"
    slurmd -f "$conf" -N "$node" || fail_start "$dir" "slurmd did not start"

    for ((i = 0; i < START_TIMEOUT * 2; i++)); do
        state=$(SLURM_CONF="$conf" timeout 5 sinfo -h -N -n "$node" -o %T 2>/dev/null || true)
        [ "$state" = idle ] && break
        daemon_up slurmctld "$run/slurmctld.pid" "$conf" || fail_start "$dir" "slurmctld exited"
        daemon_up slurmd "$run/slurmd.pid" "$conf" || fail_start "$dir" "slurmd exited"
        sleep 0.5
    done
    [ "$state" = idle ] || fail_start "$dir" "node $node not idle after ${START_TIMEOUT}s (state: ${state:-none})"
    echo "slurm-cluster: up: node $node ($cpus CPUs, ${mem}M), ports $cport/$dport, logs in $dir/log"
    echo "export SLURM_CONF=$conf"
}

cmd_wait() {
    local dir=$1 job=$2 limit=${3:-600} conf left i n bad
    case $job in '' | *[!0-9]*) die "JOBID must be a number: $job" ;; esac
    conf="$dir/slurm.conf"
    [ -f "$conf" ] || die "no cluster in $dir"
    for ((i = 0; ; i++)); do
        if ! left=$(SLURM_CONF="$conf" timeout 10 squeue -h -j "$job" -o %i 2>&1); then
            # Finished and already purged (MinJobAge).
            case $left in *"Invalid job id"*) break ;; esac
            die "squeue failed: $left"
        fi
        [ -z "$left" ] && break
        if [ "$i" -ge $((limit * 4)) ]; then
            SLURM_CONF="$conf" timeout 10 scancel "$job" || true
            echo "slurm-cluster: job $job not done after ${limit}s, cancelled" >&2
            exit 124
        fi
        sleep 0.25
    done
    n=$(grep -cE "^JobId=$job |ArrayJobId=$job " "$dir/log/jobcomp.txt" 2>/dev/null || true)
    [ "${n:-0}" -gt 0 ] || die "job $job: not in $dir/log/jobcomp.txt"
    bad=$(grep -E "^JobId=$job |ArrayJobId=$job " "$dir/log/jobcomp.txt" \
        | grep -vE 'JobState=COMPLETED .* ExitCode=0:0' \
        | awk '{ t = "-"; for (i = 1; i <= NF; i++) { k = $i; sub(/=.*/, "", k); v = substr($i, length(k) + 2)
                 if (k == "JobState") st = v; else if (k == "ArrayTaskId") t = v; else if (k == "ExitCode") ec = v }
                 printf "%stask %s: %s exit %s", (NR > 1 ? ", " : ""), t, st, ec }' || true)
    if [ -n "$bad" ]; then
        echo "slurm-cluster: job $job: $n task(s), not all fine: $bad (see the job's --output and $dir/log)" >&2
        exit 1
    fi
    echo "slurm-cluster: job $job: $n task(s) COMPLETED, exit 0"
}

[ $# -ge 1 ] || usage
case $1 in
check)
    [ $# -eq 1 ] || usage
    cmd_check
    ;;
start)
    [ $# -eq 2 ] || usage
    cmd_start "$2"
    ;;
wait)
    [ $# -eq 3 ] || [ $# -eq 4 ] || usage
    cmd_wait "$2" "$3" "${4:-600}"
    ;;
stop)
    [ $# -eq 2 ] || usage
    cmd_stop "$2"
    ;;
*) usage ;;
esac
