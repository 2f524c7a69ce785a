#!/usr/bin/env bash
# Install and start a single-node SLURM on this machine (root, no systemd), for the tests
# marked `slurm`. Facts behind each line: shared/docs/slurm-local.md. Idempotent.
#   bash .ci/slurm.sh start | stop
set -euo pipefail
action=${1:-start}
host=$(hostname -s)

stop() {
    for pidfile in /run/slurm/slurmd.pid /run/slurm/slurmctld.pid /run/munge/munged.pid; do
        [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
        rm -f "$pidfile"
    done
    sleep 1
}

if [ "$action" = stop ]; then stop; exit 0; fi

if ! command -v slurmctld >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi
stop

mkdir -p /run/slurm /run/munge /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm /etc/slurm
rm -rf /var/lib/slurm/slurmctld/* /var/lib/slurm/slurmd/*
chown -R slurm:slurm /run/slurm /var/lib/slurm /var/log/slurm
chown -R munge:munge /run/munge
[ -f /etc/munge/munge.key ] || sudo -u munge mungekey --create 2>/dev/null || runuser -u munge -- mungekey --create

memory=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 1024 ))
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=sgd-dmft-ci
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
MinJobAge=300
NodeName=${host} NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=${memory} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF

runuser -u munge -- munged
slurmctld
slurmd
for _ in $(seq 1 50); do
    state=$(sinfo -h -o %T 2>/dev/null | head -n 1 || true)
    [ "$state" = idle ] && { echo "SLURM is up (partition debug, node $host)"; exit 0; }
    sleep 0.2
done
echo "SLURM did not come up; see /var/log/slurm" >&2
exit 1
