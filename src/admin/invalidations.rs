//! Invalidations on the admin API: `POST /invalidations` applies one here
//! (journaled and synced before it is acknowledged, so it survives a crash)
//! and passes it on to every peer; `GET /invalidations/ID` reports, per
//! node, whether it is applied. A peer that already holds an id applies
//! nothing twice, so an invalidation floods the tiers (an edge's parents, a
//! regional's edges and peers) and reaches each node exactly once.
//!
//! The journal and the peer exchanges run on threads of their own: a sync
//! or a slow peer never blocks a shard. Peers are retried until they
//! acknowledge or `invalidation.peer_timeout` passes (then: unreachable);
//! an acknowledged peer's own report is merged in, so the node that took
//! the request reports every node the invalidation reached.

use crate::cache::bans::{Applied, InvalidationRequest, Journal, Rule};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

/// Where one node stands with one invalidation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeState {
    /// Not acknowledged yet (being retried).
    Pending,
    Applied,
    /// Did not acknowledge within `invalidation.peer_timeout`.
    Unreachable,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The node's name, or its admin URL until it has answered.
    pub node: String,
    pub state: NodeState,
    /// The admin URL this node was reached at (for a peer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin: Option<String>,
}

/// What `GET /invalidations/ID` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub id: String,
    /// No node is pending.
    pub complete: bool,
    pub nodes: Vec<NodeReport>,
}

impl Report {
    fn new(id: &str, nodes: Vec<NodeReport>) -> Report {
        let mut r = Report {
            id: id.to_string(),
            complete: false,
            nodes,
        };
        r.settle();
        r
    }

    fn settle(&mut self) {
        self.complete = self.nodes.iter().all(|n| n.state != NodeState::Pending);
    }

    /// Takes in what another report knows: new nodes are added, and a
    /// pending node takes a settled state; a settled state never goes back.
    fn merge(&mut self, other: &Report) {
        for n in &other.nodes {
            match self.nodes.iter_mut().find(|m| m.node == n.node) {
                Some(m) if m.state == NodeState::Pending => m.state = n.state,
                Some(_) => {}
                None => self.nodes.push(n.clone()),
            }
        }
        self.settle();
    }

    /// Sets one node's entry (renaming it from its URL once it answered).
    fn set(&mut self, was: &str, node: &str, state: NodeState) {
        let admin = self
            .nodes
            .iter()
            .find(|n| n.node == was)
            .and_then(|n| n.admin.clone());
        self.nodes.retain(|n| n.node != was || was == node);
        match self.nodes.iter_mut().find(|n| n.node == node) {
            Some(n) => {
                if n.state == NodeState::Pending {
                    n.state = state;
                }
            }
            None => self.nodes.push(NodeReport {
                node: node.to_string(),
                state,
                admin,
            }),
        }
        self.settle();
    }
}

/// What one node knows of one invalidation: its own entries (itself and
/// its direct peers) and the latest own entries of every node reachable
/// through its peers, by admin URL. The view it serves combines them; a
/// node's entries replace its previous ones, so an entry it has since
/// settled or renamed does not linger. Only own entries travel between
/// nodes (`?scope=own`), so no node's report waits on another's: the
/// reports of nodes that are each other's peers cannot wait on each other.
#[derive(Clone, Debug)]
struct Tracked {
    own: Report,
    peers: HashMap<String, Report>,
    /// Peer threads still collecting what lies behind their peer: until
    /// they are done, the view is not complete.
    collecting: usize,
}

impl Tracked {
    fn view(&self) -> Report {
        let mut view = self.own.clone();
        let mut urls: Vec<&String> = self.peers.keys().collect();
        urls.sort();
        for url in urls {
            view.merge(&self.peers[url]);
        }
        view.complete &= self.collecting == 0;
        view
    }
}

/// What `POST /invalidations` answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Accepted {
    pub id: String,
    /// The node that answered.
    pub node: String,
    /// False when the node already had this id.
    pub new: bool,
}

struct Apply {
    request: InvalidationRequest,
    reply: futures_channel::oneshot::Sender<Result<Accepted, String>>,
}

