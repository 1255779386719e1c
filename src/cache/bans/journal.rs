//! The ban journal: the durable copy of the bans in force, and the one
//! writer of the [`BanBoard`]. An append-only file of JSON lines, one per
//! invalidation (`{"ban": {"id", "at_ms", "rules"}}`, all of a request's
//! rules in one line, so a crash keeps a request whole or not at all) and,
//! after a compaction, one `{"floor": ms}` line first. Each append is
//! followed by `sync_data` before [`Journal::apply`] returns, so an
//! invalidation that was acknowledged survives SIGKILL and power loss.
//!
//! Plain blocking std I/O: it runs rarely and only on the admin path,
//! never on a shard's executor. One process owns the file.

use super::{Ban, BanBoard, BanList, Rule};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// One applied invalidation, as a line holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Invalidation {
    id: String,
    at_ms: u64,
    rules: Vec<Rule>,
}

/// A line of the file, as read.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Record {
    Floor(u64),
    Ban(Invalidation),
}

/// A line of the file, as written (borrowing what it writes).
#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum RecordRef<'a> {
    Floor(u64),
    Ban(&'a Invalidation),
}

/// What [`Journal::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// Appended, synced and published.
    New,
    /// The id is already in force (a peer propagating it again): nothing
    /// written.
    AlreadySeen,
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("ban journal {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("ban journal {}, line {line}: {why}", path.display())]
    BadLine {
        path: PathBuf,
        line: usize,
        why: String,
    },
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    dir: PathBuf,
    /// Opened for appending.
    file: File,
    /// The file's length up to its last whole record: where a failed
    /// append is cut back to.
    len: u64,
    retain: Duration,
    floor_ms: u64,
    /// Sorted by `at_ms`.
    invalidations: Vec<Invalidation>,
    ids: HashSet<String>,
    board: BanBoard,
    /// Set while `file` may not be appended to: a failed append that could
    /// not be cut back (the next record would be glued to its torn end), or
    /// a rewrite that replaced the file but could not reopen it.
    broken: bool,
}

