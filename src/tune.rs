//! `edgeslab tune`: the sysctl profiles of `tuning/` (built in), printed
//! for installation or compared with the running kernel. Each setting in a
//! profile follows a one-line comment saying why it is there; `--check`
//! repeats that line for every setting that differs, as what edgeslab
//! misses on this host until it is applied.

use std::fmt::Write;

/// A sysctl profile.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    Edge,
    Regional,
}

impl Profile {
    /// The profile file as shipped (`tuning/<name>.conf`).
    pub fn text(self) -> &'static str {
        match self {
            Profile::Edge => include_str!("../tuning/edge.conf"),
            Profile::Regional => include_str!("../tuning/regional.conf"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::Edge => "edge",
            Profile::Regional => "regional",
        }
    }
}

/// One `key = value` of a profile, with the comment line above it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub key: String,
    pub want: String,
    pub reason: String,
}

/// The settings of a profile, in file order.
pub fn settings(profile: Profile) -> Vec<Setting> {
    let mut out = Vec::new();
    let mut reason = String::new();
    for line in profile.text().lines().map(str::trim) {
        if let Some(comment) = line.strip_prefix('#') {
            // A reason may run over several comment lines.
            if !reason.is_empty() {
                reason.push(' ');
            }
            reason.push_str(comment.trim());
        } else if line.is_empty() {
            reason.clear();
        } else if let Some((key, value)) = line.split_once('=') {
            out.push(Setting {
                key: key.trim().to_string(),
                want: normalise(value),
                reason: std::mem::take(&mut reason),
            });
        }
    }
    out
}

/// How a setting compares with the running kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Matches,
    Differs {
        current: String,
    },
    /// `/proc/sys` has no such key here (a module not loaded, or another
    /// kernel), or it cannot be read.
    Unreadable,
}

/// Whitespace as the kernel prints it: single spaces.
fn normalise(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The value of `key` in `/proc/sys`.
pub fn read_sysctl(key: &str) -> Option<String> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::read_to_string(path).ok().map(|v| normalise(&v))
}

/// Compares every setting of `profile` with what `read` reports.
pub fn check(profile: Profile, read: impl Fn(&str) -> Option<String>) -> Vec<(Setting, Verdict)> {
    settings(profile)
        .into_iter()
        .map(|s| {
            let verdict = match read(&s.key) {
                Some(current) if current == s.want => Verdict::Matches,
                Some(current) => Verdict::Differs { current },
                None => Verdict::Unreadable,
            };
            (s, verdict)
        })
        .collect()
}

/// The report `tune --check` prints; true when every setting matches.
pub fn report(profile: Profile, results: &[(Setting, Verdict)]) -> (String, bool) {
    let mut out = String::new();
    let matching = results
        .iter()
        .filter(|(_, v)| *v == Verdict::Matches)
        .count();
    let _ = writeln!(
        out,
        "profile {}: {matching} of {} settings match the running kernel",
        profile.name(),
        results.len()
    );
    for (s, verdict) in results {
        match verdict {
            Verdict::Matches => {
                let _ = writeln!(out, "  ok       {} = {}", s.key, s.want);
            }
            Verdict::Differs { current } => {
                let _ = writeln!(
                    out,
                    "  DIFFERS  {} = {current} (profile: {})\n           missed: {}",
                    s.key, s.want, s.reason
                );
            }
            Verdict::Unreadable => {
                let _ = writeln!(
                    out,
                    "  MISSING  {} is not in /proc/sys here (profile: {})\n           missed: {}",
                    s.key, s.want, s.reason
                );
            }
        }
    }
    if matching < results.len() {
        let _ = writeln!(
            out,
            "apply: edgeslab tune --profile {} > /etc/sysctl.d/60-edgeslab.conf && sysctl --system",
            profile.name()
        );
    }
    (out, matching == results.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_has_its_reason() {
        for p in [Profile::Edge, Profile::Regional] {
            let all = settings(p);
            assert!(all.len() >= 15, "{p:?}");
            for s in &all {
                assert!(!s.reason.is_empty(), "{p:?} {} has no reason line", s.key);
                assert!(!s.want.is_empty(), "{p:?} {}", s.key);
            }
            assert!(
                all.iter()
                    .any(|s| s.key == "net.ipv4.ip_local_reserved_ports")
            );
        }
    }

    #[test]
    fn differences_name_the_current_value_and_what_is_missed() {
        let results = check(Profile::Edge, |key| match key {
            "net.core.somaxconn" => Some("4096".into()),
            "net.ipv4.tcp_congestion_control" => None,
            other => settings(Profile::Edge)
                .into_iter()
                .find(|s| s.key == other)
                .map(|s| s.want),
        });
        let (text, all) = report(Profile::Edge, &results);
        assert!(!all);
        assert!(
            text.contains("DIFFERS  net.core.somaxconn = 4096 (profile: 65535)"),
            "{text}"
        );
        assert!(
            text.contains("missed: Each shard's listener asks"),
            "{text}"
        );
        assert!(
            text.contains("MISSING  net.ipv4.tcp_congestion_control"),
            "{text}"
        );
        let n = results.len();
        assert!(
            text.starts_with(&format!("profile edge: {} of {n}", n - 2)),
            "{text}"
        );
    }
}
