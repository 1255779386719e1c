#!/usr/bin/env bash
# Spreads a NIC's receive-queue interrupts one per core, in the order of the
# cores edgeslab runs shards on, so that the shard on core N accepts the
# connections whose packets arrive on queue N (edgeslab steers each new
# connection to the shard of the CPU that received it).
#
# Usage: tuning/irq-affinity.sh eth0 [CORES]    CORES like "0-7" (default: all online)
set -euo pipefail
nic=${1:?usage: $0 NIC [CORES]}
cores=${2:-$(cat /sys/devices/system/cpu/online)}

expand() {
    local out=() part a b
    IFS=, read -ra parts <<<"$1"
    for part in "${parts[@]}"; do
        if [[ $part == *-* ]]; then
            a=${part%-*} b=${part#*-}
            for ((i = a; i <= b; i++)); do out+=("$i"); done
        else
            out+=("$part")
        fi
    done
    echo "${out[@]}"
}

read -ra cpus <<<"$(expand "$cores")"
mapfile -t irqs < <(grep -E "${nic}[-:]" /proc/interrupts | awk -F: '{gsub(/ /, "", $1); print $1}')
if [ "${#irqs[@]}" -eq 0 ]; then
    echo "no per-queue interrupts found for $nic in /proc/interrupts" >&2
    exit 1
fi
if systemctl is-active --quiet irqbalance 2>/dev/null; then
    echo "note: irqbalance is running and will move these again; stop it: systemctl disable --now irqbalance" >&2
fi
for i in "${!irqs[@]}"; do
    cpu=${cpus[$((i % ${#cpus[@]}))]}
    echo "$cpu" >"/proc/irq/${irqs[$i]}/smp_affinity_list"
    echo "irq ${irqs[$i]} ($nic queue $i) -> cpu $cpu"
done
# Receive flow steering off: the hardware queue already picked the core.
for q in /sys/class/net/"$nic"/queues/rx-*/rps_cpus; do
    [ -w "$q" ] && echo 0 >"$q"
done
