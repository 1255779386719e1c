//! `edgeslab irq` against fake sysfs/procfs trees: an 8-queue ixgbe-style
//! NIC, an mlx5 NIC, a single-queue virtio NIC (the RPS case) and a veth
//! that must be left alone. The real binary runs with `--root`; the dry run
//! must change no file and `--apply` must write exactly the plan.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fake root under the temp directory, removed on drop.
struct FakeRoot(PathBuf);

impl FakeRoot {
    fn new(tag: &str) -> FakeRoot {
        let dir =
            std::env::temp_dir().join(format!("edgeslab-test-irq-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create fake root");
        FakeRoot(dir)
    }

    fn file(&self, path: &str, contents: &str) {
        let path = self.0.join(path);
        fs::create_dir_all(path.parent().expect("parent")).expect("create dirs");
        fs::write(path, contents).expect("write fake file");
    }

    fn dir(&self, path: &str) {
        fs::create_dir_all(self.0.join(path)).expect("create fake dir");
    }

    /// `sys/class/net/NIC/device` -> `sys/devices/…`, as the kernel links it.
    fn device_link(&self, nic: &str, device: &str) {
        self.dir(device);
        std::os::unix::fs::symlink(
            self.0.join(device),
            self.0.join(format!("sys/class/net/{nic}/device")),
        )
        .expect("device link");
    }

    fn queues(&self, nic: &str, rx: usize, tx: usize, xps: bool) {
        for q in 0..rx {
            self.file(
                &format!("sys/class/net/{nic}/queues/rx-{q}/rps_cpus"),
                "0\n",
            );
        }
        for q in 0..tx {
            match xps {
                true => self.file(
                    &format!("sys/class/net/{nic}/queues/tx-{q}/xps_cpus"),
                    "0\n",
                ),
                false => self.dir(&format!("sys/class/net/{nic}/queues/tx-{q}")),
            }
        }
    }

    /// Every regular file's contents, by path relative to the root.
    fn snapshot(&self) -> BTreeMap<String, String> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
            for entry in fs::read_dir(dir).expect("read fake dir").flatten() {
                let kind = entry.file_type().expect("file type");
                let path = entry.path();
                if kind.is_dir() {
                    walk(root, &path, out);
                } else if kind.is_file() {
                    let rel = path.strip_prefix(root).expect("under root");
                    out.insert(
                        rel.display().to_string(),
                        fs::read_to_string(&path).expect("read fake file"),
                    );
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.0, &self.0, &mut out);
        out
    }

    fn irq(&self, args: &[&str]) -> Output {
        let root = self.0.to_str().expect("utf-8 temp dir");
        Command::new(env!("CARGO_BIN_EXE_edgeslab"))
            .args(["irq", "--root", root])
            .args(args)
            .output()
            .expect("run edgeslab irq")
    }
}

impl Drop for FakeRoot {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A 4-CPU host: `eth0` (ixgbe, 8 queues), `ens1f0` (mlx5, 4 channels and
/// 6 completion vectors), `eth1` (virtio-net, 1 queue), `veth0` and `lo`,
/// with irqbalance running.
fn host(tag: &str) -> FakeRoot {
    let root = FakeRoot::new(tag);
    root.file("sys/devices/system/cpu/online", "0-3\n");
    root.file("sys/devices/system/cpu/possible", "0-3\n");
    let mut interrupts = String::from("            CPU0       CPU1       CPU2       CPU3\n");
    let mut line = |irq: u32, name: &str| {
        interrupts.push_str(&format!(
            "{irq:>4}:          0          0          0          0  IR-PCI-MSI 524288-edge      {name}\n"
        ));
        root.file(&format!("proc/irq/{irq}/smp_affinity_list"), "0-3\n");
    };
    for q in 0..8 {
        line(40 + q, &format!("eth0-TxRx-{q}"));
    }
    line(48, "eth0");
    line(60, "mlx5_async0@pci:0000:3b:00.0");
    for q in 0..6 {
        line(61 + q, &format!("mlx5_comp{q}@pci:0000:3b:00.0"));
    }
    line(70, "mlx5_comp0@pci:0000:3b:00.1");
    line(80, "virtio0-config");
    line(81, "virtio0-input.0");
    line(82, "virtio0-output.0");
    line(90, "veth0-TxRx-0");
    line(91, "eth01-TxRx-0");
    interrupts
        .push_str("NMI:          0          0          0          0   Non-maskable interrupts\n");
    interrupts.push_str("garbage without a colon\n  :\n 92:\n");
    root.file("proc/interrupts", &interrupts);

    root.queues("eth0", 8, 8, true);
    root.device_link("eth0", "sys/devices/pci0000:00/0000:01:00.0");
    for irq in 40..=48 {
        root.file(
            &format!("sys/devices/pci0000:00/0000:01:00.0/msi_irqs/{irq}"),
            "msix\n",
        );
    }
    root.queues("ens1f0", 4, 4, true);
    root.device_link("ens1f0", "sys/devices/pci0000:3a/0000:3b:00.0");
    root.queues("eth1", 1, 1, false);
    root.device_link("eth1", "sys/devices/pci0000:00/0000:00:03.0/virtio0");
    root.queues("veth0", 1, 1, true);
    root.queues("lo", 1, 1, true);

    root.file("run/irqbalance.pid", "4242\n");
    root.file("proc/4242/comm", "irqbalance\n");
    root
}

/// The plan for `--cores 0-3`, as `path <- value` (relative paths).
fn expected_plan() -> Vec<(String, String)> {
    let mask = |cpu: usize| format!("{:x}", 1 << cpu);
    let mut plan = Vec::new();
    for q in 0..4 {
        plan.push((
            format!("proc/irq/{}/smp_affinity_list", 61 + q),
            q.to_string(),
        ));
    }
    for q in 0..4 {
        plan.push((
            format!("sys/class/net/ens1f0/queues/tx-{q}/xps_cpus"),
            mask(q),
        ));
    }
    for q in 0..4 {
        plan.push((
            format!("sys/class/net/ens1f0/queues/rx-{q}/rps_cpus"),
            "0".into(),
        ));
    }
    for q in 0..8 {
        plan.push((
            format!("proc/irq/{}/smp_affinity_list", 40 + q),
            (q % 4).to_string(),
        ));
    }
    for q in 0..8 {
        plan.push((
            format!("sys/class/net/eth0/queues/tx-{q}/xps_cpus"),
            mask(q % 4),
        ));
    }
    for q in 0..8 {
        plan.push((
            format!("sys/class/net/eth0/queues/rx-{q}/rps_cpus"),
            "0".into(),
        ));
    }
    plan.push(("proc/irq/81/smp_affinity_list".into(), "0".into()));
    plan.push(("proc/irq/82/smp_affinity_list".into(), "0".into()));
    plan.push(("sys/class/net/eth1/queues/rx-0/rps_cpus".into(), "f".into()));
    plan
}

fn plan_lines(root: &FakeRoot, stdout: &[u8]) -> Vec<(String, String)> {
    let prefix = format!("{}/", root.0.display());
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| {
            let (write, why) = line.split_once("  # ").expect("`path <- value  # why`");
            assert!(!why.is_empty(), "{line}");
            let (path, value) = write.split_once(" <- ").expect("`path <- value`");
            let path = path.strip_prefix(&prefix).expect("a path under the root");
            (path.to_string(), value.to_string())
        })
        .collect()
}

#[test]
fn dry_run_prints_the_plan_and_apply_writes_exactly_it() {
    let root = host("plan");
    let before = root.snapshot();

    let dry = root.irq(&["--cores", "0-3", "--dry-run"]);
    let stderr = String::from_utf8_lossy(&dry.stderr);
    assert!(dry.status.success(), "{stderr}");
    assert_eq!(plan_lines(&root, &dry.stdout), expected_plan());
    let stdout = String::from_utf8_lossy(&dry.stdout);
    let p = root.0.display();
    for line in [
        format!(
            "{p}/proc/irq/43/smp_affinity_list <- 3  # eth0 queue 3's interrupt to shard core 3"
        ),
        format!(
            "{p}/sys/class/net/eth0/queues/tx-5/xps_cpus <- 2  # eth0 tx queue 5 sends from shard core 1 (XPS)"
        ),
        format!(
            "{p}/sys/class/net/eth0/queues/rx-0/rps_cpus <- 0  # eth0: 8 rx queues for 4 shards, the NIC spreads flows itself: RPS off"
        ),
        format!(
            "{p}/sys/class/net/eth1/queues/rx-0/rps_cpus <- f  # eth1: 1 rx queue for 4 shards: RPS spreads flows over the shard cores"
        ),
    ] {
        assert!(
            stdout.lines().any(|l| l == line),
            "{line}\nnot in\n{stdout}"
        );
    }
    assert!(stderr.contains("irqbalance is running"), "{stderr}");
    assert!(
        !stdout.contains("veth0") && !stdout.contains("lo/"),
        "{stdout}"
    );
    assert_eq!(root.snapshot(), before, "the dry run changed a file");

    // Neither mode: the same plan, a hint, exit 2, nothing written.
    let neither = root.irq(&["--cores", "0-3"]);
    assert_eq!(neither.status.code(), Some(2));
    assert_eq!(plan_lines(&root, &neither.stdout), expected_plan());
    assert!(String::from_utf8_lossy(&neither.stderr).contains("--apply"));
    assert_eq!(
        root.snapshot(),
        before,
        "a run without --apply changed a file"
    );

    let apply = root.irq(&["--cores", "0-3", "--apply"]);
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    assert_eq!(plan_lines(&root, &apply.stdout), expected_plan());
    let mut wanted = before.clone();
    for (path, value) in expected_plan() {
        assert!(
            wanted.insert(path.clone(), format!("{value}\n")).is_some(),
            "{path} was created"
        );
    }
    assert_eq!(root.snapshot(), wanted);
}

#[test]
fn a_single_queue_nic_spreads_by_rps_over_the_named_shards() {
    let root = host("rps");
    let before = root.snapshot();
    let apply = root.irq(&["--nic", "eth1", "--cores", "0-1", "--apply"]);
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    let mut wanted = before;
    for (path, value) in [
        ("proc/irq/81/smp_affinity_list", "0\n"),
        ("proc/irq/82/smp_affinity_list", "0\n"),
        ("sys/class/net/eth1/queues/rx-0/rps_cpus", "3\n"),
    ] {
        wanted.insert(path.to_string(), value.to_string());
    }
    assert_eq!(root.snapshot(), wanted);
}

#[test]
fn virtual_nics_and_offline_cores_are_refused_by_name() {
    let root = host("refuse");
    let before = root.snapshot();
    let veth = root.irq(&["--nic", "veth0", "--dry-run"]);
    assert_eq!(veth.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&veth.stderr).contains("--nic veth0"));
    let offline = root.irq(&["--cores", "0-7", "--apply"]);
    assert_eq!(offline.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&offline.stderr).contains("CPU 4, which is not online"));
    let both = root.irq(&["--dry-run", "--apply"]);
    assert_eq!(both.status.code(), Some(2), "clap refuses the pair");
    assert_eq!(root.snapshot(), before);
}