impl Journal {
    /// Loads the journal at `path` (created, with its directory, when
    /// missing), drops the bans older than `retain` into the floor and
    /// publishes the rest on [`Journal::board`]. A torn last line (a crash
    /// mid-append: never acknowledged) is dropped with a warning; any other
    /// unreadable line is an error naming it.
    pub fn open(
        path: impl Into<PathBuf>,
        retain: Duration,
        now_ms: u64,
    ) -> Result<Journal, JournalError> {
        let path = path.into();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let io_err = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(&dir).map_err(io_err)?;
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(e)),
        };
        let loaded = load(&path, &bytes)?;
        let file = open_append(&path).map_err(io_err)?;
        // The file's name must be durable before a ban in it is acknowledged.
        sync_dir(&dir).map_err(io_err)?;
        let mut journal = Journal {
            dir,
            file,
            len: bytes.len() as u64,
            retain,
            floor_ms: loaded.floor_ms,
            ids: loaded.invalidations.iter().map(|i| i.id.clone()).collect(),
            invalidations: loaded.invalidations,
            board: BanBoard::default(),
            broken: false,
            path,
        };
        journal.publish();
        journal
            .compact_with(now_ms, loaded.needs_rewrite)
            .map_err(|source| JournalError::Io {
                path: journal.path.clone(),
                source,
            })?;
        Ok(journal)
    }

    /// Records the invalidation `id` (its rules in force for entries born
    /// up to `now_ms`), synced to the device before it returns: acknowledge
    /// the request only on `Ok`. An id already in force is not recorded
    /// again.
    pub fn apply(&mut self, id: &str, rules: Vec<Rule>, now_ms: u64) -> io::Result<Applied> {
        if self.ids.contains(id) {
            return Ok(Applied::AlreadySeen);
        }
        if rules.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "an invalidation with no rules",
            ));
        }
        if self.broken {
            return Err(io::Error::other(format!(
                "ban journal {}: an earlier write failed and could not be undone; \
                 restart to reload it",
                self.path.display()
            )));
        }
        let invalidation = Invalidation {
            id: id.to_owned(),
            // Strictly after every entry born in the current millisecond,
            // which may have been fetched before the ban.
            at_ms: now_ms.saturating_add(1),
            rules,
        };
        let mut line = serde_json::to_vec(&RecordRef::Ban(&invalidation))?;
        line.push(b'\n');
        if let Err(e) = self
            .file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
        {
            if self
                .file
                .set_len(self.len)
                .and_then(|()| self.file.sync_data())
                .is_err()
            {
                self.broken = true;
            }
            return Err(e);
        }
        self.len += line.len() as u64;
        self.ids.insert(invalidation.id.clone());
        let at = invalidation.at_ms;
        let pos = self.invalidations.partition_point(|i| i.at_ms <= at);
        self.invalidations.insert(pos, invalidation);
        self.publish();
        Ok(Applied::New)
    }

    /// Drops the bans older than `retain` into the floor and rewrites the
    /// file when any was dropped (as `open` does).
    pub fn compact(&mut self, now_ms: u64) -> io::Result<()> {
        self.compact_with(now_ms, false)
    }

    /// The board this journal publishes to.
    pub fn board(&self) -> BanBoard {
        self.board.clone()
    }

    /// The bans in force.
    pub fn list(&self) -> Arc<BanList> {
        self.board.current()
    }

    /// Whether the invalidation `id` is in force.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Every entry born before this is banned (0: none).
    pub fn floor_ms(&self) -> u64 {
        self.floor_ms
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn publish(&self) {
        let bans = self
            .invalidations
            .iter()
            .flat_map(|i| {
                i.rules.iter().map(|rule| Ban {
                    id: i.id.clone(),
                    at_ms: i.at_ms,
                    rule: rule.clone(),
                })
            })
            .collect();
        self.board.publish(BanList::new(bans, self.floor_ms));
    }

    fn compact_with(&mut self, now_ms: u64, rewrite_anyway: bool) -> io::Result<()> {
        let retain_ms = u64::try_from(self.retain.as_millis()).unwrap_or(u64::MAX);
        // Sorted by at_ms, so the expired ones come first.
        let cut = self
            .invalidations
            .partition_point(|i| now_ms.saturating_sub(i.at_ms) > retain_ms);
        if cut == 0 && !rewrite_anyway {
            return Ok(());
        }
        if cut > 0 {
            // In memory first: the floor bans all that the dropped bans
            // did, so the list never bans less, whatever the rewrite does.
            let kept = self.invalidations.split_off(cut);
            let dropped = std::mem::replace(&mut self.invalidations, kept);
            for i in &dropped {
                self.ids.remove(&i.id);
            }
            let newest_dropped = dropped.last().map_or(0, |i| i.at_ms);
            self.floor_ms = self.floor_ms.max(newest_dropped);
            self.publish();
        }
        self.rewrite()
    }

    /// Replaces the file with the records in memory: a synced temporary
    /// file renamed over it, then the directory synced, so a crash leaves
    /// the old file or the new one, whole.
    fn rewrite(&mut self) -> io::Result<()> {
        let mut bytes = Vec::new();
        if self.floor_ms > 0 {
            serde_json::to_writer(&mut bytes, &RecordRef::Floor(self.floor_ms))?;
            bytes.push(b'\n');
        }
        for i in &self.invalidations {
            serde_json::to_writer(&mut bytes, &RecordRef::Ban(i))?;
            bytes.push(b'\n');
        }
        let mut tmp_name = self.path.file_name().unwrap_or_default().to_os_string();
        tmp_name.push(".tmp");
        let tmp = self.path.with_file_name(tmp_name);
        // Best effort on failure: a stale temporary file is overwritten
        // next time.
        write_synced(&tmp, &bytes)
            .and_then(|()| fs::rename(&tmp, &self.path))
            .inspect_err(|_| {
                let _ = fs::remove_file(&tmp);
            })?;
        // The path names the new file now: appends must go there, never to
        // the old one.
        self.broken = true;
        self.file = open_append(&self.path)?;
        self.len = bytes.len() as u64;
        self.broken = false;
        sync_dir(&self.dir)
    }
}

/// What a journal file holds, sorted, its ids deduplicated.
struct Loaded {
    floor_ms: u64,
    invalidations: Vec<Invalidation>,
    /// The file does not end with a whole line, or repeats an id.
    needs_rewrite: bool,
}

fn load(path: &Path, bytes: &[u8]) -> Result<Loaded, JournalError> {
    let mut loaded = Loaded {
        floor_ms: 0,
        invalidations: Vec::new(),
        needs_rewrite: false,
    };
    let mut ids = HashSet::new();
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // What follows the last newline: empty unless the last write was torn.
    let tail = lines.len() - 1;
    for (i, line) in lines.iter().enumerate() {
        if i == tail && !line.is_empty() {
            loaded.needs_rewrite = true;
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        let record = match serde_json::from_slice::<Record>(line) {
            Ok(record) => record,
            Err(e) if i == tail => {
                tracing::warn!(
                    "ban journal {}, line {}: ignoring a torn last line ({e}); \
                     its invalidation was never acknowledged",
                    path.display(),
                    i + 1
                );
                continue;
            }
            Err(e) => {
                return Err(JournalError::BadLine {
                    path: path.to_path_buf(),
                    line: i + 1,
                    why: e.to_string(),
                });
            }
        };
        match record {
            Record::Floor(ms) => loaded.floor_ms = loaded.floor_ms.max(ms),
            Record::Ban(invalidation) => {
                if ids.insert(invalidation.id.clone()) {
                    loaded.invalidations.push(invalidation);
                } else {
                    loaded.needs_rewrite = true;
                }
            }
        }
    }
    loaded.invalidations.sort_by_key(|i| i.at_ms);
    Ok(loaded)
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Makes the directory's entries (a created or renamed file) durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