/// The admin API's handle on invalidations.
pub struct Invalidations {
    node: String,
    token: Option<String>,
    apply: crossbeam_channel::Sender<Apply>,
    reports: Arc<Mutex<HashMap<String, Tracked>>>,
    known: Arc<Mutex<std::collections::HashSet<String>>>,
}

/// How a peer is reached.
#[derive(Clone)]
struct PeerLink {
    url: String,
    token: Option<String>,
    timeout: Duration,
}

impl Invalidations {
    /// Starts the journal thread; `journal` is already open and publishing
    /// to the shards' board.
    pub fn start(
        journal: Journal,
        node: String,
        token: Option<String>,
        peers: Vec<String>,
        peer_timeout: Duration,
    ) -> std::io::Result<Invalidations> {
        let (tx, rx) = crossbeam_channel::unbounded::<Apply>();
        let reports: Arc<Mutex<HashMap<String, Tracked>>> = Arc::default();
        let held: std::collections::HashSet<String> = journal
            .list()
            .entries()
            .iter()
            .map(|b| b.id.clone())
            .collect();
        let known = Arc::new(Mutex::new(held));
        let peers: Vec<PeerLink> = peers
            .into_iter()
            .map(|p| PeerLink {
                url: peer_url(&p),
                token: token.clone(),
                timeout: peer_timeout,
            })
            .collect();
        let (thread_reports, thread_known, me) = (reports.clone(), known.clone(), node.clone());
        std::thread::Builder::new()
            .name("edgeslab-inval".into())
            .spawn(move || {
                let mut journal = journal;
                for msg in rx {
                    let answer = apply(&mut journal, &msg.request, &me, &peers, &thread_reports);
                    if let Ok(a) = &answer {
                        lock(&thread_known).insert(a.id.clone());
                    }
                    let _ = msg.reply.send(answer);
                }
            })?;
        Ok(Invalidations {
            node,
            token,
            apply: tx,
            reports,
            known,
        })
    }

    /// Whether `authorization` (the request's field) carries the token.
    pub fn authorised(&self, authorization: Option<&str>) -> Authorised {
        let Some(token) = &self.token else {
            return Authorised::NoTokenConfigured;
        };
        let given = authorization
            .and_then(|a| {
                a.strip_prefix("Bearer ")
                    .or_else(|| a.strip_prefix("bearer "))
            })
            .map(str::trim);
        match given {
            Some(g) if constant_time_eq(g.as_bytes(), token.as_bytes()) => Authorised::Yes,
            _ => Authorised::No,
        }
    }

    /// Applies a checked request here and starts passing it on.
    pub async fn submit(&self, request: InvalidationRequest) -> Result<Accepted, String> {
        let (reply, answer) = futures_channel::oneshot::channel();
        self.apply
            .send(Apply { request, reply })
            .map_err(|_| "the invalidation journal has stopped".to_string())?;
        answer
            .await
            .map_err(|_| "the invalidation journal has stopped".to_string())?
    }

    /// The report of an invalidation this node holds: every node it knows
    /// of, or with `own_only` this node and its direct peers.
    pub fn report(&self, id: &str, own_only: bool) -> Option<Report> {
        if let Some(t) = lock(&self.reports).get(id) {
            return Some(match own_only {
                true => t.own.clone(),
                false => t.view(),
            });
        }
        // Held but not started here (or before a restart): this node only.
        lock(&self.known).contains(id).then(|| {
            Report::new(
                id,
                vec![NodeReport {
                    node: self.node.clone(),
                    state: NodeState::Applied,
                    admin: None,
                }],
            )
        })
    }
}

/// The outcome of a token check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Authorised {
    Yes,
    /// Missing or wrong: 401.
    No,
    /// `admin.token` is not set: invalidations are off (403).
    NoTokenConfigured,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// "host:port" or a URL → the URL without a trailing slash.
fn peer_url(spec: &str) -> String {
    let url = if spec.contains("://") {
        spec.to_string()
    } else {
        format!("http://{spec}")
    };
    url.trim_end_matches('/').to_string()
}

