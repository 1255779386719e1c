//! Unit tests of `cache::bans`: invalidation bodies, rule matching on key
//! texts and tags, the born-before and floor rules, and the journal.

use super::*;
use crate::cache::store::device::random_u64;
use crate::http::{Headers, ResponseHead};
use std::cell::Cell;
use std::path::PathBuf;
use std::time::Duration;

fn parse(body: &str) -> Result<InvalidationRequest, String> {
    InvalidationRequest::parse(body.as_bytes()).map_err(|e| e.to_string())
}

fn exact(t: &str) -> Rule {
    Rule::Exact(t.into())
}

fn prefix(p: &str) -> Rule {
    Rule::Prefix(p.into())
}

fn tag(t: &str) -> Rule {
    Rule::Tag(t.into())
}

#[test]
fn a_body_becomes_rules() {
    let r = parse(r#"{"paths": ["/a.jpg", "/images/*", "/*"], "tags": ["product-42"]}"#).unwrap();
    assert_eq!(r.id, None);
    assert_eq!(
        r.rules,
        [
            exact("/a.jpg"),
            prefix("/images/"),
            prefix("/"),
            tag("product-42")
        ]
    );
    let r = parse(r#"{"tags": ["t"], "id": "0123abcd-x_y.z"}"#).unwrap();
    assert_eq!(r.id.as_deref(), Some("0123abcd-x_y.z"));
    assert_eq!(r.id_or_new(5), "0123abcd-x_y.z");
    assert_eq!(r.rules, [tag("t")]);
    // A prefix may end inside the query; null is the same as absent.
    let r = parse(r#"{"paths": ["/s?q=1&r=*"], "tags": null}"#).unwrap();
    assert_eq!(r.rules, [prefix("/s?q=1&r=")]);
    let items: Vec<String> = (0..MAX_ITEMS).map(|i| format!("\"/{i}\"")).collect();
    let r = parse(&format!(r#"{{"paths": [{}]}}"#, items.join(","))).unwrap();
    assert_eq!(r.rules.len(), MAX_ITEMS);
}

#[test]
fn paths_are_normalised_as_keys_are() {
    let rules = |body: &str| parse(body).unwrap().rules;
    assert_eq!(rules(r#"{"paths": ["/x/../a.jpg"]}"#), [exact("/a.jpg")]);
    assert_eq!(
        rules(r#"{"paths": ["/%7efoo/%2e%2e/b%2fc?q=%2e"]}"#),
        [exact("/b%2Fc?q=%2e")]
    );
    assert_eq!(rules(r#"{"paths": ["/a/./b/../*"]}"#), [prefix("/a/")]);
    // The exact rule and a key built from the same request agree.
    let key = crate::cache::key::CacheKey::new(
        "http",
        "h",
        &crate::http::target::normalise_origin_form("/x/%2E%2E/a.jpg").unwrap(),
        &Default::default(),
    );
    assert_eq!(key_target(key.as_str()), Some("/a.jpg"));
}

#[test]
fn bad_bodies_are_refused_naming_the_field() {
    let cases = [
        (r#"{}"#, r#"give "paths", "tags" or both"#),
        (
            r#"{"paths": []}"#,
            "paths: empty list (leave the field out instead)",
        ),
        (
            r#"{"paths": ["/a"], "tags": []}"#,
            "tags: empty list (leave the field out instead)",
        ),
        (
            r#"{"paths": ["/a", "b.jpg"]}"#,
            r#"paths[1]: must start with "/""#,
        ),
        (r#"{"paths": ["*"]}"#, r#"paths[0]: must start with "/""#),
        (r#"{"paths": ["/a*b"]}"#, r#"paths[0]: "*" only at the end"#),
        (
            r#"{"paths": ["/a/**"]}"#,
            r#"paths[0]: "*" only at the end"#,
        ),
        (
            r#"{"paths": ["/a b"]}"#,
            "paths[0]: only visible ASCII: percent-encode spaces, control characters and other bytes",
        ),
        (
            r#"{"paths": ["/caf\u00e9"]}"#,
            "paths[0]: only visible ASCII: percent-encode spaces, control characters and other bytes",
        ),
        (
            r#"{"paths": ["/a#b"]}"#,
            r##"paths[0]: no "#": a fragment never reaches the cache"##,
        ),
        (
            r#"{"paths": ["/../etc"]}"#,
            "paths[0]: the request path climbs above the root with '..'",
        ),
        (
            r#"{"paths": ["/a%zz"]}"#,
            "paths[0]: malformed percent-encoding in the request path",
        ),
        (r#"{"tags": ["a", ""]}"#, "tags[1]: empty"),
        (
            r#"{"tags": ["a b"]}"#,
            "tags[0]: no whitespace or control characters",
        ),
        (
            r#"{"tags": ["a\u0001"]}"#,
            "tags[0]: no whitespace or control characters",
        ),
        (
            r#"{"tags": ["a"], "id": ""}"#,
            r#"id: 1 to 64 characters of A-Z, a-z, 0-9, "-", "_" and ".""#,
        ),
        (
            r#"{"tags": ["a"], "id": "a b"}"#,
            r#"id: 1 to 64 characters of A-Z, a-z, 0-9, "-", "_" and ".""#,
        ),
    ];
    for (body, message) in cases {
        assert_eq!(parse(body), Err(message.to_owned()), "{body}");
    }
    let long = format!(r#"{{"paths": ["/{}"]}}"#, "a".repeat(MAX_ITEM_BYTES));
    assert_eq!(parse(&long), Err("paths[0]: longer than 8192 bytes".into()));
    let items: Vec<&str> = vec![r#""t""#; MAX_ITEMS + 1];
    let many = format!(r#"{{"tags": [{}]}}"#, items.join(","));
    assert_eq!(parse(&many), Err("tags: more than 1000 items".into()));

    let e = parse(r#"{"paths": ["/a"], "purge": true}"#).unwrap_err();
    assert!(
        e.starts_with("invalid JSON body: unknown field `purge`"),
        "{e}"
    );
    let e = parse(r#"{"paths": "/a"}"#).unwrap_err();
    assert!(e.starts_with("invalid JSON body: invalid type"), "{e}");
    let e = parse("paths=/a").unwrap_err();
    assert!(e.starts_with("invalid JSON body"), "{e}");
}

#[test]
fn new_ids_are_16_hex_digits_and_differ() {
    let a = new_id(1_700_000_000_000);
    let b = new_id(1_700_000_000_000);
    assert_eq!(a.len(), 16);
    assert!(
        a.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    assert_ne!(a, b);
    let generated = parse(r#"{"tags": ["t"]}"#).unwrap().id_or_new(7);
    assert_eq!(generated.len(), 16);
}

#[test]
fn the_target_is_cut_out_of_any_key_text() {
    let cases = [
        ("http://h:80/a.jpg", Some("/a.jpg")),
        ("https://h:443/a.jpg?x=1", Some("/a.jpg?x=1")),
        ("http://::1:8080/x?q", Some("/x?q")),
        (
            "http://h:80/a.jpg vary;e=0000000000000001;accept-encoding=gzip",
            Some("/a.jpg"),
        ),
        ("http://h:80/big part=1048576/3", Some("/big")),
        ("http://h:80/a k:device=mobile part=10/2", Some("/a")),
        ("http://h:80 vary;e=1/2", None),
        ("no scheme/a", None),
    ];
    for (key, target) in cases {
        assert_eq!(key_target(key), target, "{key}");
    }
}

fn ban(id: &str, at_ms: u64, rule: Rule) -> Ban {
    Ban {
        id: id.into(),
        at_ms,
        rule,
    }
}

fn no_tags() -> Vec<String> {
    Vec::new()
}

#[test]
fn exact_prefix_and_tag_rules_match_targets_on_any_host() {
    let list = BanList::new(
        vec![
            ban("t", 100, tag("product-42")),
            ban("e", 100, exact("/a.jpg")),
            ban("p", 100, prefix("/images/")),
        ],
        0,
    );
    let banned = |key: &str| list.bans(key, no_tags, 99);
    assert!(banned("http://h:80/a.jpg"));
    assert!(banned("https://other.example:8443/a.jpg"));
    assert!(banned("http://h:80/a.jpg vary;e=0000000000000001;accept=x"));
    assert!(banned("http://h:80/a.jpg part=1048576/0"));
    assert!(banned("http://h:80/a.jpg k:device=mobile"));
    assert!(!banned("http://h:80/a.jpg?v=2"), "exact includes the query");
    assert!(!banned("http://h:80/a.jpgx"));
    assert!(!banned("http://h:80/b/a.jpg"));
    assert!(banned("http://h:80/images/"));
    assert!(banned("http://h:80/images/x/y.png?s=1 part=10/1"));
    assert!(!banned("http://h:80/images"));
    assert!(!banned("http://h:80/imagesx/y.png"));
    // Tags, case-insensitively, from whatever the caller reads them from.
    let tagged = |tags: &[&str]| {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        list.bans("http://h:80/other", || tags, 99)
    };
    assert!(tagged(&["x", "Product-42"]));
    assert!(!tagged(&["product-4", "product-420"]));
    assert!(!tagged(&[]));
    // "/*": everything.
    let all = BanList::new(vec![ban("all", 100, prefix("/"))], 0);
    assert!(all.bans("http://h:80/", no_tags, 0));
    assert!(all.bans("http://x:81/any/thing?q vary;e=1", no_tags, 99));
}

#[test]
fn a_ban_applies_only_to_entries_born_before_it() {
    let list = BanList::new(
        vec![
            ban("old", 100, exact("/a")),
            ban("new", 300, exact("/a")),
            ban("p1", 150, prefix("/old/")),
            ban("p2", 250, prefix("/new/")),
        ],
        0,
    );
    assert!(list.bans("http://h:80/a", no_tags, 299));
    assert!(!list.bans("http://h:80/a", no_tags, 300));
    assert!(!list.bans("http://h:80/a", no_tags, 301));
    // Newer prefixes are checked first and the scan stops at older ones.
    assert!(list.bans("http://h:80/old/x", no_tags, 149));
    assert!(!list.bans("http://h:80/old/x", no_tags, 200));
    assert!(list.bans("http://h:80/new/x", no_tags, 200));
    assert!(!list.bans("http://h:80/new/x", no_tags, 250));
}

#[test]
fn tags_are_read_only_when_a_tag_ban_could_apply() {
    let list = BanList::new(vec![ban("t", 100, tag("a")), ban("e", 200, exact("/x"))], 0);
    let calls = Cell::new(0);
    let counted = || {
        calls.set(calls.get() + 1);
        vec!["a".to_owned()]
    };
    assert!(!list.bans("http://h:80/y", counted, 150));
    assert!(!list.bans("http://h:80/y", counted, 500));
    assert_eq!(calls.get(), 0, "no tag ban is newer than these entries");
    assert!(list.bans("http://h:80/x", counted, 50), "the path decides");
    assert_eq!(calls.get(), 0);
    assert!(list.bans("http://h:80/y", counted, 50));
    assert_eq!(calls.get(), 1);
}

#[test]
fn the_floor_bans_everything_born_before_it() {
    let list = BanList::new(vec![ban("e", 900, exact("/x"))], 500);
    assert!(list.bans("http://h:80/anything", no_tags, 499));
    assert!(!list.bans("http://h:80/anything", no_tags, 500));
    assert!(list.bans("http://h:80/x", no_tags, 899));
    assert!(!list.bans("http://h:80/x", no_tags, 900));
    let only_floor = BanList::new(Vec::new(), 500);
    assert!(!only_floor.is_empty());
    assert!(only_floor.bans("http://h:80/", no_tags, 0));
    assert!(!only_floor.bans("http://h:80/", no_tags, 500));
    let empty = BanList::default();
    assert!(empty.is_empty());
    assert!(!empty.bans("http://h:80/", no_tags, 0));
}

#[test]
fn tags_come_from_the_configured_fields() {
    let fields = TagFields::default();
    let headers = Headers::from_fields(&[
        ("Surrogate-Key", " a  b\tc "),
        ("cache-tag", "x, y,,z"),
        ("Other", "no"),
        ("Cache-Tag", "w"),
    ]);
    let all = ["a", "b", "c", "x", "y", "z", "w"];
    assert_eq!(fields.of_headers(&headers), all);
    let mut head = ResponseHead::new(200);
    head.headers = headers;
    assert_eq!(fields.of_response(&head), all);
    // A stored head, written by hand as the store keeps it.
    let stored = b"HTTP/1.1 200 OK\r\nsurrogate-key: a b\r\nCache-Tag: c, d\r\n\
                   X-Cache-Tag: no\r\n\r\n";
    assert_eq!(fields.of_stored_head(stored), ["a", "b", "c", "d"]);
    // The same bytes our encoder writes.
    let mut encoded = Vec::new();
    head.encode_as_received(&mut encoded);
    assert_eq!(
        fields.of_stored_head(&encoded),
        ["a", "b", "c", "x", "y", "z", "w"]
    );
    // A Vary marker stands where a head would and has no tags.
    assert!(
        fields
            .of_stored_head(b"EDGESLAB-VARY/1 0000000000000001 accept\r\n")
            .is_empty()
    );
    let custom = TagFields::new(vec![TagField::new("X-Tags", TagSeparator::Comma)]);
    assert_eq!(custom.fields().len(), 1);
    assert_eq!(custom.of_stored_head(stored), Vec::<String>::new());
    assert_eq!(
        custom.of_stored_head(b"HTTP/1.1 200 OK\r\nx-tags: p q, r\r\n\r\n"),
        ["p q", "r"]
    );
    // As the lookup path would call it.
    let list = BanList::new(vec![ban("t", 100, tag("D"))], 0);
    assert!(list.bans("http://h:80/z", || fields.of_stored_head(stored), 10));
}

#[test]
fn readers_see_what_the_board_publishes() {
    fn shared<T: Send + Sync + Clone>() {}
    fn sendable<T: Send>() {}
    shared::<BanBoard>();
    sendable::<BanReader>();
    let board = BanBoard::default();
    let mut reader = board.reader();
    assert!(reader.current().is_empty());
    let publisher = board.clone();
    std::thread::spawn(move || {
        publisher.publish(BanList::new(vec![ban("e", 10, exact("/x"))], 0));
    })
    .join()
    .unwrap();
    assert_eq!(reader.current().entries().len(), 1);
    assert_eq!(board.current().entries().len(), 1);
    assert!(reader.current().bans("http://h:80/x", no_tags, 9));
}

/// A directory under the system's temporary one, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        TempDir(std::env::temp_dir().join(format!("edgeslab-bans-{tag}-{:016x}", random_u64())))
    }

    /// A journal path in a subdirectory that does not exist yet.
    fn journal(&self) -> PathBuf {
        self.0.join("state").join("bans.jsonl")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const DAY: Duration = Duration::from_secs(86_400);

fn lines(path: &std::path::Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "{text:?}");
    text.lines().map(str::to_owned).collect()
}

#[test]
fn the_journal_round_trips_and_publishes() {
    let dir = TempDir::new("round-trip");
    let path = dir.journal();
    let mut journal = Journal::open(&path, DAY, 1_000).unwrap();
    assert!(journal.list().is_empty());
    let mut reader = journal.board().reader();
    let applied = journal
        .apply("one", vec![exact("/a"), tag("t")], 1_000)
        .unwrap();
    assert_eq!(applied, Applied::New);
    assert!(reader.current().bans("http://h:80/a", no_tags, 1_000));
    assert!(!reader.current().bans("http://h:80/a", no_tags, 1_001));
    journal.apply("two", vec![prefix("/i/")], 2_000).unwrap();
    assert_eq!(lines(&path).len(), 2);
    let before = journal.list().entries().to_vec();
    assert_eq!(
        before,
        [
            ban("one", 1_001, exact("/a")),
            ban("one", 1_001, tag("t")),
            ban("two", 2_001, prefix("/i/"))
        ]
    );
    drop(journal);

    let again = Journal::open(&path, DAY, 3_000).unwrap();
    assert_eq!(again.list().entries(), before);
    assert!(again.contains("one") && again.contains("two"));
    assert_eq!(again.floor_ms(), 0);
    assert_eq!(again.path(), path);
}

#[test]
fn an_id_already_in_force_is_not_appended_again() {
    let dir = TempDir::new("dedup");
    let path = dir.journal();
    let mut journal = Journal::open(&path, DAY, 0).unwrap();
    assert_eq!(
        journal.apply("x", vec![exact("/a")], 10).unwrap(),
        Applied::New
    );
    let len = std::fs::metadata(&path).unwrap().len();
    let again = journal.apply("x", vec![exact("/b")], 20).unwrap();
    assert_eq!(again, Applied::AlreadySeen);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    assert_eq!(journal.list().entries().len(), 1);
    drop(journal);
    let mut reopened = Journal::open(&path, DAY, 30).unwrap();
    let applied = reopened.apply("x", vec![exact("/b")], 30).unwrap();
    assert_eq!(applied, Applied::AlreadySeen);
    let e = reopened.apply("y", Vec::new(), 30).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn a_torn_last_line_is_dropped_and_appends_stay_whole() {
    let dir = TempDir::new("torn");
    let path = dir.journal();
    let mut journal = Journal::open(&path, DAY, 0).unwrap();
    journal.apply("kept", vec![exact("/a")], 10).unwrap();
    drop(journal);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(br#"{"ban":{"id":"torn","at_ms":2"#);
    std::fs::write(&path, &bytes).unwrap();

    let mut journal = Journal::open(&path, DAY, 20).unwrap();
    assert!(journal.contains("kept") && !journal.contains("torn"));
    assert_eq!(lines(&path).len(), 1, "the torn tail is gone from the file");
    journal.apply("next", vec![exact("/b")], 30).unwrap();
    drop(journal);
    let journal = Journal::open(&path, DAY, 40).unwrap();
    assert!(journal.contains("kept") && journal.contains("next"));

    // A whole last record that only lacks its newline is kept.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(br#"{"ban":{"id":"whole","at_ms":50,"rules":[{"tag":"t"}]}}"#);
    std::fs::write(&path, &bytes).unwrap();
    let journal = Journal::open(&path, DAY, 60).unwrap();
    assert!(journal.contains("whole"));
    assert_eq!(lines(&path).len(), 3);
}

#[test]
fn a_bad_line_before_the_last_is_an_error_naming_it() {
    let dir = TempDir::new("bad-line");
    let path = dir.journal();
    let mut journal = Journal::open(&path, DAY, 0).unwrap();
    journal.apply("a", vec![exact("/a")], 10).unwrap();
    drop(journal);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"ban\":{\"id\":\"b\",\"at_ms\":20,\"rules\":[],\"x\":1}}\n");
    text.push_str("{\"floor\":5}\n");
    std::fs::write(&path, text).unwrap();
    let e = Journal::open(&path, DAY, 30).unwrap_err();
    assert!(matches!(e, JournalError::BadLine { line: 2, .. }), "{e:?}");
    let message = e.to_string();
    assert!(
        message.contains("line 2") && message.contains(&path.display().to_string()),
        "{message}"
    );
}

#[test]
fn retention_drops_old_bans_into_a_persisted_floor() {
    let dir = TempDir::new("retention");
    let path = dir.journal();
    let retain = Duration::from_secs(5);
    let mut journal = Journal::open(&path, retain, 0).unwrap();
    journal.apply("old", vec![exact("/old")], 1_000).unwrap();
    journal.apply("new", vec![exact("/new")], 10_000).unwrap();
    // Not yet: at 6_001 "old" (at 1_001) is exactly `retain` old.
    journal.compact(6_001).unwrap();
    assert_eq!(lines(&path).len(), 2);
    drop(journal);

    let mut journal = Journal::open(&path, retain, 12_000).unwrap();
    assert_eq!(journal.floor_ms(), 1_001);
    assert!(!journal.contains("old") && journal.contains("new"));
    assert_eq!(
        lines(&path),
        [
            r#"{"floor":1001}"#,
            r#"{"ban":{"id":"new","at_ms":10001,"rules":[{"exact":"/new"}]}}"#
        ]
    );
    let list = journal.list();
    assert_eq!(list.entries(), [ban("new", 10_001, exact("/new"))]);
    // What the dropped ban banned stays banned, and so does all else that old.
    assert!(list.bans("http://h:80/old", no_tags, 1_000));
    assert!(list.bans("http://h:80/unrelated", no_tags, 1_000));
    assert!(!list.bans("http://h:80/unrelated", no_tags, 1_001));
    assert!(list.bans("http://h:80/new", no_tags, 1_001));

    // The floor survives a reopen and the next compaction.
    journal.apply("later", vec![tag("t")], 13_000).unwrap();
    drop(journal);
    let mut journal = Journal::open(&path, retain, 13_500).unwrap();
    assert_eq!(journal.floor_ms(), 1_001);
    journal.compact(16_000).unwrap();
    assert_eq!(journal.floor_ms(), 10_001);
    assert!(!journal.contains("new") && journal.contains("later"));
    drop(journal);
    let journal = Journal::open(&path, retain, 16_000).unwrap();
    assert_eq!(journal.floor_ms(), 10_001);
    assert_eq!(journal.list().entries(), [ban("later", 13_001, tag("t"))]);
    let stray = path.with_file_name("bans.jsonl.tmp");
    assert!(!stray.exists(), "the temporary file was renamed");
}
