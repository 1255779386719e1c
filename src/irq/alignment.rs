//! Whether each physical NIC's queue interrupts and RPS land on the shard
//! cores: read once at start-up and logged as one line. Never fails and
//! never writes: what cannot be read is part of the verdict.

use super::cpus::{format_cpu_list, parse_cpu_list, parse_cpu_mask};
use super::host::{Host, NET_CLASS, Nic};
use super::{IrqError, plural};
use std::fmt;
use std::fs;
use std::path::Path;

/// Whether each physical NIC's queues reach the shards: read at start-up,
/// logged as one line.
#[derive(Debug)]
pub struct Alignment {
    pub shards: usize,
    pub nics: Vec<NicAlignment>,
    /// The host could not be read; nothing is known.
    pub unreadable: Option<IrqError>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicAlignment {
    pub nic: String,
    pub rx_queues: usize,
    pub shards: usize,
    pub findings: Vec<Finding>,
}

/// Something that sends a NIC's packets to a core that runs no shard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// No line of /proc/interrupts serves one of its queues.
    NoQueueInterrupts,
    /// The interrupt may fire on `cpus`, not all of which run a shard.
    InterruptOffShards {
        queue: usize,
        irq: u32,
        cpus: Vec<usize>,
    },
    /// `proc/irq/N/smp_affinity_list` is missing or not a CPU list.
    AffinityUnknown { queue: usize, irq: u32 },
    /// Fewer rx queues than shards, and RPS on this queue does not spread
    /// over exactly the shard cores (`cpus` empty: RPS is off).
    RpsNotOnShards { queue: usize, cpus: Vec<usize> },
}

impl Finding {
    /// Whether `edgeslab irq --apply` would set this right.
    pub fn fixed_by_apply(&self) -> bool {
        matches!(
            self,
            Finding::InterruptOffShards { .. } | Finding::RpsNotOnShards { .. }
        )
    }
}

impl Alignment {
    pub fn is_aligned(&self) -> bool {
        self.unreadable.is_none() && self.nics.iter().all(|n| n.findings.is_empty())
    }
}

/// Reads the interrupts' affinity and RPS of every physical NIC under
/// `root` and judges them against the shard cores. Never fails: what cannot
/// be read is part of the answer.
pub fn alignment(root: &Path, shard_cpus: &[usize]) -> Alignment {
    let host = match Host::read(root) {
        Ok(host) => host,
        Err(e) => {
            return Alignment {
                shards: shard_cpus.len(),
                nics: Vec::new(),
                unreadable: Some(e),
            };
        }
    };
    let nics = host
        .nics
        .iter()
        .map(|nic| {
            let affinity = |irq: u32| {
                fs::read_to_string(root.join(format!("proc/irq/{irq}/smp_affinity_list")))
                    .ok()
                    .and_then(|s| parse_cpu_list(&s).ok())
            };
            let rps = |queue: usize| {
                let path = root
                    .join(NET_CLASS)
                    .join(&nic.name)
                    .join(format!("queues/rx-{queue}/rps_cpus"));
                fs::read_to_string(path)
                    .ok()
                    .and_then(|s| parse_cpu_mask(&s))
                    .unwrap_or_default()
            };
            judge(nic, shard_cpus, affinity, rps)
        })
        .collect();
    Alignment {
        shards: shard_cpus.len(),
        nics,
        unreadable: None,
    }
}

/// The verdict on one NIC, given how to read an interrupt's CPUs and an rx
/// queue's RPS CPUs.
fn judge(
    nic: &Nic,
    shards: &[usize],
    affinity: impl Fn(u32) -> Option<Vec<usize>>,
    rps: impl Fn(usize) -> Vec<usize>,
) -> NicAlignment {
    let mut findings = Vec::new();
    if nic.interrupts.is_empty() {
        findings.push(Finding::NoQueueInterrupts);
    }
    for interrupt in &nic.interrupts {
        let (queue, irq) = (interrupt.queue, interrupt.irq);
        match affinity(irq) {
            None => findings.push(Finding::AffinityUnknown { queue, irq }),
            Some(cpus) if !cpus.iter().all(|c| shards.contains(c)) => {
                findings.push(Finding::InterruptOffShards { queue, irq, cpus })
            }
            Some(_) => {}
        }
    }
    let mut wanted = shards.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    if nic.rx_queues.len() < shards.len() {
        // One finding is enough: apply sets every queue alike.
        let off = nic
            .rx_queues
            .iter()
            .filter(|q| q.has_steering_file)
            .map(|q| (q.index, rps(q.index)))
            .find(|(_, cpus)| *cpus != wanted);
        if let Some((queue, cpus)) = off {
            findings.push(Finding::RpsNotOnShards { queue, cpus });
        }
    }
    NicAlignment {
        nic: nic.name.clone(),
        rx_queues: nic.rx_queues.len(),
        shards: shards.len(),
        findings,
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Finding::NoQueueInterrupts => {
                f.write_str("no queue interrupt found in /proc/interrupts")
            }
            Finding::InterruptOffShards { queue, cpus, .. } if cpus.len() == 1 => {
                write!(
                    f,
                    "queue {queue}'s interrupt is on CPU {}, which runs no shard",
                    cpus[0]
                )
            }
            Finding::InterruptOffShards { queue, cpus, .. } => write!(
                f,
                "queue {queue}'s interrupt may fire on CPUs {}, not only shard cores",
                format_cpu_list(cpus)
            ),
            Finding::AffinityUnknown { queue, irq } => {
                write!(
                    f,
                    "queue {queue}'s interrupt (IRQ {irq}) has no readable affinity"
                )
            }
            Finding::RpsNotOnShards { cpus, .. } if cpus.is_empty() => {
                f.write_str("RPS spreads nothing")
            }
            Finding::RpsNotOnShards { queue, cpus } => write!(
                f,
                "rx queue {queue}'s RPS spreads to CPUs {}, not the shard cores",
                format_cpu_list(cpus)
            ),
        }
    }
}

