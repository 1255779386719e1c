//! Reads a sysfs/procfs root: the online and possible CPUs, the physical
//! NICs with their queues, and the lines of /proc/interrupts that serve
//! those queues. Never writes; a file it cannot read is an `IrqError` naming
//! it, or (for optional files) less detail, never a panic.

use super::cpus::{format_cpu_list, parse_cpu_list};
use super::names::queue_of;
use super::{IrqError, decimal};
use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

pub(super) const CPU_ONLINE: &str = "sys/devices/system/cpu/online";
pub(super) const CPU_POSSIBLE: &str = "sys/devices/system/cpu/possible";
pub(super) const NET_CLASS: &str = "sys/class/net";
pub(super) const INTERRUPTS: &str = "proc/interrupts";

/// A NIC queue directory (`queues/rx-N` or `tx-N`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Queue {
    pub index: usize,
    /// `rps_cpus` (rx) or `xps_cpus` (tx) can be read. Without CONFIG_RPS
    /// or CONFIG_XPS there is no such file; on a single-queue device
    /// `xps_cpus` is listed but refuses reads and writes (ENOENT).
    pub has_steering_file: bool,
}

/// An interrupt that serves one queue of a NIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueInterrupt {
    pub queue: usize,
    pub irq: u32,
    pub name: String,
}

/// A physical NIC as sysfs and /proc/interrupts show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    pub name: String,
    /// The basename of the `device` link: a PCI address (`0000:3b:00.0`) or
    /// a virtio device (`virtio0`); some drivers name interrupts after it.
    pub device: Option<String>,
    pub rx_queues: Vec<Queue>,
    pub tx_queues: Vec<Queue>,
    pub interrupts: Vec<QueueInterrupt>,
}

/// The CPUs and physical NICs under a root.
#[derive(Clone, Debug)]
pub struct Host {
    pub online: Vec<usize>,
    /// Bits in a CPU mask (the kernel's nr_cpu_ids): possible CPUs, or the
    /// online ones when `possible` cannot be read.
    pub nr_cpus: usize,
    /// Sorted by name; no loopback, no virtual device.
    pub nics: Vec<Nic>,
}

impl Host {
    pub fn read(root: &Path) -> Result<Host, IrqError> {
        let online_path = root.join(CPU_ONLINE);
        let online_text = read(&online_path)?;
        let online = parse_cpu_list(&online_text).map_err(|_| IrqError::Parse {
            path: online_path,
            expected: "a CPU list such as 0-3,8",
            found: online_text.trim().to_string(),
        })?;
        let highest = |cpus: &[usize]| cpus.iter().max().map_or(0, |c| c + 1);
        let nr_cpus = fs::read_to_string(root.join(CPU_POSSIBLE))
            .ok()
            .and_then(|s| parse_cpu_list(&s).ok())
            .map_or(0, |possible| highest(&possible))
            .max(highest(&online));
        let interrupts_path = root.join(INTERRUPTS);
        let interrupts = parse_interrupts(&read(&interrupts_path)?);
        let net = root.join(NET_CLASS);
        let entries = fs::read_dir(&net).map_err(|source| IrqError::Read {
            path: net.clone(),
            source,
        })?;
        let mut nics: Vec<Nic> = entries
            .flatten()
            .filter_map(|entry| read_nic(&entry.path(), &interrupts))
            .collect();
        nics.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Host {
            online,
            nr_cpus,
            nics,
        })
    }

    /// The NICs named (all when none is), each a physical one.
    pub(super) fn select(&self, root: &Path, names: &[String]) -> Result<Vec<&Nic>, IrqError> {
        if names.is_empty() {
            return match self.nics.is_empty() {
                true => Err(IrqError::NoNic {
                    path: root.join(NET_CLASS),
                }),
                false => Ok(self.nics.iter().collect()),
            };
        }
        names
            .iter()
            .map(|name| {
                self.nics
                    .iter()
                    .find(|n| &n.name == name)
                    .ok_or_else(|| IrqError::UnknownNic {
                        name: name.clone(),
                        path: root.join(NET_CLASS),
                    })
            })
            .collect()
    }

    /// The CPUs of `--cores LIST`, refused unless every one is online.
    pub(super) fn shard_cpus(&self, root: &Path, list: &str) -> Result<Vec<usize>, IrqError> {
        let cpus = parse_cpu_list(list).map_err(|reason| IrqError::BadCores {
            given: list.to_string(),
            reason,
        })?;
        match cpus.iter().find(|c| !self.online.contains(c)) {
            Some(&cpu) => Err(IrqError::CoreOffline {
                cpu,
                online: format_cpu_list(&self.online),
                path: root.join(CPU_ONLINE),
            }),
            None => Ok(cpus),
        }
    }
}

