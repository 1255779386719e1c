//! `edgeslab irq`: puts each NIC queue's interrupt, its transmit steering
//! (XPS) and its receive steering (RPS) on the shard cores, so that the
//! shard on core N accepts the connections whose packets arrive on queue N;
//! and, for the start-up log, says whether the host is so aligned.
//!
//! Everything is read from a sysfs/procfs root (`/` in production, a fake
//! tree in tests). The rules (interrupt names, CPU lists and masks, the
//! plan, the verdict on alignment) do no I/O. Nothing is written unless the
//! operator asks for `--apply`, and no kernel file, however odd, panics.
//!
//! `host` reads the root; `names` tells which queue an interrupt serves;
//! `cpus` parses and prints CPU lists and masks (the one parser of CPU lists
//! in the crate: the config's `cores` and the runtime topology use it too);
//! `plan` decides what to write; `alignment` judges what is there.

pub mod alignment;
pub mod cpus;
pub mod host;
pub mod names;
pub mod plan;

pub use alignment::{Alignment, Finding, NicAlignment, alignment};

use cpus::{CpuListError, MAX_CPUS};
use host::{Host, INTERRUPTS};
use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

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
        "--cores {given:?}: {reason}; expected \"all\" or a CPU list such as 0,2-3 (CPUs below {MAX_CPUS})"
    )]
    BadCores { given: String, reason: CpuListError },
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
    if host::irqbalance_running(root) {
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
    for write in plan::plan(&nics, &shards, host.nr_cpus) {
        let path = root.join(&write.path);
        if mode == Outcome::Applied {
            plan::write_value(&path, &write.value)?;
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

/// Digits only (no sign, no space), as a number.
fn decimal(s: &str) -> Option<usize> {
    (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
}

fn plural(n: usize, what: &str) -> String {
    match n {
        1 => format!("1 {what}"),
        _ => format!("{n} {what}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::host::{CPU_ONLINE, CPU_POSSIBLE};
    use super::*;
    use std::fs;

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
