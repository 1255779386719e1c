#!/bin/sh
# Kept because the .deb ships this path: the work is done by `edgeslab irq`,
# which pins each NIC queue's interrupt, XPS and RPS to the shard cores.
# Usage: irq-affinity.sh [--nic NAME]... [--cores LIST] (--dry-run | --apply)
exec edgeslab irq "$@"