fn read(path: &Path) -> Result<String, IrqError> {
    fs::read_to_string(path).map_err(|source| IrqError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A `sys/class/net` entry, unless it is loopback or virtual (no `device`).
fn read_nic(dir: &Path, interrupts: &[Interrupt]) -> Option<Nic> {
    let name = dir.file_name()?.to_str()?.to_string();
    let device_link = dir.join("device");
    if name == "lo" || fs::symlink_metadata(&device_link).is_err() {
        return None;
    }
    let device = fs::read_link(&device_link).ok().and_then(|target| {
        target
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
    });
    let (mut rx_queues, mut tx_queues) = (Vec::new(), Vec::new());
    for entry in fs::read_dir(dir.join("queues"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let file_name = entry.file_name();
        let Some(queue) = file_name.to_str() else {
            continue;
        };
        let (list, steering, index) = match (queue.strip_prefix("rx-"), queue.strip_prefix("tx-")) {
            (Some(i), _) => (&mut rx_queues, "rps_cpus", i),
            (_, Some(i)) => (&mut tx_queues, "xps_cpus", i),
            _ => continue,
        };
        if let Some(index) = decimal(index) {
            list.push(Queue {
                index,
                has_steering_file: fs::read(entry.path().join(steering)).is_ok(),
            });
        }
    }
    rx_queues.sort_by_key(|q| q.index);
    tx_queues.sort_by_key(|q| q.index);
    // When the device lists its MSI vectors, an interrupt named like one of
    // its queues but not among them belongs to some other device.
    let msi: BTreeSet<u32> = fs::read_dir(device_link.join("msi_irqs"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(decimal)
                .and_then(|n| u32::try_from(n).ok())
        })
        .collect();
    // mlx5 has a completion vector per CPU whatever the channel count: the
    // vectors past the last queue serve nothing and are not judged.
    let queue_count = rx_queues.len().max(tx_queues.len());
    let interrupts = interrupts
        .iter()
        .filter(|i| msi.is_empty() || msi.contains(&i.irq))
        .filter_map(|i| {
            let queue = queue_of(&i.name, &name, device.as_deref())?;
            (queue_count == 0 || queue < queue_count).then(|| QueueInterrupt {
                queue,
                irq: i.irq,
                name: i.name.clone(),
            })
        })
        .collect();
    Some(Nic {
        name,
        device,
        rx_queues,
        tx_queues,
        interrupts,
    })
}

/// A line of /proc/interrupts that names a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interrupt {
    pub irq: u32,
    /// The action name, the last column (`eth0-TxRx-3`).
    pub name: String,
}

/// The numbered lines of /proc/interrupts; the CPU header, `NMI:`-style
/// lines and anything that does not read as `N: counts… name` are skipped.
pub fn parse_interrupts(text: &str) -> Vec<Interrupt> {
    text.lines()
        .filter_map(|line| {
            let (irq, rest) = line.split_once(':')?;
            let irq = u32::try_from(decimal(irq.trim())?).ok()?;
            let name = rest.split_whitespace().last()?;
            decimal(name).is_none().then(|| Interrupt {
                irq,
                name: name.to_string(),
            })
        })
        .collect()
}

/// irqbalance would move the interrupts again: its pid file names a live
/// process, or a process is named irqbalance.
pub(super) fn irqbalance_running(root: &Path) -> bool {
    let from_pid_file = fs::read_to_string(root.join("run/irqbalance.pid"))
        .ok()
        .and_then(|pid| pid.trim().parse::<u32>().ok())
        .is_some_and(|pid| root.join(format!("proc/{pid}")).is_dir());
    from_pid_file
        || fs::read_dir(root.join("proc"))
            .into_iter()
            .flatten()
            .flatten()
            .any(|entry| {
                entry
                    .file_name()
                    .to_string_lossy()
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                    && fs::read_to_string(entry.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "irqbalance")
            })
}

/// A NIC whose `rx` queues and as many tx queues all have steering files,
/// with the interrupts `(queue, irq)`.
#[cfg(test)]
pub(super) fn test_nic(name: &str, rx: usize, irqs: &[(usize, u32)]) -> Nic {
    let queues = |n| {
        (0..n)
            .map(|index| Queue {
                index,
                has_steering_file: true,
            })
            .collect()
    };
    Nic {
        name: name.into(),
        device: None,
        rx_queues: queues(rx),
        tx_queues: queues(rx),
        interrupts: irqs
            .iter()
            .map(|&(queue, irq)| QueueInterrupt {
                queue,
                irq,
                name: String::new(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_interrupts_lines_without_a_number_or_a_name_are_skipped() {
        let text = "           CPU0       CPU1\n\
                     24:          1          0  IO-APIC   5-edge      ACPI:Ged\n\
                     40:  0 0 IR-PCI-MSI 1048576-edge      eth0-TxRx-0\n\
                     41:  5 0\n\
                    NMI:          0          0   Non-maskable interrupts\n\
                    garbage\n\
                    \n\
                    99999999999: 0 0 PCI-MSI x\n\
                    +7: 0 0 PCI-MSI y\n\
                     9:  0 0 IO-APIC 9-fasteoi   acpi, i8042\n";
        assert_eq!(
            parse_interrupts(text),
            vec![
                Interrupt {
                    irq: 24,
                    name: "ACPI:Ged".into()
                },
                Interrupt {
                    irq: 40,
                    name: "eth0-TxRx-0".into()
                },
                Interrupt {
                    irq: 9,
                    name: "i8042".into()
                },
            ]
        );
        assert!(parse_interrupts("").is_empty());
    }
}
