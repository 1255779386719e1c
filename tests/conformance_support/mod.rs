//! The HTTP caching test suite (http-tests/cache-tests, published at
//! cache-tests.fyi) ported to run against edgeslab through the real binary:
//! `cases` holds the suite's tests as data (`model`), `origin` is the
//! suite's test server, `run` its client and checks.
//!
//! Every case gets its own edgeslab process (default config unless the
//! case says otherwise) and its own origin. Cases run in a batch, several
//! at once: most of their time is spent waiting (for a response to go
//! stale, or for an edge to start), so the first test function to ask for
//! a result runs every case the command line selects on a small pool of
//! threads, and each test function then reports its own case's outcome. A
//! case outside the batch (a filter this module did not read as libtest
//! did) runs on its own when its test function asks.

pub mod cases;
pub mod model;
pub mod origin;
pub mod run;

use model::Case;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

/// How many cases run at once.
const PARALLEL: usize = 8;

/// Every case of the suite, browser-only ones included.
pub fn all_cases() -> Vec<Case> {
    cases::all()
}

static BATCH: OnceLock<HashMap<String, Result<(), String>>> = OnceLock::new();

/// The outcome of the case whose test function is `name`; panics with the
/// failure. `default` lists the test functions that run by default (not
/// ignored), `all` every test function.
pub fn check(name: &str, default: &[&str], all: &[&str]) {
    let results = BATCH.get_or_init(|| {
        let filter = Filter::from_args();
        let selected: Vec<&str> = all
            .iter()
            .copied()
            .filter(|n| filter.runs(n, default.contains(n)))
            .collect();
        run_batch(&selected)
    });
    let outcome = match results.get(name) {
        Some(r) => r.clone(),
        None => run::run_case(&find(name)),
    };
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

fn find(name: &str) -> Case {
    all_cases()
        .into_iter()
        .find(|c| c.fn_name() == name)
        .unwrap_or_else(|| panic!("no suite case for the test function {name}"))
}

/// Runs the cases of these test functions, PARALLEL at a time.
fn run_batch(names: &[&str]) -> HashMap<String, Result<(), String>> {
    let cases: Vec<Case> = all_cases()
        .into_iter()
        .filter(|c| names.contains(&c.fn_name().as_str()))
        .collect();
    let queue = Mutex::new(cases);
    let results = Mutex::new(HashMap::new());
    std::thread::scope(|scope| {
        for _ in 0..PARALLEL {
            scope.spawn(|| {
                loop {
                    let Some(case) = queue.lock().expect("queue").pop() else {
                        return;
                    };
                    let outcome =
                        std::panic::catch_unwind(|| run::run_case(&case)).unwrap_or_else(|p| {
                            Err(format!(
                                "{}: panicked: {}",
                                case.id,
                                p.downcast_ref::<String>()
                                    .cloned()
                                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                                    .unwrap_or_default()
                            ))
                        });
                    results
                        .lock()
                        .expect("results")
                        .insert(case.fn_name(), outcome);
                }
            });
        }
    });
    results.into_inner().expect("results")
}

/// The tests libtest was asked to run, as far as its command line says:
/// free arguments are filters (substrings, or whole names with `--exact`),
/// `--skip` removes, `--ignored` runs only ignored tests and
/// `--include-ignored` all. Reading it wrong costs time, never a wrong
/// result: a case not in the batch runs on its own.
struct Filter {
    filters: Vec<String>,
    skips: Vec<String>,
    exact: bool,
    ignored: bool,
    include_ignored: bool,
}

impl Filter {
    fn from_args() -> Filter {
        let mut f = Filter {
            filters: Vec::new(),
            skips: Vec::new(),
            exact: false,
            ignored: false,
            include_ignored: false,
        };
        let takes_value = [
            "--test-threads",
            "--logfile",
            "--format",
            "--color",
            "--shuffle-seed",
            "-Z",
        ];
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            if a == "--skip" {
                f.skips.extend(args.next());
            } else if a == "--exact" {
                f.exact = true;
            } else if a == "--ignored" {
                f.ignored = true;
            } else if a == "--include-ignored" {
                f.include_ignored = true;
            } else if takes_value.contains(&a.as_str()) {
                args.next();
            } else if !a.starts_with('-') {
                f.filters.push(a);
            }
        }
        f
    }

    /// Whether libtest will run this test function (`by_default`: it is not
    /// ignored).
    fn runs(&self, name: &str, by_default: bool) -> bool {
        let kind = if self.include_ignored {
            true
        } else if self.ignored {
            !by_default
        } else {
            by_default
        };
        kind && self.selects(name)
    }

    fn selects(&self, name: &str) -> bool {
        let matches = |pattern: &String| {
            if self.exact {
                name == pattern
            } else {
                name.contains(pattern.as_str())
            }
        };
        (self.filters.is_empty() || self.filters.iter().any(matches))
            && !self.skips.iter().any(|s| name.contains(s.as_str()))
    }
}
