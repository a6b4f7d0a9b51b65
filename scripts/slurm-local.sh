#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for dapt's Slurm executor tests and for trying
# `dapt run --executor slurm` without a cluster. Root only (the daemons run as root), no
# systemd, no munge: AuthType=auth/none, CredType=cred/none.
#
#   scripts/slurm-local.sh install   Debian's slurmctld, slurmd and slurm-client (22.05)
#   scripts/slurm-local.sh start     write $DAPT_SLURM_DIR/slurm.conf, start both daemons,
#                                    wait until the node is idle; prints `export SLURM_CONF=…`
#                                    (a cluster already up is left running)
#   scripts/slurm-local.sh stop      stop both daemons
#   scripts/slurm-local.sh env       print `export SLURM_CONF=…` (for eval)
#
# DAPT_SLURM_DIR (default /tmp/dapt-slurm) holds the config, state, logs and pid files.
set -euo pipefail
dir="${DAPT_SLURM_DIR:-/tmp/dapt-slurm}"
conf="$dir/slurm.conf"
cpus="${DAPT_SLURM_CPUS:-$(nproc)}"

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null; then
    return 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client >/dev/null
}

write_conf() {
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  cat >"$conf" <<EOF
ClusterName=dapt-local
SlurmctldHost=localhost
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
MaxArraySize=10001
MinJobAge=300
KillWait=2
InactiveLimit=0
Waittime=0
NodeName=localhost CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

running() {
  [ -f "$conf" ] && [ -f "$dir/slurmctld.pid" ] && [ -f "$dir/slurmd.pid" ] &&
    kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null && kill -0 "$(cat "$dir/slurmd.pid")" 2>/dev/null &&
    SLURM_CONF="$conf" sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

start() {
  # Already up (CI starts it before the tests, which start it too): leave it be.
  if running; then
    echo "export SLURM_CONF=$conf"
    return 0
  fi
  # Only the export line goes to stdout: CI evals it.
  install >&2
  stop_daemons quiet >&2
  write_conf
  export SLURM_CONF="$conf"
  slurmctld -i -f "$conf" >&2
  slurmd -N localhost -f "$conf" >&2
  for _ in $(seq 100); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      echo "export SLURM_CONF=$conf"
      return 0
    fi
    sleep 0.1
  done
  echo "error: the local Slurm node did not come up; see $dir/log" >&2
  sinfo >&2 || true
  tail -20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
  return 1
}

stop_daemons() {
  for pidfile in "$dir/slurmd.pid" "$dir/slurmctld.pid"; do
    if [ -f "$pidfile" ]; then
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    fi
  done
  # Daemons started without pid files (a crashed earlier start).
  pkill -x slurmd 2>/dev/null || true
  pkill -x slurmctld 2>/dev/null || true
  [ "${1:-}" = quiet ] || echo "local Slurm stopped" >&2
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop_daemons ;;
  env) echo "export SLURM_CONF=$conf" ;;
  *)
    echo "usage: $0 install|start|stop|env" >&2
    exit 2
    ;;
esac
