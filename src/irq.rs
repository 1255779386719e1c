//! `edgeslab irq`: puts each NIC queue's interrupt, its transmit steering
//! (XPS) and its receive steering (RPS) on the shard cores, so that the
//! shard on core N accepts the connections whose packets arrive on queue N;
//! and, for the start-up log, says whether the host is so aligned.
//!
//! Everything is read from a sysfs/procfs root (`/` in production, a fake
//! tree in tests). The rules (interrupt names, CPU lists and masks, the
//! plan, the verdict on alignment) do no I/O. Nothing is written unless the
//! operator asks for `--apply`, and no kernel file, however odd, panics.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The kernel's largest NR_CPUS. It also bounds what a range such as
/// `0-99999999999` in a list or a file can make us allocate.
const MAX_CPUS: usize = 8192;

const CPU_ONLINE: &str = "sys/devices/system/cpu/online";
const CPU_POSSIBLE: &str = "sys/devices/system/cpu/possible";
const NET_CLASS: &str = "sys/class/net";
const INTERRUPTS: &str = "proc/interrupts";

#[derive(Debug, thiserror::Error)]
pub enum IrqError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: expected {expected}, found {found:?}", path.display())]
    Parse {
        path: PathBuf,
        expected: &'static str,
        found: String,
    },
    #[error("cannot write {value:?} to {}: {source}", path.display())]
    Write {
        path: PathBuf,
        value: String,
        source: io::Error,
    },
    #[error(
        "--cores {given:?}: expected \"all\" or a CPU list such as 0,2-3 (CPUs below {MAX_CPUS})"
    )]
    BadCores { given: String },
    #[error("--cores names CPU {cpu}, which is not online ({} lists {online})", path.display())]
    CoreOffline {
        cpu: usize,
        online: String,
        path: PathBuf,
    },
    #[error("--nic {name}: no physical NIC of that name ({} has no {name} with a `device` link)", path.display())]
    UnknownNic { name: String, path: PathBuf },
    #[error("no physical NIC in {} (expected an entry with a `device` link)", path.display())]
    NoNic { path: PathBuf },
    #[error("cannot print the plan: {0}")]
    Output(io::Error),
}

/// `edgeslab irq`.
#[derive(Clone, Debug, clap::Args)]
pub struct IrqArgs {
    /// A NIC to pin; repeat for several [default: every physical NIC].
    #[arg(long = "nic", value_name = "NAME")]
    pub nics: Vec<String>,
    /// The shard cores: the same list as `cores` in the config, e.g. "0,2-3"
    /// [default: all online].
    #[arg(long, value_name = "LIST")]
    pub cores: Option<String>,
    /// Where sysfs and procfs are found (tests give a fake tree).
    #[arg(long, value_name = "PATH", default_value = "/", hide = true)]
    pub root: PathBuf,
    /// Print every file that would be written, with the value and why; write nothing.
    #[arg(long, conflicts_with = "apply")]
    pub dry_run: bool,
    /// Write the files.
    #[arg(long)]
    pub apply: bool,
}

/// How `run` ended, for the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    DryRun,
    /// Neither `--dry-run` nor `--apply`: the plan was printed, nothing written.
    NoModeGiven,
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Applied | Outcome::DryRun => ExitCode::SUCCESS,
            Outcome::NoModeGiven => ExitCode::from(2),
        }
    }
}

