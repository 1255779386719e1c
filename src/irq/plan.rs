//! What `edgeslab irq` writes where, and why: queue i's interrupt and XPS
//! on shard core i mod n, RPS off or spread over the shard cores. `plan` is
//! pure; `write_value` is the only function here that touches a file.

use super::cpus::cpu_mask;
use super::host::{NET_CLASS, Nic};
use super::{IrqError, plural};
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One write to a kernel file, relative to the root, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedWrite {
    pub path: PathBuf,
    pub value: String,
    pub why: Why,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// `proc/irq/N/smp_affinity_list`.
    QueueInterrupt {
        nic: String,
        queue: usize,
        cpu: usize,
    },
    /// `queues/tx-N/xps_cpus`.
    TransmitSteering {
        nic: String,
        queue: usize,
        cpu: usize,
    },
    /// `queues/rx-N/rps_cpus` = 0: the NIC's own queues spread the flows.
    ReceiveSteeringOff {
        nic: String,
        rx_queues: usize,
        shards: usize,
    },
    /// `queues/rx-N/rps_cpus` = the shard cores: too few queues to spread.
    ReceiveSteeringSpread {
        nic: String,
        rx_queues: usize,
        shards: usize,
    },
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::QueueInterrupt { nic, queue, cpu } => {
                write!(f, "{nic} queue {queue}'s interrupt to shard core {cpu}")
            }
            Why::TransmitSteering { nic, queue, cpu } => {
                write!(
                    f,
                    "{nic} tx queue {queue} sends from shard core {cpu} (XPS)"
                )
            }
            Why::ReceiveSteeringOff {
                nic,
                rx_queues,
                shards,
            } => write!(
                f,
                "{nic}: {} for {}, the NIC spreads flows itself: RPS off",
                plural(*rx_queues, "rx queue"),
                plural(*shards, "shard")
            ),
            Why::ReceiveSteeringSpread {
                nic,
                rx_queues,
                shards,
            } => write!(
                f,
                "{nic}: {} for {}: RPS spreads flows over the shard cores",
                plural(*rx_queues, "rx queue"),
                plural(*shards, "shard")
            ),
        }
    }
}

/// Queue i's interrupts and XPS go to shard CPU i mod n. RPS is off when the
/// NIC has a queue per shard (hardware spreads), else it spreads over the
/// shard cores. Only steering files the kernel shows are written.
pub fn plan(nics: &[&Nic], shards: &[usize], nr_cpus: usize) -> Vec<PlannedWrite> {
    let mut writes = Vec::new();
    if shards.is_empty() {
        return writes;
    }
    let shard_of = |queue: usize| shards[queue % shards.len()];
    for nic in nics {
        let name = nic.name.clone();
        for interrupt in &nic.interrupts {
            let cpu = shard_of(interrupt.queue);
            writes.push(PlannedWrite {
                path: PathBuf::from(format!("proc/irq/{}/smp_affinity_list", interrupt.irq)),
                value: cpu.to_string(),
                why: Why::QueueInterrupt {
                    nic: name.clone(),
                    queue: interrupt.queue,
                    cpu,
                },
            });
        }
        let queues = Path::new(NET_CLASS).join(&nic.name).join("queues");
        for tx in nic.tx_queues.iter().filter(|q| q.has_steering_file) {
            let cpu = shard_of(tx.index);
            writes.push(PlannedWrite {
                path: queues.join(format!("tx-{}/xps_cpus", tx.index)),
                value: cpu_mask(&[cpu], nr_cpus),
                why: Why::TransmitSteering {
                    nic: name.clone(),
                    queue: tx.index,
                    cpu,
                },
            });
        }
        let (rx_queues, n) = (nic.rx_queues.len(), shards.len());
        let (value, why) = match rx_queues >= n {
            true => (
                "0".to_string(),
                Why::ReceiveSteeringOff {
                    nic: name.clone(),
                    rx_queues,
                    shards: n,
                },
            ),
            false => (
                cpu_mask(shards, nr_cpus),
                Why::ReceiveSteeringSpread {
                    nic: name.clone(),
                    rx_queues,
                    shards: n,
                },
            ),
        };
        for rx in nic.rx_queues.iter().filter(|q| q.has_steering_file) {
            writes.push(PlannedWrite {
                path: queues.join(format!("rx-{}/rps_cpus", rx.index)),
                value: value.clone(),
                why: why.clone(),
            });
        }
    }
    writes
}

/// One value per write, with the newline `echo` would add. Never creates a
/// file: a missing one is an error naming it.
pub(super) fn write_value(path: &Path, value: &str) -> Result<(), IrqError> {
    let failed = |source| IrqError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    };
    let mut file = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .map_err(failed)?;
    file.write_all(format!("{value}\n").as_bytes())
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::host::test_nic as nic;

    #[test]
    fn plan_wraps_queues_over_shards_and_turns_rps_off_when_queues_suffice() {
        let eth0 = nic("eth0", 3, &[(0, 40), (1, 41), (2, 42)]);
        let writes = plan(&[&eth0], &[0, 2], 64);
        let lines: Vec<String> = writes
            .iter()
            .map(|w| format!("{} <- {}", w.path.display(), w.value))
            .collect();
        assert_eq!(
            lines,
            [
                "proc/irq/40/smp_affinity_list <- 0",
                "proc/irq/41/smp_affinity_list <- 2",
                "proc/irq/42/smp_affinity_list <- 0",
                "sys/class/net/eth0/queues/tx-0/xps_cpus <- 00000000,00000001",
                "sys/class/net/eth0/queues/tx-1/xps_cpus <- 00000000,00000004",
                "sys/class/net/eth0/queues/tx-2/xps_cpus <- 00000000,00000001",
                "sys/class/net/eth0/queues/rx-0/rps_cpus <- 0",
                "sys/class/net/eth0/queues/rx-1/rps_cpus <- 0",
                "sys/class/net/eth0/queues/rx-2/rps_cpus <- 0",
            ]
        );
        let spread = plan(&[&nic("eth1", 1, &[(0, 50)])], &[0, 2, 3], 4);
        assert_eq!(spread.last().map(|w| w.value.as_str()), Some("d"));
        assert!(plan(&[&eth0], &[], 4).is_empty());
    }
}