impl fmt::Display for NicAlignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (rx, shards) = (
            plural(self.rx_queues, "rx queue"),
            plural(self.shards, "shard"),
        );
        let spread_by_rps = self.rx_queues < self.shards;
        match spread_by_rps {
            true => write!(f, "NIC {}: {rx} for {shards}", self.nic)?,
            false => write!(f, "NIC {}: {rx}, {shards}", self.nic)?,
        }
        if self.findings.is_empty() {
            f.write_str("; every queue's interrupt is on a shard core")?;
            return match spread_by_rps {
                true => f.write_str(" and RPS spreads flows over them"),
                false => Ok(()),
            };
        }
        // "run …, or" only when applying would change something.
        let fixable = self.findings.iter().any(Finding::fixed_by_apply);
        f.write_str(if fixable {
            ": run edgeslab irq --apply, or "
        } else {
            ": "
        })?;
        // A host with many queues would make a line no one reads.
        const SHOWN: usize = 3;
        for (i, finding) in self.findings.iter().take(SHOWN).enumerate() {
            write!(f, "{}{finding}", if i == 0 { "" } else { "; " })?;
        }
        match self.findings.len().checked_sub(SHOWN) {
            Some(more) if more > 0 => write!(f, "; and {more} more"),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Alignment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.unreadable {
            return write!(f, "NIC queue alignment unknown: {e}");
        }
        if self.nics.is_empty() {
            return f.write_str("no physical NIC: no queue interrupt to align with the shards");
        }
        for (i, nic) in self.nics.iter().enumerate() {
            write!(f, "{}{nic}", if i == 0 { "" } else { "; " })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irq::host::test_nic as nic;

    #[test]
    fn alignment_names_each_interrupt_off_the_shards_and_missing_rps() {
        let eth0 = nic(
            "eth0",
            8,
            &(0..8).map(|q| (q, 40 + q as u32)).collect::<Vec<_>>(),
        );
        let shards: Vec<usize> = (0..8).collect();
        let pinned = judge(
            &eth0,
            &shards,
            |irq| Some(vec![irq as usize - 40]),
            |_| vec![],
        );
        assert_eq!(
            pinned.to_string(),
            "NIC eth0: 8 rx queues, 8 shards; every queue's interrupt is on a shard core"
        );

        let one_off = judge(
            &eth0,
            &shards,
            |irq| Some(vec![if irq == 43 { 9 } else { 0 }]),
            |_| vec![],
        );
        assert_eq!(
            one_off.findings,
            [Finding::InterruptOffShards {
                queue: 3,
                irq: 43,
                cpus: vec![9]
            }]
        );
        assert_eq!(
            one_off.to_string(),
            "NIC eth0: 8 rx queues, 8 shards: run edgeslab irq --apply, or queue 3's interrupt is on CPU 9, which runs no shard"
        );
        let unpinned = judge(&eth0, &[0, 1], |_| Some((0..64).collect()), |_| vec![]);
        assert_eq!(unpinned.findings.len(), 8);
        assert!(
            unpinned
                .to_string()
                .ends_with("may fire on CPUs 0-63, not only shard cores; and 5 more")
        );

        let virtio = nic("eth1", 1, &[(0, 50), (0, 51)]);
        let no_rps = judge(&virtio, &[0, 1], |_| Some(vec![0]), |_| vec![]);
        assert_eq!(
            no_rps.to_string(),
            "NIC eth1: 1 rx queue for 2 shards: run edgeslab irq --apply, or RPS spreads nothing"
        );
        let rps = judge(&virtio, &[0, 1], |_| Some(vec![0]), |_| vec![0, 1]);
        assert!(rps.findings.is_empty(), "{rps}");
        let wide = judge(&virtio, &[0, 1], |_| Some(vec![0]), |_| vec![0, 1, 2]);
        assert_eq!(
            wide.findings,
            [Finding::RpsNotOnShards {
                queue: 0,
                cpus: vec![0, 1, 2]
            }]
        );

        let silent = judge(&nic("eth2", 2, &[]), &[0, 1], |_| None, |_| vec![]);
        assert_eq!(
            silent.to_string(),
            "NIC eth2: 2 rx queues, 2 shards: no queue interrupt found in /proc/interrupts"
        );
        let alignment = Alignment {
            shards: 2,
            nics: vec![rps, silent],
            unreadable: None,
        };
        assert!(!alignment.is_aligned());
    }
}