/// Plans the writes for the chosen NICs and cores, prints one line per file
/// (`path <- value  # why`) to `out`, and writes them only with `--apply`.
/// Warnings go to stderr.
pub fn run(args: &IrqArgs, out: &mut impl Write) -> Result<Outcome, IrqError> {
    let root = &args.root;
    let host = Host::read(root)?;
    let shards = match args.cores.as_deref().map(str::trim) {
        Some(list) if !list.eq_ignore_ascii_case("all") => host.shard_cpus(root, list)?,
        _ => host.online.clone(),
    };
    let nics = host.select(root, &args.nics)?;
    let mode = match (args.dry_run, args.apply) {
        (true, _) => Outcome::DryRun,
        (false, true) => Outcome::Applied,
        (false, false) => Outcome::NoModeGiven,
    };
    if irqbalance_running(root) {
        eprintln!(
            "edgeslab irq: warning: irqbalance is running and will move these interrupts again; \
             stop it: systemctl disable --now irqbalance"
        );
    }
    for nic in nics.iter().filter(|n| n.interrupts.is_empty()) {
        eprintln!(
            "edgeslab irq: warning: no queue interrupt of {} in {}; only XPS and RPS are set",
            nic.name,
            root.join(INTERRUPTS).display()
        );
    }
    for write in plan(&nics, &shards, host.nr_cpus) {
        let path = root.join(&write.path);
        if mode == Outcome::Applied {
            write_value(&path, &write.value)?;
        }
        writeln!(
            out,
            "{} <- {}  # {}",
            path.display(),
            write.value,
            write.why
        )
        .map_err(IrqError::Output)?;
    }
    match mode {
        Outcome::Applied => {}
        Outcome::DryRun => eprintln!("edgeslab irq: dry run: nothing written"),
        Outcome::NoModeGiven => eprintln!(
            "edgeslab irq: nothing written: pass --dry-run to only print this plan, \
             or --apply to write it"
        ),
    }
    Ok(mode)
}

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
fn write_value(path: &Path, value: &str) -> Result<(), IrqError> {
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

/// irqbalance would move the interrupts again: its pid file names a live
/// process, or a process is named irqbalance.
fn irqbalance_running(root: &Path) -> bool {
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
        let online = parse_cpu_list(&online_text).ok_or_else(|| IrqError::Parse {
            path: online_path,
            expected: "a CPU list such as 0-3,8",
            found: online_text.trim().to_string(),
        })?;
        let highest = |cpus: &[usize]| cpus.iter().max().map_or(0, |c| c + 1);
        let nr_cpus = fs::read_to_string(root.join(CPU_POSSIBLE))
            .ok()
            .and_then(|s| parse_cpu_list(&s))
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
    fn select(&self, root: &Path, names: &[String]) -> Result<Vec<&Nic>, IrqError> {
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
    fn shard_cpus(&self, root: &Path, list: &str) -> Result<Vec<usize>, IrqError> {
        let cpus = parse_cpu_list(list).ok_or_else(|| IrqError::BadCores {
            given: list.to_string(),
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

/// The queue an interrupt serves on the NIC `nic` whose `device` link ends
/// in `device`, matched whole, token by token, by driver naming:
/// `eth0-TxRx-3`, `eth0-rx-3`, `eth0-tx-3`, `eth0-3`, with a driver prefix
/// (`i40e-eth0-TxRx-3`); mlx5 `mlx5_comp3@pci:0000:3b:00.0`; virtio-net
/// `virtio0-input.3` / `virtio0-output.3`. `veth0` and `eth01` are never `eth0`.
pub fn queue_of(interrupt: &str, nic: &str, device: Option<&str>) -> Option<usize> {
    if let Some(device) = device
        && let Some(queue) =
            mlx5_queue(interrupt, device).or_else(|| virtio_queue(interrupt, device))
    {
        return Some(queue);
    }
    // The NIC's name may start the interrupt's or follow a `driver-` prefix.
    let starts = std::iter::once(0).chain(interrupt.match_indices('-').map(|(i, _)| i + 1));
    starts
        .filter_map(|start| interrupt[start..].strip_prefix(nic)?.strip_prefix('-'))
        .find_map(|suffix| match suffix.split_once('-') {
            Some((kind, queue))
                if ["txrx", "rx", "tx"]
                    .iter()
                    .any(|k| kind.eq_ignore_ascii_case(k)) =>
            {
                decimal(queue)
            }
            Some(_) => None,
            None => decimal(suffix),
        })
}

fn mlx5_queue(interrupt: &str, pci_address: &str) -> Option<usize> {
    let (vector, address) = interrupt.strip_prefix("mlx5_comp")?.split_once("@pci:")?;
    (address == pci_address).then(|| decimal(vector))?
}

fn virtio_queue(interrupt: &str, virtio_device: &str) -> Option<usize> {
    let rest = interrupt.strip_prefix(virtio_device)?.strip_prefix('-')?;
    let (direction, queue) = rest.split_once('.')?;
    matches!(direction, "input" | "output").then(|| decimal(queue))?
}

/// Digits only (no sign, no space), as a number.
fn decimal(s: &str) -> Option<usize> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

/// A kernel CPU list ("0-3,8", "0"), sorted without repeats; `None` when
/// empty, malformed, reversed (`3-1`) or naming a CPU at or past MAX_CPUS.
pub fn parse_cpu_list(s: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in s.trim().split(',').map(str::trim) {
        let (first, last) = part.split_once('-').unwrap_or((part, part));
        let cpu = |s: &str| decimal(s.trim()).filter(|&c| c < MAX_CPUS);
        let (first, last) = (cpu(first)?, cpu(last)?);
        if first > last {
            return None;
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// The shortest CPU list for `cpus` ("0-3,8").
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        let sep = if out.is_empty() { "" } else { "," };
        let _ = match i == j {
            true => write!(out, "{sep}{}", sorted[i]),
            false => write!(out, "{sep}{}-{}", sorted[i], sorted[j]),
        };
        i = j + 1;
    }
    out
}

/// The hex bitmap of `cpus` as the kernel prints one on a machine of
/// `nr_cpus` bits: 32-bit groups, most significant first, comma-separated,
/// the first only as wide as its bits need (`f` on 4 CPUs;
/// `00000001,00000000` for CPU 32 of 64). CPUs past MAX_CPUS are left out.
pub fn cpu_mask(cpus: &[usize], nr_cpus: usize) -> String {
    let cpus: Vec<usize> = cpus.iter().copied().filter(|&c| c < MAX_CPUS).collect();
    let highest = cpus.iter().map(|c| c + 1).max().unwrap_or(0);
    let bits = highest.max(nr_cpus.min(MAX_CPUS)).max(1);
    let mut words = vec![0u32; bits.div_ceil(32)];
    for cpu in cpus {
        words[cpu / 32] |= 1 << (cpu % 32);
    }
    let top_bits = match bits % 32 {
        0 => 32,
        b => b,
    };
    let mut out = String::new();
    for (i, word) in words.iter().rev().enumerate() {
        let _ = match i {
            0 => write!(out, "{word:0width$x}", width = top_bits.div_ceil(4)),
            _ => write!(out, ",{word:08x}"),
        };
    }
    out
}

/// The CPUs of a kernel hex bitmap ("00000003", "f,00000000"), or `None`.
pub fn parse_cpu_mask(s: &str) -> Option<Vec<usize>> {
    let digits: Vec<u32> = s
        .trim()
        .chars()
        .filter(|&c| c != ',')
        .map(|c| c.to_digit(16))
        .collect::<Option<_>>()?;
    if digits.is_empty() {
        return None;
    }
    let mut cpus = Vec::new();
    for (nibble, value) in digits.iter().rev().enumerate() {
        for bit in (0..4).filter(|b| value & (1 << b) != 0) {
            cpus.push(nibble * 4 + bit);
        }
    }
    cpus.iter().all(|&c| c < MAX_CPUS).then_some(cpus)
}

fn plural(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        _ => format!("{n} {what}s"),
    }
}

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
                    .and_then(|s| parse_cpu_list(&s))
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

    #[test]
    fn interrupt_names_match_by_driver_style_and_whole_tokens() {
        let pci = Some("0000:3b:00.0");
        assert_eq!(queue_of("eth0-TxRx-3", "eth0", pci), Some(3));
        assert_eq!(queue_of("eth0-rx-3", "eth0", pci), Some(3));
        assert_eq!(queue_of("eth0-tx-12", "eth0", pci), Some(12));
        assert_eq!(queue_of("i40e-eth0-TxRx-3", "eth0", pci), Some(3));
        assert_eq!(queue_of("ens1f0-3", "ens1f0", pci), Some(3));
        assert_eq!(
            queue_of("mlx5_comp3@pci:0000:3b:00.0", "ens1f0", pci),
            Some(3)
        );
        assert_eq!(
            queue_of("virtio0-input.3", "eth1", Some("virtio0")),
            Some(3)
        );
        assert_eq!(
            queue_of("virtio0-output.0", "eth1", Some("virtio0")),
            Some(0)
        );

        // Other devices, other vectors, near-misses.
        for (name, nic, device) in [
            ("veth0-TxRx-3", "eth0", pci),
            ("eth01-TxRx-3", "eth0", pci),
            ("eth0", "eth0", pci),
            ("eth0-TxRx-", "eth0", pci),
            ("eth0-TxRx-3x", "eth0", pci),
            ("eth0-fast-3", "eth0", pci),
            ("eth0-TxRx-+3", "eth0", pci),
            ("ens1f0-3", "ens1f", pci),
            ("mlx5_comp3@pci:0000:3b:00.1", "ens1f0", pci),
            ("mlx5_async0@pci:0000:3b:00.0", "ens1f0", pci),
            ("mlx5_comp3@pci:0000:3b:00.0", "ens1f0", None),
            ("virtio0-config", "eth1", Some("virtio0")),
            ("virtio01-input.3", "eth1", Some("virtio0")),
            ("virtio1-input.3", "eth1", Some("virtio0")),
            ("virtio0-input.3", "eth1", None),
            ("", "eth0", pci),
        ] {
            assert_eq!(queue_of(name, nic, device), None, "{name} for {nic}");
        }
    }

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

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8\n"), Some(vec![0, 1, 2, 3, 8]));
        assert_eq!(parse_cpu_list("0"), Some(vec![0]));
        assert_eq!(parse_cpu_list("3,0-1,1"), Some(vec![0, 1, 3]));
        for bad in [
            "",
            "\n",
            "all",
            "3-1",
            "0-",
            "-1",
            "0,,1",
            "x",
            "+1",
            "0-99999999999",
            "8192",
        ] {
            assert_eq!(parse_cpu_list(bad), None, "{bad:?}");
        }
        assert_eq!(format_cpu_list(&[8, 0, 1, 2, 3, 10]), "0-3,8,10");
        assert_eq!(format_cpu_list(&[]), "");
    }

    #[test]
    fn cpu_masks_are_written_as_the_kernel_prints_them() {
        assert_eq!(cpu_mask(&[0], 64), "00000000,00000001");
        assert_eq!(cpu_mask(&[31], 64), "00000000,80000000");
        assert_eq!(cpu_mask(&[32], 64), "00000001,00000000");
        assert_eq!(cpu_mask(&[63], 64), "80000000,00000000");
        assert_eq!(cpu_mask(&[0, 1, 2, 3], 4), "f");
        assert_eq!(cpu_mask(&[1], 2), "2");
        assert_eq!(cpu_mask(&[0], 40), "00,00000001");
        assert_eq!(
            cpu_mask(&[5], 4),
            "20",
            "a CPU past nr_cpus widens the mask"
        );
        assert_eq!(cpu_mask(&[], 0), "0");
        assert_eq!(cpu_mask(&[usize::MAX], 1), "0");
        for (cpus, n) in [
            (vec![0], 64),
            (vec![31, 32], 64),
            (vec![63], 64),
            (vec![0, 2, 3], 4),
        ] {
            assert_eq!(parse_cpu_mask(&cpu_mask(&cpus, n)), Some(cpus));
        }
        assert_eq!(parse_cpu_mask("0"), Some(vec![]));
        assert_eq!(parse_cpu_mask(""), None);
        assert_eq!(parse_cpu_mask("0x3"), None);
    }

    fn nic(name: &str, rx: usize, irqs: &[(usize, u32)]) -> Nic {
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

    /// A sysfs/procfs tree under the temp directory, removed on drop.
    struct FakeRoot(PathBuf);

    impl FakeRoot {
        fn new(tag: &str) -> FakeRoot {
            let dir = std::env::temp_dir()
                .join(format!("edgeslab-irq-unit-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            FakeRoot(dir)
        }
        fn file(&self, path: &str, contents: &str) {
            let path = self.0.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, contents).unwrap();
        }
        fn read(&self, path: &str) -> String {
            fs::read_to_string(self.0.join(path)).unwrap()
        }
        fn args(&self, cores: &str, dry_run: bool, apply: bool) -> IrqArgs {
            IrqArgs {
                nics: vec![],
                cores: Some(cores.into()),
                root: self.0.clone(),
                dry_run,
                apply,
            }
        }
    }

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A virtio-net NIC with one queue pair on a 2-CPU guest, and a veth.
    fn virtio_guest(tag: &str) -> FakeRoot {
        let root = FakeRoot::new(tag);
        root.file(CPU_ONLINE, "0-1\n");
        root.file(CPU_POSSIBLE, "0-1\n");
        root.file(
            INTERRUPTS,
            "           CPU0       CPU1\n \
             37:  0 0 PCI-MSIX-0000:00:03.0   0-edge      virtio2-config\n \
             38:  0 8958 PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0\n \
             39:  8005 0 PCI-MSIX-0000:00:03.0   2-edge      virtio2-output.0\n",
        );
        fs::create_dir_all(root.0.join("sys/devices/pci0000:00/0000:00:03.0/virtio2")).unwrap();
        root.file("sys/class/net/eth0/queues/rx-0/rps_cpus", "0\n");
        // A single tx queue: the kernel shows no xps_cpus.
        fs::create_dir_all(root.0.join("sys/class/net/eth0/queues/tx-0")).unwrap();
        std::os::unix::fs::symlink(
            root.0.join("sys/devices/pci0000:00/0000:00:03.0/virtio2"),
            root.0.join("sys/class/net/eth0/device"),
        )
        .unwrap();
        root.file("sys/class/net/veth0/queues/rx-0/rps_cpus", "0\n");
        for irq in 37..=39 {
            root.file(&format!("proc/irq/{irq}/smp_affinity_list"), "0-1\n");
        }
        root
    }

    #[test]
    fn dry_run_writes_nothing_and_apply_writes_the_plan() {
        let root = virtio_guest("apply");
        let before = alignment(&root.0, &[0, 1]);
        assert_eq!(
            before.to_string(),
            "NIC eth0: 1 rx queue for 2 shards: run edgeslab irq --apply, or RPS spreads nothing"
        );

        let expected = |r: &FakeRoot| {
            let p = r.0.display();
            format!(
                "{p}/proc/irq/38/smp_affinity_list <- 0  # eth0 queue 0's interrupt to shard core 0\n\
                 {p}/proc/irq/39/smp_affinity_list <- 0  # eth0 queue 0's interrupt to shard core 0\n\
                 {p}/sys/class/net/eth0/queues/rx-0/rps_cpus <- 3  # eth0: 1 rx queue for 2 shards: RPS spreads flows over the shard cores\n"
            )
        };
        for (dry_run, apply, outcome) in [
            (true, false, Outcome::DryRun),
            (false, false, Outcome::NoModeGiven),
        ] {
            let mut out = Vec::new();
            assert_eq!(
                run(&root.args("0-1", dry_run, apply), &mut out).unwrap(),
                outcome
            );
            assert_eq!(String::from_utf8(out).unwrap(), expected(&root));
            assert_eq!(root.read("proc/irq/38/smp_affinity_list"), "0-1\n");
            assert_eq!(root.read("sys/class/net/eth0/queues/rx-0/rps_cpus"), "0\n");
        }

        let mut out = Vec::new();
        assert_eq!(
            run(&root.args("all", false, true), &mut out).unwrap(),
            Outcome::Applied
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected(&root));
        assert_eq!(
            root.read("proc/irq/37/smp_affinity_list"),
            "0-1\n",
            "config vector untouched"
        );
        assert_eq!(root.read("proc/irq/38/smp_affinity_list"), "0\n");
        assert_eq!(root.read("proc/irq/39/smp_affinity_list"), "0\n");
        assert_eq!(root.read("sys/class/net/eth0/queues/rx-0/rps_cpus"), "3\n");
        let after = alignment(&root.0, &[0, 1]);
        assert!(after.is_aligned(), "{after}");
    }

    #[test]
    fn bad_input_is_a_typed_error_naming_the_file() {
        let root = virtio_guest("errors");
        let err = |args: &IrqArgs| run(args, &mut Vec::new()).unwrap_err();
        assert!(matches!(
            err(&root.args("0-2", true, false)),
            IrqError::CoreOffline { cpu: 2, .. }
        ));
        assert!(matches!(
            err(&root.args("2-0", true, false)),
            IrqError::BadCores { .. }
        ));
        assert!(matches!(
            err(&root.args("", true, false)),
            IrqError::BadCores { .. }
        ));
        let mut veth = root.args("0", true, false);
        veth.nics = vec!["veth0".into()];
        assert!(matches!(err(&veth), IrqError::UnknownNic { .. }));

        root.file(CPU_ONLINE, "");
        let e = err(&root.args("0", true, false));
        assert!(matches!(e, IrqError::Parse { .. }));
        assert!(
            e.to_string()
                .contains("sys/devices/system/cpu/online: expected a CPU list"),
            "{e}"
        );
        let unknown = alignment(&root.0, &[0]);
        assert!(!unknown.is_aligned());
        assert!(
            unknown
                .to_string()
                .starts_with("NIC queue alignment unknown: "),
            "{unknown}"
        );

        root.file(CPU_ONLINE, "0-1");
        fs::remove_file(root.0.join(INTERRUPTS)).unwrap();
        assert!(matches!(
            err(&root.args("0", true, false)),
            IrqError::Read { .. }
        ));
        root.file(INTERRUPTS, "\u{0}garbage:\n:\n");
        fs::remove_file(root.0.join("proc/irq/38/smp_affinity_list")).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            run(&root.args("0", true, false), &mut out).unwrap(),
            Outcome::DryRun
        );
        let out = String::from_utf8(out).unwrap();
        assert!(out.ends_with("rps_cpus <- 0  # eth0: 1 rx queue for 1 shard, the NIC spreads flows itself: RPS off\n"), "{out}");
    }
}
