//! Which NIC queue an interrupt serves, from its name in /proc/interrupts
//! as each driver writes it. Pure: no I/O.

use super::decimal;

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
}
