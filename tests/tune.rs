//! `edgeslab tune`: the built-in sysctl profiles are the files in `tuning/`,
//! and `--check` compares each setting with the running kernel as read
//! here from `/proc/sys`, naming every difference.

mod support;

use std::time::Duration;
use support::*;

#[test]
fn profiles_print_as_shipped_and_check_against_the_running_kernel() {
    for profile in ["edge", "regional"] {
        let out = run_bin(&["tune", "--profile", profile], Duration::from_secs(30));
        assert!(out.status.success());
        let shipped = std::fs::read_to_string(format!(
            "{}/tuning/{profile}.conf",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), shipped);

        let out = run_bin(
            &["tune", "--check", "--profile", profile],
            Duration::from_secs(30),
        );
        let report = String::from_utf8_lossy(&out.stdout).to_string();
        let mut differ = 0;
        for line in shipped
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains('='))
        {
            let (key, want) = line.split_once('=').unwrap();
            let (key, want) = (
                key.trim(),
                want.split_whitespace().collect::<Vec<_>>().join(" "),
            );
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            let current = std::fs::read_to_string(path)
                .ok()
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "));
            let expected = match current {
                Some(c) if c == want => format!("ok       {key} = {want}"),
                Some(c) => format!("DIFFERS  {key} = {c} (profile: {want})"),
                None => format!("MISSING  {key}"),
            };
            differ += usize::from(!expected.starts_with("ok"));
            assert!(report.contains(&expected), "{expected:?} in\n{report}");
        }
        assert_eq!(
            out.status.code(),
            Some(if differ == 0 { 0 } else { 1 }),
            "{report}"
        );
    }
}
