#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, to try `--executor slurm` without a cluster (and for the
# tests in tests/test_slurm_real.py). Root only, no systemd: Debian's packages, our own slurm.conf.
#
#   eval "$(scripts/slurm-local.sh up)"   # installs the packages if missing (apt), starts the daemons,
#                                         # prints `export SLURM_CONF=...` for sbatch, squeue, scancel
#   scripts/slurm-local.sh status         # the daemons' pids and `sinfo`
#   scripts/slurm-local.sh down           # stops the daemons it started, by pid
#
# State, spool, logs and the config live in $SLURM_LOCAL_DIR (default: .slurm-local in the repository).
# $SLURM_LOCAL_PORT (default 6817) is slurmctld's port, slurmd takes the next one. $SLURM_LOCAL_TASK_PLUGIN
# (default task/affinity, which pins each task to its CPUs without cgroups; task/none lets every task
# see every core). Exit status 3: this machine cannot run it (not root, no apt, the packages do not
# install); the reason is printed on stderr, and the tests skip with it. Exit status 1: the daemons did
# not come up (their logs are in $SLURM_LOCAL_DIR).
set -euo pipefail

cmd=${1:-}
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${SLURM_LOCAL_DIR:-$here/.slurm-local}
port=${SLURM_LOCAL_PORT:-6817}
task_plugin=${SLURM_LOCAL_TASK_PLUGIN:-task/affinity}
packages=(slurmctld slurmd slurm-client munge)

cannot() { echo "slurm-local: $*" >&2; exit 3; }   # this machine cannot: the tests skip
fail() { echo "slurm-local: $*" >&2; exit 1; }     # it should have worked: the tests fail
say() { echo "slurm-local: $*" >&2; }

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
     && command -v munged >/dev/null; then
    return
  fi
  [ "$(id -u)" = 0 ] || cannot "Slurm is not installed and we are not root: cannot install ${packages[*]}"
  command -v apt-get >/dev/null || cannot "Slurm is not installed and there is no apt-get to install ${packages[*]}"
  say "installing ${packages[*]} (apt)"
  apt-get update -qq >&2 || cannot "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null \
    || cannot "apt-get install ${packages[*]} failed"
}

munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  # one munged per machine, on its standard socket: reuse a running one, else start it as the munge user
  if munge_ok; then return; fi
  if alive /run/munge/munged.pid; then  # started a moment ago (by another `up`): wait for it
    for _ in $(seq 50); do munge_ok && return; sleep 0.1; done
    fail "munged (pid $(cat /run/munge/munged.pid)) does not answer"
  fi
  [ -s /etc/munge/munge.key ] || { mungekey --create >/dev/null 2>&1 || true; chown munge:munge /etc/munge/munge.key; }
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
  runuser -u munge -- munged
  for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
  munge_ok || fail "munged did not start (see /var/log/munge/munged.log)"
  cp /run/munge/munged.pid "$dir/munged.pid"  # ours: `down` stops it
}

write_conf() {
  local node
  node=$(slurmd -C | head -1)
  cat >"$dir/slurm.conf" <<EOF
# written by scripts/slurm-local.sh: one node, this machine
ClusterName=local
SlurmctldHost=$(uname -n | cut -d. -f1)(127.0.0.1)
SlurmUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
AuthInfo=cred_expire=10
ProctrackType=proctrack/linuxproc
TaskPlugin=$task_plugin
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ReturnToService=2
MinJobAge=30
KillWait=10
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

up() {
  install_packages
  [ "$(id -u)" = 0 ] || cannot "the daemons run as root here (SlurmUser=root); run it as root"
  mkdir -p "$dir/state" "$dir/spool"
  if alive "$dir/slurmctld.pid" && alive "$dir/slurmd.pid"; then
    say "already up in $dir"
  else
    start_munge
    write_conf
    export SLURM_CONF=$dir/slurm.conf
    alive "$dir/slurmctld.pid" || slurmctld -i -f "$SLURM_CONF"
    alive "$dir/slurmd.pid" || slurmd -f "$SLURM_CONF"
    export SLURM_CONF
    for _ in $(seq 100); do
      sinfo -h -o %T 2>/dev/null | grep -qE '^idle' && break
      sleep 0.1
    done
    sinfo -h -o %T 2>/dev/null | grep -qE '^idle' || { down; fail "the node did not come up (see $dir/*.log)"; }
    say "up: partition debug, $(sinfo -h -o '%c CPUs on node %N')"
  fi
  echo "export SLURM_CONF=$dir/slurm.conf"
}

stop_pid() {  # stop the daemon whose pid file is $1: SIGTERM, then SIGKILL after 5 s
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
  rm -f "$f"
}

down() {
  # jobs are cancelled first and given KillWait (10 s) to end: their processes belong to slurmstepd,
  # which outlives slurmd
  if alive "$dir/slurmctld.pid"; then
    export SLURM_CONF=$dir/slurm.conf
    scancel --quiet --full --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 150); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  stop_pid "$dir/slurmd.pid"
  stop_pid "$dir/slurmctld.pid"
  stop_pid "$dir/munged.pid"
  say "down"
}

status() {
  for d in munged slurmctld slurmd; do
    if alive "$dir/$d.pid"; then echo "$d pid $(cat "$dir/$d.pid")"; else echo "$d not running (started here)"; fi
  done
  SLURM_CONF=$dir/slurm.conf sinfo 2>&1 || true
}

case $cmd in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
