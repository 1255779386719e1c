//! The machine's shape: which cores may run shards, which NUMA node each sits
//! on, and which NICs and receive queues exist. Read from hwloc when the
//! `hwloc` feature is on, and from sysfs otherwise, so the default build needs
//! no system library. Never fails: a missing sysfs file only means less detail.

use crate::irq::cpus::parse_cpu_list;
use std::fs;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cpu {
    pub id: usize,
    pub numa_node: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nic {
    pub name: String,
    pub rx_queues: usize,
    pub tx_queues: usize,
    pub numa_node: Option<usize>,
}

#[derive(Clone, Debug)]
pub struct Topology {
    /// Online cores that this process may run on, in ascending order.
    pub cpus: Vec<Cpu>,
    pub numa_nodes: usize,
    pub nics: Vec<Nic>,
    /// "hwloc" or "sysfs".
    pub source: TopologySource,
}

impl Topology {
    pub fn detect() -> Topology {
        #[cfg(feature = "hwloc")]
        match hwloc::detect() {
            Ok(t) => return t,
            Err(e) => tracing::warn!("hwloc topology failed ({e}); reading sysfs instead"),
        }
        sysfs_detect()
    }

    pub fn cpu_ids(&self) -> Vec<usize> {
        self.cpus.iter().map(|c| c.id).collect()
    }
}

/// Where the topology was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopologySource {
    Sysfs,
    Hwloc,
}

impl TopologySource {
    pub fn as_str(self) -> &'static str {
        match self {
            TopologySource::Sysfs => "sysfs",
            TopologySource::Hwloc => "hwloc",
        }
    }
}

/// Cores this process may be scheduled on (taskset, cgroup cpusets).
fn allowed_cpus() -> Option<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity fills it for pid 0 (us).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        Some(
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect(),
        )
    }
}

fn read_trimmed(p: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(p).ok().map(|s| s.trim().to_string())
}

fn sysfs_numa_of_cpus() -> Vec<(usize, Vec<usize>)> {
    let mut nodes = Vec::new();
    if let Ok(dir) = fs::read_dir("/sys/devices/system/node") {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if let Some(n) = name
                .strip_prefix("node")
                .and_then(|n| n.parse::<usize>().ok())
                && let Some(list) = read_trimmed(e.path().join("cpulist"))
            {
                // A memoryless node lists no CPU; a list we cannot read
                // leaves the node's cores on node 0, as a missing one does.
                nodes.push((n, parse_cpu_list(&list).unwrap_or_default()));
            }
        }
    }
    nodes.sort();
    nodes
}

fn sysfs_nics() -> Vec<Nic> {
    let mut nics = Vec::new();
    let Ok(dir) = fs::read_dir("/sys/class/net") else {
        return nics;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name == "lo" {
            continue;
        }
        let (mut rx, mut tx) = (0, 0);
        if let Ok(q) = fs::read_dir(e.path().join("queues")) {
            for q in q.flatten() {
                let qn = q.file_name().to_string_lossy().to_string();
                if qn.starts_with("rx-") {
                    rx += 1;
                } else if qn.starts_with("tx-") {
                    tx += 1;
                }
            }
        }
        let numa_node = read_trimmed(e.path().join("device/numa_node"))
            .and_then(|s| s.parse::<i64>().ok())
            .and_then(|n| usize::try_from(n).ok());
        nics.push(Nic {
            name,
            rx_queues: rx,
            tx_queues: tx,
            numa_node,
        });
    }
    nics.sort_by(|a, b| a.name.cmp(&b.name));
    nics
}

fn sysfs_detect() -> Topology {
    let online = read_trimmed("/sys/devices/system/cpu/online")
        .and_then(|s| parse_cpu_list(&s).ok())
        .unwrap_or_else(|| {
            (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
        });
    let allowed = allowed_cpus();
    let nodes = sysfs_numa_of_cpus();
    let cpus = online
        .into_iter()
        .filter(|c| allowed.as_ref().is_none_or(|a| a.contains(c)))
        .map(|id| Cpu {
            id,
            numa_node: nodes
                .iter()
                .find(|(_, list)| list.contains(&id))
                .map_or(0, |(n, _)| *n),
        })
        .collect();
    Topology {
        cpus,
        numa_nodes: nodes.len().max(1),
        nics: sysfs_nics(),
        source: TopologySource::Sysfs,
    }
}

#[cfg(feature = "hwloc")]
mod hwloc {
    use super::{Cpu, Nic, Topology, TopologySource, allowed_cpus, sysfs_nics};
    use hwlocality::object::attributes::ObjectAttributes;
    use hwlocality::object::types::{OSDeviceType, ObjectType};
    use hwlocality::topology::builder::TypeFilter;

    pub fn detect() -> Result<Topology, String> {
        let topo = hwlocality::Topology::builder()
            .with_type_filter(ObjectType::OSDevice, TypeFilter::KeepImportant)
            .map_err(|e| e.to_string())?
            .build()
            .map_err(|e| e.to_string())?;
        let allowed = allowed_cpus();
        let nodes: Vec<(usize, Vec<usize>)> = topo
            .objects_with_type(ObjectType::NUMANode)
            .map(|n| {
                let cpus = n
                    .cpuset()
                    .map(|set| set.iter_set().map(usize::from).collect())
                    .unwrap_or_default();
                (n.os_index().unwrap_or(0), cpus)
            })
            .collect();
        let mut cpus: Vec<Cpu> = topo
            .objects_with_type(ObjectType::PU)
            .filter_map(|pu| pu.os_index())
            .filter(|c| allowed.as_ref().is_none_or(|a| a.contains(c)))
            .map(|id| Cpu {
                id,
                numa_node: nodes
                    .iter()
                    .find(|(_, l)| l.contains(&id))
                    .map_or(0, |(n, _)| *n),
            })
            .collect();
        cpus.sort_by_key(|c| c.id);
        // hwloc names the network devices; the queue counts only sysfs knows.
        let from_sysfs = sysfs_nics();
        let nics = topo
            .objects_with_type(ObjectType::OSDevice)
            .filter(|o| {
                matches!(o.attributes(), Some(ObjectAttributes::OSDevice(a))
                    if a.device_type() == OSDeviceType::Network)
            })
            .filter_map(|o| o.name().map(|n| n.to_string_lossy().to_string()))
            .map(|name| {
                from_sysfs
                    .iter()
                    .find(|n| n.name == name)
                    .cloned()
                    .unwrap_or(Nic {
                        name,
                        rx_queues: 0,
                        tx_queues: 0,
                        numa_node: None,
                    })
            })
            .collect::<Vec<_>>();
        Ok(Topology {
            cpus,
            numa_nodes: nodes.len().max(1),
            nics: if nics.is_empty() { from_sysfs } else { nics },
            source: TopologySource::Hwloc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_at_least_one_allowed_cpu() {
        let t = Topology::detect();
        assert!(!t.cpus.is_empty());
        assert!(t.numa_nodes >= 1);
    }
}