/// Journals one request (synced), then starts one thread per peer.
fn apply(
    journal: &mut Journal,
    request: &InvalidationRequest,
    me: &str,
    peers: &[PeerLink],
    reports: &Arc<Mutex<HashMap<String, Tracked>>>,
) -> Result<Accepted, String> {
    let id = request.id_or_new(now_ms());
    let applied = journal
        .apply(&id, request.rules.clone(), now_ms())
        .map_err(|e| format!("cannot journal the invalidation: {e}"))?;
    let new = applied == Applied::New;
    tracing::info!(id = %id, new, rules = request.rules.len(), "invalidation applied");
    if new {
        let mut nodes = vec![NodeReport {
            node: me.to_string(),
            state: NodeState::Applied,
            admin: None,
        }];
        nodes.extend(peers.iter().map(|p| NodeReport {
            node: p.url.clone(),
            state: NodeState::Pending,
            admin: Some(p.url.clone()),
        }));
        let tracked = Tracked {
            own: Report::new(&id, nodes),
            peers: HashMap::new(),
            collecting: peers.len(),
        };
        lock(reports).insert(id.clone(), tracked);
        let body = propagated_body(&id, &request.rules);
        for peer in peers {
            let url = peer.url.clone();
            let (link, text, key, shared) =
                (peer.clone(), body.clone(), id.clone(), reports.clone());
            let spawned = std::thread::Builder::new()
                .name("edgeslab-peer".into())
                .spawn(move || {
                    propagate(&link, &key, &text, &shared);
                    if let Some(t) = lock(&shared).get_mut(&key) {
                        t.collecting -= 1;
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a peer thread: {e}");
                if let Some(t) = lock(reports).get_mut(&id) {
                    t.collecting -= 1;
                    t.own.set(&url, &url, NodeState::Unreachable);
                }
            }
        }
    }
    Ok(Accepted {
        id,
        node: me.to_string(),
        new,
    })
}

/// The JSON a peer receives: the same rules under the same id.
fn propagated_body(id: &str, rules: &[Rule]) -> String {
    let mut paths = Vec::new();
    let mut tags = Vec::new();
    for r in rules {
        match r {
            Rule::Exact(p) => paths.push(p.clone()),
            Rule::Prefix(p) => paths.push(format!("{p}*")),
            Rule::Tag(t) => tags.push(t.clone()),
        }
    }
    let mut body = serde_json::Map::new();
    body.insert("id".into(), id.into());
    if !paths.is_empty() {
        body.insert("paths".into(), paths.into());
    }
    if !tags.is_empty() {
        body.insert("tags".into(), tags.into());
    }
    serde_json::Value::Object(body).to_string()
}

/// Delay before retrying a peer, doubling up to this.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Between two reads of an acknowledged peer's report.
const POLL_EVERY: Duration = Duration::from_millis(200);

/// Sends an invalidation to one peer until it acknowledges (or the peer
/// timeout passes), then follows the peer's own report until it is complete.
fn propagate(peer: &PeerLink, id: &str, body: &str, reports: &Mutex<HashMap<String, Tracked>>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let auth = peer.token.as_ref().map(|t| format!("Bearer {t}"));
    let update = |f: &dyn Fn(&mut Tracked)| {
        if let Some(t) = lock(reports).get_mut(id) {
            f(t);
        }
    };
    let deadline = Instant::now() + peer.timeout;
    let mut backoff = Duration::from_millis(100);
    let name = loop {
        let mut req = agent
            .post(format!("{}/invalidations", peer.url))
            .header("Content-Type", "application/json");
        if let Some(a) = &auth {
            req = req.header("Authorization", a);
        }
        let answer = req.send(body.as_bytes()).ok().and_then(|mut resp| {
            let ok = resp.status().is_success();
            let text = resp.body_mut().read_to_string().ok()?;
            if !ok {
                crate::warn_limited!(peer = %peer.url, status = resp.status().as_u16(), "peer refused an invalidation: {}", text.trim());
                return None;
            }
            serde_json::from_str::<Accepted>(&text).ok()
        });
        if let Some(a) = answer {
            update(&|t| t.own.set(&peer.url, &a.node, NodeState::Applied));
            break a.node;
        }
        if Instant::now() + backoff > deadline {
            tracing::warn!(peer = %peer.url, id, "peer did not acknowledge the invalidation: unreachable");
            update(&|t| t.own.set(&peer.url, &peer.url, NodeState::Unreachable));
            return;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    };
    // The peer passes it on too: collect the own entries of every node
    // reachable through it until none is pending (or time runs out).
    let follow_until = Instant::now() + peer.timeout + Duration::from_secs(5);
    while Instant::now() < follow_until {
        let mut queue = vec![peer.url.clone()];
        let mut visited = std::collections::HashSet::new();
        let mut settled = true;
        while let Some(url) = queue.pop() {
            if !visited.insert(url.clone()) {
                continue;
            }
            let mut req = agent.get(format!("{url}/invalidations/{id}?scope=own"));
            if let Some(a) = &auth {
                req = req.header("Authorization", a);
            }
            let theirs = req.call().ok().and_then(|mut resp| {
                let text = resp.body_mut().read_to_string().ok()?;
                serde_json::from_str::<Report>(&text).ok()
            });
            let Some(theirs) = theirs else {
                settled = false;
                continue;
            };
            settled &= theirs.complete;
            for n in &theirs.nodes {
                if n.state == NodeState::Applied
                    && let Some(next) = &n.admin
                {
                    queue.push(next.clone());
                }
            }
            update(&|t| {
                t.peers.insert(url.clone(), theirs.clone());
            });
        }
        if settled {
            return;
        }
        std::thread::sleep(POLL_EVERY);
    }
    tracing::warn!(peer = %name, id, "the nodes behind this peer did not all settle in time");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(n: &str, s: NodeState) -> NodeReport {
        NodeReport {
            node: n.into(),
            state: s,
            admin: None,
        }
    }

    #[test]
    fn reports_merge_without_going_back() {
        let mut mine = Report::new(
            "x",
            vec![
                node("edge-1", NodeState::Applied),
                node("http://r:1", NodeState::Pending),
            ],
        );
        assert!(!mine.complete);
        mine.set("http://r:1", "regional", NodeState::Applied);
        assert_eq!(mine.nodes.len(), 2);
        assert!(mine.complete);
        let theirs = Report::new(
            "x",
            vec![
                node("regional", NodeState::Applied),
                node("edge-1", NodeState::Pending),
                node("edge-2", NodeState::Pending),
            ],
        );
        mine.merge(&theirs);
        assert_eq!(mine.nodes.len(), 3);
        assert!(!mine.complete, "edge-2 is pending");
        assert_eq!(mine.nodes[0].state, NodeState::Applied, "never goes back");
        let later = Report::new("x", vec![node("edge-2", NodeState::Applied)]);
        mine.merge(&later);
        assert!(mine.complete);
    }

    #[test]
    fn the_propagated_body_parses_back_to_the_same_rules() {
        let rules = vec![
            Rule::Exact("/a.jpg".into()),
            Rule::Prefix("/images/".into()),
            Rule::Tag("product-42".into()),
        ];
        let body = propagated_body("abc123", &rules);
        let back = InvalidationRequest::parse(body.as_bytes()).expect("parses");
        assert_eq!(back.rules, rules);
        assert_eq!(back.id.as_deref(), Some("abc123"));
    }

    #[test]
    fn tokens_are_checked() {
        let (tx, _rx) = crossbeam_channel::unbounded();
        let inv = Invalidations {
            node: "n".into(),
            token: Some("s3cret".into()),
            apply: tx,
            reports: Arc::default(),
            known: Arc::default(),
        };
        assert_eq!(inv.authorised(Some("Bearer s3cret")), Authorised::Yes);
        assert_eq!(inv.authorised(Some("Bearer wrong")), Authorised::No);
        assert_eq!(inv.authorised(Some("s3cret")), Authorised::No);
        assert_eq!(inv.authorised(None), Authorised::No);
        let open = Invalidations { token: None, ..inv };
        assert_eq!(
            open.authorised(Some("Bearer x")),
            Authorised::NoTokenConfigured
        );
    }
}
