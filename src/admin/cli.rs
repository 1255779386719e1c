//! `edgeslab invalidate`: the operator's client of the invalidation API.
//! It posts the paths and tags to one node, then prints each node's state
//! as the node's report changes, until every node has applied it (or is
//! unreachable) or the wait runs out. Blocking, on the CLI's own thread.

use super::invalidations::{Accepted, NodeState, Report};
use std::io::Write;
use std::time::{Duration, Instant};

/// What the operator asked for.
pub struct InvalidateArgs<'a> {
    /// The node's admin URL, e.g. `http://127.0.0.1:9090`.
    pub admin: &'a str,
    pub token: &'a str,
    pub paths: &'a [String],
    pub tags: &'a [String],
    pub wait: Duration,
}

/// How an invalidation ended, for the exit status.
#[derive(Debug, PartialEq, Eq)]
pub enum Finished {
    /// Every node applied it.
    Complete,
    /// Some node did not acknowledge in time.
    Unreachable(Vec<String>),
    /// The report was still incomplete when the wait ran out.
    StillPending(Vec<String>),
}

/// Runs one invalidation, writing progress to `out`.
pub fn invalidate(args: &InvalidateArgs<'_>, out: &mut dyn Write) -> Result<Finished, String> {
    let base = args.admin.trim_end_matches('/');
    let base = if base.contains("://") {
        base.to_string()
    } else {
        format!("http://{base}")
    };
    let mut body = serde_json::Map::new();
    if !args.paths.is_empty() {
        body.insert("paths".into(), args.paths.to_vec().into());
    }
    if !args.tags.is_empty() {
        body.insert("tags".into(), args.tags.to_vec().into());
    }
    if body.is_empty() {
        return Err("give at least one path or --tag".into());
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let auth = format!("Bearer {}", args.token);
    let mut resp = agent
        .post(format!("{base}/invalidations"))
        .header("Authorization", &auth)
        .header("Content-Type", "application/json")
        .send(serde_json::Value::Object(body).to_string().as_bytes())
        .map_err(|e| format!("{base}: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| format!("{base}: {e}"))?;
    if !(200..300).contains(&status) {
        return Err(format!("{base} answered {status}: {}", text.trim()));
    }
    let accepted: Accepted = serde_json::from_str(&text)
        .map_err(|e| format!("{base}: unexpected answer {text:?}: {e}"))?;
    let _ = writeln!(
        out,
        "invalidation {} accepted by {}",
        accepted.id, accepted.node
    );
    let deadline = Instant::now() + args.wait;
    let mut shown: Vec<(String, NodeState)> = Vec::new();
    loop {
        let report: Option<Report> = agent
            .get(format!("{base}/invalidations/{}", accepted.id))
            .header("Authorization", &auth)
            .call()
            .ok()
            .and_then(|mut r| r.body_mut().read_to_string().ok())
            .and_then(|t| serde_json::from_str(&t).ok());
        if let Some(report) = report {
            for n in &report.nodes {
                let before = shown.iter().find(|(name, _)| *name == n.node).map(|s| s.1);
                if before != Some(n.state) {
                    let _ = writeln!(out, "  {:<24} {}", n.node, state_word(n.state));
                    shown.retain(|(name, _)| *name != n.node);
                    shown.push((n.node.clone(), n.state));
                }
            }
            if report.complete {
                let unreachable: Vec<String> = report
                    .nodes
                    .iter()
                    .filter(|n| n.state == NodeState::Unreachable)
                    .map(|n| n.node.clone())
                    .collect();
                // Progress named some nodes by their admin URL until they
                // answered; the final list names every node as it is now.
                let _ = writeln!(out, "complete: {} node(s)", report.nodes.len());
                for n in &report.nodes {
                    let _ = writeln!(out, "  {:<24} {}", n.node, state_word(n.state));
                }
                return Ok(match unreachable.is_empty() {
                    true => Finished::Complete,
                    false => Finished::Unreachable(unreachable),
                });
            }
            if Instant::now() >= deadline {
                let pending = report
                    .nodes
                    .iter()
                    .filter(|n| n.state == NodeState::Pending)
                    .map(|n| n.node.clone())
                    .collect();
                return Ok(Finished::StillPending(pending));
            }
        } else if Instant::now() >= deadline {
            return Err(format!("{base}: no report for {}", accepted.id));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn state_word(s: NodeState) -> &'static str {
    match s {
        NodeState::Pending => "pending",
        NodeState::Applied => "applied",
        NodeState::Unreachable => "UNREACHABLE",
    }
}
