//! The access log through the real binary: JSON lines in a file, every
//! request logged, and SIGUSR1 reopening the file after a rotation so that
//! no line is lost or written to the moved file.

mod support;

use std::time::Duration;
use support::*;

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

#[test]
fn json_lines_to_a_file_reopened_on_sigusr1() {
    let origin = Origin::start(|seen| Script::ok("max-age=60", seen.target.as_bytes().to_vec()));
    let dir = TempDir::new("access");
    let log = dir.path().join("access.log");
    let edge = Edge::builder()
        .origin(origin.addr)
        .toml(&format!(
            "[log]\naccess_log_path = \"{}\"\naccess_log_format = \"json\"\n",
            log.display()
        ))
        .start();
    for i in 0..10 {
        assert_eq!(get(edge.addr, &format!("/a/{}", i % 5)).status, 200);
    }
    assert!(
        eventually(Duration::from_secs(5), || lines(&log).len() == 10),
        "{:?}",
        lines(&log)
    );
    let first = lines(&log);
    // Each shard hands its lines over on its own: the file's order is the
    // order of those hand-overs, not of the requests.
    let a0: Vec<_> = first.iter().filter(|l| l["target"] == "/a/0").collect();
    assert_eq!(a0.len(), 2, "{first:?}");
    assert_eq!(a0[0]["method"], "GET");
    assert_eq!(a0[0]["status"], 200);
    assert!(a0.iter().any(|l| l["phase"] == "miss"), "{a0:?}");
    assert!(
        first
            .iter()
            .all(|l| l["time"].as_str().unwrap().ends_with('Z'))
    );
    assert_eq!(
        first.iter().filter(|l| l["phase"] == "hit").count(),
        5,
        "{first:?}"
    );
    assert!(
        !edge.stderr().contains("access: "),
        "lines go to the file only"
    );

    // logrotate: move the file, then SIGUSR1.
    let rotated = dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    edge.signal(libc::SIGUSR1);
    assert!(
        eventually(Duration::from_secs(5), || edge
            .stderr()
            .contains("access log reopened")),
        "{}",
        edge.stderr()
    );
    for _ in 0..3 {
        assert_eq!(get(edge.addr, "/after").status, 200);
    }
    assert!(
        eventually(Duration::from_secs(5), || lines(&log).len() == 3),
        "{:?}",
        lines(&log)
    );
    assert!(lines(&log).iter().all(|l| l["target"] == "/after"));
    assert_eq!(lines(&rotated).len(), 10, "the moved file got no new line");
}

#[test]
fn an_access_log_that_cannot_be_opened_stops_the_start_with_its_key() {
    let origin = Origin::start(|_| Script::ok("max-age=60", b"x".to_vec()));
    let dir = TempDir::new("access-bad");
    let stderr = Edge::builder()
        .origin(origin.addr)
        .toml(&format!(
            "[log]\naccess_log_path = \"{}\"\n",
            dir.path().join("no/such/dir/access.log").display()
        ))
        .expect_refused("its access log's directory is missing");
    assert!(
        stderr.contains("log.access_log_path: cannot open the access log"),
        "{stderr}"
    );
}
