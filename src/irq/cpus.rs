//! CPU lists ("0-3,8") and hex CPU masks ("00000000,0000000f") as the
//! kernel reads and prints them. The one parser of CPU lists in the crate:
//! `edgeslab irq`, the config's `cores` and the runtime topology all use
//! `parse_cpu_list`. Pure: no I/O. Nothing here allocates more than
//! `MAX_CPUS` allows, whatever the input says.

use std::fmt::Write as _;

/// The kernel's largest NR_CPUS. It also bounds what a range such as
/// `0-99999999999` in a list or a file can make us allocate.
pub const MAX_CPUS: usize = 8192;

/// Why a CPU list does not parse; each says what was wrong.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CpuListError {
    #[error("it names no CPU")]
    Empty,
    #[error("it has an empty entry between commas")]
    EmptyEntry,
    #[error("{entry:?} is neither a CPU number nor a range such as 2-5")]
    NotACpu { entry: String },
    #[error("the range {first}-{last} runs backwards")]
    Reversed { first: usize, last: usize },
    #[error("CPU {cpu} is past the largest the kernel allows, {}", MAX_CPUS - 1)]
    TooHigh { cpu: String },
}

/// A kernel CPU list ("0-3,8", "0", "3,0-1,1"), sorted without repeats.
/// Spaces around entries and a trailing newline are allowed; signs, empty
/// entries, reversed ranges (`3-1`) and CPUs at or past `MAX_CPUS` are not.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, CpuListError> {
    let s = s.trim();
    if s.is_empty() {
        return Err(CpuListError::Empty);
    }
    // A set, not a Vec: "0-8191,0-8191,…" must not grow with its repeats.
    let mut named = vec![false; MAX_CPUS];
    for entry in s.split(',').map(str::trim) {
        if entry.is_empty() {
            return Err(CpuListError::EmptyEntry);
        }
        let cpu = |n: &str| {
            let n = n.trim();
            if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CpuListError::NotACpu {
                    entry: entry.to_string(),
                });
            }
            // All digits: a parse failure can only be an overflow.
            match n.parse::<usize>() {
                Ok(cpu) if cpu < MAX_CPUS => Ok(cpu),
                _ => Err(CpuListError::TooHigh { cpu: n.to_string() }),
            }
        };
        let (first, last) = entry.split_once('-').unwrap_or((entry, entry));
        let (first, last) = (cpu(first)?, cpu(last)?);
        if first > last {
            return Err(CpuListError::Reversed { first, last });
        }
        named[first..=last].fill(true);
    }
    Ok((0..MAX_CPUS).filter(|&c| named[c]).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8\n"), Ok(vec![0, 1, 2, 3, 8]));
        assert_eq!(parse_cpu_list("0"), Ok(vec![0]));
        assert_eq!(parse_cpu_list("3,0-1,1"), Ok(vec![0, 1, 3]));
        assert_eq!(parse_cpu_list(" 0 - 1 , 4 "), Ok(vec![0, 1, 4]));
        assert_eq!(parse_cpu_list("8191"), Ok(vec![8191]));
        assert_eq!(
            parse_cpu_list("0-8191,0-8191").map(|c| c.len()),
            Ok(MAX_CPUS)
        );
        let not_a_cpu = |entry: &str| CpuListError::NotACpu {
            entry: entry.into(),
        };
        let too_high = |cpu: &str| CpuListError::TooHigh { cpu: cpu.into() };
        for (bad, why) in [
            ("", CpuListError::Empty),
            ("\n", CpuListError::Empty),
            ("all", not_a_cpu("all")),
            ("3-1", CpuListError::Reversed { first: 3, last: 1 }),
            ("0-", not_a_cpu("0-")),
            ("-1", not_a_cpu("-1")),
            ("1-2-3", not_a_cpu("1-2-3")),
            ("0,,1", CpuListError::EmptyEntry),
            ("0,", CpuListError::EmptyEntry),
            ("x", not_a_cpu("x")),
            ("+1", not_a_cpu("+1")),
            ("0-99999999999", too_high("99999999999")),
            ("8192", too_high("8192")),
            (
                "99999999999999999999999",
                too_high("99999999999999999999999"),
            ),
        ] {
            assert_eq!(parse_cpu_list(bad), Err(why), "{bad:?}");
        }
        assert_eq!(
            parse_cpu_list("0-99999999999").unwrap_err().to_string(),
            "CPU 99999999999 is past the largest the kernel allows, 8191"
        );
        assert_eq!(
            parse_cpu_list("5-2").unwrap_err().to_string(),
            "the range 5-2 runs backwards"
        );
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
}
