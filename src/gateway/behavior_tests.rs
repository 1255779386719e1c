//! Unit tests of `gateway::behavior`: globs, selection order, methods,
//! TTLs, cache keys and what reaches the origin.

use super::*;
use crate::cache::key::KeyPolicy;
use crate::http::request::head_from;

const HOUR: Duration = Duration::from_secs(3600);

fn behaviors(configs: &[BehaviorConfig]) -> Behaviors {
    match Behaviors::new(configs, Duration::ZERO) {
        Ok(b) => b,
        Err(problems) => panic!("invalid behaviours: {problems:?}"),
    }
}

/// The one behaviour compiled from `config`.
fn one(config: BehaviorConfig) -> Behavior {
    behaviors(&[config]).listed()[0].clone()
}

fn on_path(path: &str, origin_group: &str) -> BehaviorConfig {
    BehaviorConfig {
        path: path.into(),
        origin_group: origin_group.into(),
        ..BehaviorConfig::default()
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A GET of `/` with these header lines.
fn get(fields: &[&str]) -> RequestHead {
    let mut raw = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
    for f in fields {
        raw.push_str(f);
        raw.push_str("\r\n");
    }
    raw.push_str("\r\n");
    head_from(&raw)
}

fn problems(configs: &[BehaviorConfig]) -> Vec<(String, String)> {
    match Behaviors::new(configs, Duration::ZERO) {
        Ok(_) => panic!("accepted: {configs:?}"),
        Err(p) => p,
    }
}

#[test]
fn a_star_matches_any_run_including_slashes() {
    let jpg = PathPattern::new("*.jpg");
    assert!(jpg.matches("/a/b.jpg"));
    assert!(jpg.matches("/.jpg"));
    assert!(!jpg.matches("/a/b.jpeg"));
    assert!(!jpg.matches("/a/b.JPG"), "matching is case-sensitive");
    let images = PathPattern::new("/images/*");
    assert!(images.matches("/images/x/y.png"));
    assert!(images.matches("/images/"));
    assert!(!images.matches("/images"));
    assert!(!images.matches("/Images/x"));
    let middle = PathPattern::new("/a/*/c.txt");
    assert!(middle.matches("/a/b/c.txt"));
    assert!(middle.matches("/a/b/x/c.txt"));
    assert!(!middle.matches("/a/c.txt"));
    assert!(PathPattern::new("*").matches("*"), "asterisk-form target");
    assert!(PathPattern::new("/x**y").matches("/x/1/y"));
}

#[test]
fn a_question_mark_matches_exactly_one_character() {
    let p = PathPattern::new("/v?/x");
    assert!(p.matches("/v1/x"));
    assert!(!p.matches("/v10/x"));
    assert!(!p.matches("/v/x"));
    assert!(PathPattern::new("/caf?").matches("/café"));
    assert!(!PathPattern::new("/caf??").matches("/café"));
}

#[test]
fn a_pattern_without_a_leading_slash_gets_one() {
    let p = PathPattern::new("images/*");
    assert_eq!(p.as_str(), "/images/*");
    assert!(p.matches("/images/a.png"));
    assert_eq!(PathPattern::new("*.css").as_str(), "*.css");
}

#[test]
fn pathological_patterns_take_at_most_path_times_pattern_steps() {
    let p = PathPattern::new("*a*a*a*a*b");
    let long = format!("/{}", "a".repeat(20_000));
    let bound = (long.len() + 1) * (p.tokens.len() + 1);
    let (matched, steps) = p.match_counting_steps(&long);
    assert!(!matched);
    assert!(steps <= bound, "{steps} steps > {bound}");
    let (matched, steps) = p.match_counting_steps(&format!("{long}b"));
    assert!(matched);
    assert!(steps <= bound + p.tokens.len() + 1, "{steps} steps");
}

#[test]
fn the_first_matching_behaviour_in_config_order_wins() {
    let b = behaviors(&[on_path("/images/*", "images"), on_path("*.jpg", "jpg")]);
    assert_eq!(b.select("/images/a.jpg").origin_group(), "images");
    assert_eq!(b.select("/x/a.jpg").origin_group(), "jpg");
    let b = behaviors(&[on_path("*.jpg", "jpg"), on_path("/images/*", "images")]);
    assert_eq!(b.select("/images/a.jpg").origin_group(), "jpg");
    assert_eq!(b.select("/images/a.png").origin_group(), "images");
}

#[test]
fn no_match_selects_the_implicit_default() {
    let b = Behaviors::new(&[on_path("/api/*", "api")], HOUR).expect("valid");
    let d = b.select("/index.html");
    assert_eq!(d.path(), "*");
    assert_eq!(d.origin_group(), "default");
    assert!(!d.dynamic());
    assert_eq!(d.allow_header(), crate::gateway::route::ALLOWED_METHODS);
    assert_eq!(d.clamp_ttl(None), Some(HOUR), "cache.default_ttl");
    assert_eq!(d.key_target("/a?b=1"), "/a?b=1");
    // A listed "*" replaces the implicit default.
    let b = behaviors(&[on_path("*", "mine")]);
    assert_eq!(b.select("/index.html").origin_group(), "mine");
}

#[test]
fn methods_are_allowed_as_listed_and_allow_names_them_in_canonical_order() {
    let b = one(BehaviorConfig {
        methods: names(&["HEAD", "GET", "OPTIONS"]),
        ..BehaviorConfig::default()
    });
    assert!(b.allows(&Method::Get) && b.allows(&Method::Head) && b.allows(&Method::Options));
    assert!(!b.allows(&Method::Post));
    assert!(
        !b.allows(&Method::Other("PURGE".into())),
        "no extension methods"
    );
    assert_eq!(b.allow_header(), "GET, HEAD, OPTIONS");
    let none = one(BehaviorConfig {
        methods: Vec::new(),
        ..BehaviorConfig::default()
    });
    assert!(!none.allows(&Method::Get));
    assert_eq!(none.allow_header(), "", "an empty Allow: no method");
}

#[test]
fn explicit_lifetimes_are_clamped_and_missing_ones_take_the_default() {
    let mut config = BehaviorConfig::default();
    config.cache.min_ttl = Dur::secs(10);
    config.cache.default_ttl = Some(Dur::secs(60));
    config.cache.max_ttl = Some(Dur::secs(3600));
    let b = one(config.clone());
    let s = Duration::from_secs;
    assert_eq!(b.clamp_ttl(Some(s(0))), Some(s(10)));
    assert_eq!(b.clamp_ttl(Some(s(5))), Some(s(10)));
    assert_eq!(b.clamp_ttl(Some(s(1800))), Some(s(1800)));
    assert_eq!(b.clamp_ttl(Some(s(7200))), Some(s(3600)));
    assert_eq!(b.clamp_ttl(None), Some(s(60)));
    // Without a default_ttl: cache.default_ttl, zero meaning none, else
    // brought into [min_ttl, max_ttl].
    config.cache.default_ttl = None;
    let b = Behaviors::new(std::slice::from_ref(&config), Duration::ZERO).expect("valid");
    assert_eq!(b.listed()[0].clamp_ttl(None), None);
    let b = Behaviors::new(std::slice::from_ref(&config), 2 * HOUR).expect("valid");
    assert_eq!(b.listed()[0].clamp_ttl(None), Some(HOUR));
    let b = Behaviors::new(&[config], s(1)).expect("valid");
    assert_eq!(b.listed()[0].clamp_ttl(None), Some(s(10)));
    // No max_ttl: no cap.
    let b = one(BehaviorConfig::default());
    assert_eq!(b.clamp_ttl(Some(100 * HOUR)), Some(100 * HOUR));
}

#[test]
fn accept_encoding_is_keyed_by_the_codings_served() {
    let b = one(BehaviorConfig::default());
    let extras = |ae: &[&str]| b.key_extras(&get(ae));
    assert_eq!(extras(&["Accept-Encoding: gzip, deflate"]), " k:ae=gzip");
    assert_eq!(
        extras(&["Accept-Encoding: gzip, deflate"]),
        extras(&["Accept-Encoding: gzip"])
    );
    assert_ne!(
        extras(&["Accept-Encoding: br"]),
        extras(&["Accept-Encoding: gzip"])
    );
    assert_eq!(
        extras(&["Accept-Encoding: zstd, GZIP;q=0.5, br"]),
        " k:ae=br,gzip,zstd"
    );
    assert_eq!(extras(&["Accept-Encoding: *, br;q=0"]), " k:ae=gzip,zstd");
    assert_eq!(extras(&["Accept-Encoding: gzip;q=0"]), " k:ae=identity");
    assert_eq!(extras(&["Accept-Encoding: deflate"]), " k:ae=identity");
    assert_eq!(extras(&[]), " k:ae=identity", "no field: no coding");
    assert_eq!(extras(&["Accept-Encoding: gzip;q=bad"]), " k:ae=identity");
    let raw = one(BehaviorConfig {
        cache: CachePolicyConfig {
            normalize_accept_encoding: false,
            ..CachePolicyConfig::default()
        },
        ..BehaviorConfig::default()
    });
    assert_eq!(
        raw.key_extras(&get(&["Accept-Encoding: br"])),
        "",
        "nothing extra"
    );
}

/// The served codings as `vary::accept_encoding`'s canonical form says,
/// the way the key read them before `vary::codings_accepted`.
fn served_by_canonical_form(headers: &Headers) -> String {
    let lines: Vec<&[u8]> = headers.get_all("accept-encoding").collect();
    let canonical = match lines.is_empty() {
        true => None,
        false => vary::accept_encoding(&lines),
    };
    let Some(canonical) = canonical else {
        return "identity".into();
    };
    let members: Vec<&[u8]> = canonical.split(|&b| b == b',').collect();
    let star = members.contains(&&b"*"[..]);
    let served: Vec<&str> = SERVED_CODINGS
        .iter()
        .copied()
        .filter(|coding| match star {
            true => !members
                .iter()
                .any(|m| m.strip_suffix(b";q=0") == Some(coding.as_bytes())),
            false => members.contains(&coding.as_bytes()),
        })
        .collect();
    match served.is_empty() {
        true => "identity".into(),
        false => served.join(","),
    }
}

#[test]
fn served_codings_agree_with_the_canonical_form() {
    let values = [
        "",
        " ",
        ",",
        "gzip",
        "GZIP",
        "x-gzip",
        "X-Gzip;q=0",
        "br;q=0.001",
        "br;q=0.000",
        "br; q=1",
        "br;Q=1.0",
        "br;q=1.5",
        "br;q=2",
        "br;q=0.5;x=1",
        "br;x=1",
        "*",
        "*;q=0",
        "*, gzip;q=0",
        "*;q=0, gzip",
        "gzip, gzip;q=0",
        "gzip;q=0, gzip",
        "identity",
        "identity;q=0",
        "zstd, br",
        "deflate, compress",
        "x-compress;q=0, *",
        "\"gzip\"",
        "g\"z\"ip",
        "br;q=\"1\"",
        ";q=1",
        "br ; q=0.9 , gzip",
        "*;q=0.1, br;q=0",
    ];
    let mut cases: Vec<Vec<&str>> = vec![vec![]];
    cases.extend(values.iter().map(|v| vec![*v]));
    for a in values.iter().step_by(3) {
        for b in values.iter().skip(1).step_by(4) {
            cases.push(vec![*a, *b]);
        }
    }
    for lines in cases {
        let fields: Vec<String> = lines
            .iter()
            .map(|v| format!("Accept-Encoding: {v}"))
            .collect();
        let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
        let req = get(&fields);
        assert_eq!(
            served_codings(&req.headers),
            served_by_canonical_form(&req.headers),
            "{lines:?}"
        );
    }
}

fn keyed(headers: &[&str], cookies: &[&str]) -> Behavior {
    one(BehaviorConfig {
        cache: CachePolicyConfig {
            headers: names(headers),
            cookies: names(cookies),
            normalize_accept_encoding: false,
            ..CachePolicyConfig::default()
        },
        ..BehaviorConfig::default()
    })
}

#[test]
fn keyed_headers_enter_the_key_by_lower_case_name_and_trimmed_value() {
    let b = keyed(&["X-Country", "X-Device"], &[]);
    let extras = b.key_extras(&get(&["x-country:  DE ", "X-Device: mobile"]));
    assert_eq!(extras, " k:h:x-country=DE;h:x-device=mobile");
    let two_lines = b.key_extras(&get(&["X-Country: a", "x-country: b"]));
    assert_eq!(two_lines, b.key_extras(&get(&["X-Country: a, b"])));
    assert_ne!(
        b.key_extras(&get(&["X-Country: DE"])),
        b.key_extras(&get(&["X-Country: FR"]))
    );
    assert_ne!(
        b.key_extras(&get(&["X-Country:"])),
        b.key_extras(&get(&[])),
        "an empty field is not an absent one"
    );
}

#[test]
fn a_keyed_value_cannot_forge_another_entry_or_a_space() {
    let b = keyed(&["x-a", "x-b"], &[]);
    let forged = b.key_extras(&get(&["X-A: 1;h:x-b=2", "X-B: 3"]));
    let honest = b.key_extras(&get(&["X-A: 1", "X-B: 2;h:x-b=3"]));
    assert_ne!(forged, honest);
    let spaced = b.key_extras(&get(&["X-A: v vary;e=0", "X-B: 100%"]));
    assert_eq!(spaced, " k:h:x-a=v%20vary%3Be=0;h:x-b=100%25");
    assert!(!spaced[1..].contains(' '));
    let mut raw = get(&["X-B: b"]);
    raw.headers.push("X-A", vec![b'a', 0xff, b'\t', b'z']);
    assert_eq!(b.key_extras(&raw), " k:h:x-a=a%FF%09z;h:x-b=b");
}

#[test]
fn keyed_cookies_absent_and_empty_differ_and_others_do_not_count() {
    let b = keyed(&[], &["sid", "lang"]);
    let extras = |cookie: &[&str]| b.key_extras(&get(cookie));
    assert_eq!(extras(&["Cookie: sid=; lang=de"]), " k:c:sid=;c:lang=de");
    assert_eq!(extras(&["Cookie: other=1"]), " k:c:sid;c:lang");
    assert_ne!(extras(&["Cookie: sid="]), extras(&["Cookie: other=1"]));
    assert_eq!(
        extras(&["Cookie: a=1; sid=x; tracking=9"]),
        extras(&["Cookie: sid=x"])
    );
    assert_eq!(
        extras(&["Cookie: a=1", "Cookie: sid=x"]),
        extras(&["Cookie: sid=x"])
    );
    assert_ne!(
        extras(&["Cookie: SID=x"]),
        extras(&["Cookie: sid=x"]),
        "names are case-sensitive"
    );
    assert_ne!(
        extras(&["Cookie: sid=x; sid=y"]),
        extras(&["Cookie: sid=x"])
    );
    assert_ne!(
        extras(&["Cookie: sid=a;lang=b"]),
        extras(&["Cookie: sid=a%3Blang=b"])
    );
}

#[test]
fn the_cache_key_is_the_url_key_plus_the_extras() {
    let req = get(&["Accept-Encoding: gzip"]);
    let plain = keyed(&[], &[]).cache_key("http", "h", &req);
    assert_eq!(
        plain,
        CacheKey::new("http", "h", "/", &KeyPolicy::default())
    );
    let normalised = one(BehaviorConfig::default()).cache_key("http", "h", &req);
    assert_eq!(normalised.as_str(), "http://h:80/ k:ae=gzip");
    assert!(!normalised.as_str().contains(" vary;"));
}

fn with_queries(cache: QuerySelection, origin: QuerySelection) -> Behavior {
    let mut config = BehaviorConfig::default();
    config.cache.query = cache;
    config.origin_request.query = origin;
    one(config)
}

#[test]
fn the_key_keeps_all_none_or_the_listed_parameters_in_request_order() {
    let list = QuerySelection::Names(names(&["v", "lang"]));
    let all = with_queries(QuerySelection::All, QuerySelection::None);
    let none = with_queries(QuerySelection::None, QuerySelection::None);
    let listed = with_queries(list, QuerySelection::None);
    let t = "/x?lang=de&utm=1&v=2";
    assert_eq!(all.key_target(t), t);
    assert_eq!(none.key_target(t), "/x");
    assert_eq!(listed.key_target(t), "/x?lang=de&v=2");
    assert_eq!(
        listed.key_target("/x?utm=1"),
        "/x",
        "no `?` once nothing is left"
    );
    assert_eq!(listed.key_target("/x"), "/x");
    assert_eq!(listed.key_target("/x?v&&v=3&vv=1"), "/x?v&v=3");
    assert_eq!(none.key_target("/x?"), "/x");
    let empty = with_queries(QuerySelection::Names(Vec::new()), QuerySelection::None);
    assert_eq!(empty.key_target(t), "/x");
}

#[test]
fn the_origin_gets_the_parameters_of_either_policy() {
    let v = || QuerySelection::Names(names(&["v"]));
    let t = "/x?utm=0&sig=2&v=1";
    assert_eq!(
        with_queries(v(), QuerySelection::Names(names(&["sig"]))).origin_target(t),
        "/x?sig=2&v=1"
    );
    assert_eq!(
        with_queries(v(), QuerySelection::None).origin_target(t),
        "/x?v=1"
    );
    assert_eq!(
        with_queries(QuerySelection::None, QuerySelection::None).origin_target(t),
        "/x"
    );
    assert_eq!(
        with_queries(QuerySelection::None, QuerySelection::All).origin_target(t),
        t
    );
    assert_eq!(
        with_queries(QuerySelection::All, QuerySelection::None).origin_target(t),
        t
    );
}

fn field_names(h: &Headers) -> Vec<&str> {
    h.iter().map(|(n, _)| n).collect()
}

#[test]
fn the_origin_sees_only_the_base_fields_and_the_named_ones() {
    let mut config = BehaviorConfig::default();
    config.cache.headers = names(&["X-Country"]);
    config.origin_request.headers = names(&["x-request-id"]);
    let b = one(config);
    let viewer = Headers::from_fields(&[
        ("Host", "h"),
        ("X-Forwarded-Host", "evil"),
        ("Authorization", "Bearer t"),
        ("User-Agent", "curl"),
        ("Cache-Control", "no-cache"),
        ("X-Country", "DE"),
        ("X-Request-Id", "42"),
        ("If-None-Match", "\"e\""),
        ("Range", "bytes=0-1"),
        ("Via", "1.1 a"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("Content-Length", "0"),
        ("Accept-Encoding", "gzip, deflate, br"),
    ]);
    let sent = b.filter_for_origin(&viewer);
    assert_eq!(
        field_names(&sent),
        [
            "Host",
            "X-Country",
            "X-Request-Id",
            "If-None-Match",
            "Range",
            "Via",
            "X-Forwarded-For",
            "Content-Length",
            "Accept-Encoding"
        ]
    );
    assert_eq!(
        sent.get_str("accept-encoding"),
        Some("br,gzip"),
        "canonical"
    );
    assert_eq!(sent.get_str("x-country"), Some("DE"));
    let bare = b.filter_for_origin(&Headers::from_fields(&[("Host", "h")]));
    assert_eq!(bare.get_str("accept-encoding"), Some("identity"));
}

#[test]
fn without_normalisation_accept_encoding_goes_as_sent() {
    let b = keyed(&[], &[]);
    let viewer = Headers::from_fields(&[("Host", "h"), ("Accept-Encoding", "gzip, deflate")]);
    assert_eq!(b.filter_for_origin(&viewer), viewer);
    let bare = Headers::from_fields(&[("Host", "h")]);
    assert_eq!(b.filter_for_origin(&bare), bare);
}

#[test]
fn the_origin_gets_one_cookie_field_of_the_named_cookies() {
    let mut config = BehaviorConfig::default();
    config.cache.cookies = names(&["sid"]);
    config.cache.normalize_accept_encoding = false;
    config.origin_request.cookies = names(&["cart"]);
    let b = one(config);
    let viewer = Headers::from_fields(&[
        ("Host", "h"),
        ("Cookie", "track=1; cart=3"),
        ("X-Other", "x"),
        ("Cookie", "sid=abc; ad=2"),
    ]);
    let sent = b.filter_for_origin(&viewer);
    assert_eq!(field_names(&sent), ["Host", "Cookie"]);
    assert_eq!(sent.get_str("cookie"), Some("cart=3; sid=abc"));
    let untracked = Headers::from_fields(&[("Host", "h"), ("Cookie", "track=1")]);
    assert_eq!(field_names(&b.filter_for_origin(&untracked)), ["Host"]);
}

#[test]
fn every_problem_is_reported_under_its_key() {
    let mut bad = BehaviorConfig {
        path: String::new(),
        origin_group: String::new(),
        methods: names(&["GET", "FOO", "get", "TRACE"]),
        ..BehaviorConfig::default()
    };
    bad.cache.headers = names(&["", "x y", "Cookie", "Accept-Encoding", "X-Ok"]);
    bad.cache.cookies = names(&["a=b"]);
    bad.cache.query = QuerySelection::Names(names(&["a&b"]));
    bad.origin_request.headers = names(&["bad:name"]);
    let mut ttl = BehaviorConfig::default();
    ttl.cache.min_ttl = Dur::secs(60);
    ttl.cache.max_ttl = Some(Dur::secs(10));
    ttl.cache.default_ttl = Some(Dur::secs(5));
    let mut above = on_path("/a/*", "default");
    above.cache.max_ttl = Some(Dur::secs(10));
    above.cache.default_ttl = Some(Dur::secs(60));
    let duplicate = on_path("a/*", "other");
    let found = problems(&[bad, ttl, above, duplicate]);
    let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "behavior[0].path",
            "behavior[0].origin_group",
            "behavior[0].methods",
            "behavior[0].methods",
            "behavior[0].methods",
            "behavior[0].cache.headers",
            "behavior[0].cache.headers",
            "behavior[0].cache.headers",
            "behavior[0].cache.headers",
            "behavior[0].origin_request.headers",
            "behavior[0].cache.cookies",
            "behavior[0].cache.query",
            "behavior[1].cache.max_ttl",
            "behavior[1].cache.default_ttl",
            "behavior[2].cache.default_ttl",
            "behavior[3].path",
        ],
        "{found:#?}"
    );
    let message = |i: usize| found[i].1.as_str();
    assert!(
        message(2).contains("unknown method \"FOO\""),
        "{}",
        message(2)
    );
    assert!(message(3).contains("write \"GET\""), "{}", message(3));
    assert!(message(4).contains("always refused"), "{}", message(4));
    assert!(
        message(6).contains("\"x y\" is not a header field name"),
        "{}",
        message(6)
    );
    assert!(message(7).contains("cookies"), "{}", message(7));
    assert!(message(12).contains("below min_ttl"), "{}", message(12));
    assert!(message(13).contains("below min_ttl"), "{}", message(13));
    assert!(message(14).contains("above max_ttl"), "{}", message(14));
    assert!(message(15).contains("behavior[2]"), "{}", message(15));
}

#[test]
fn lifetimes_beyond_delta_seconds_are_refused() {
    let mut config = BehaviorConfig::default();
    config.cache.max_ttl = Some(Dur::secs(MAX_DELTA_SECONDS + 1));
    assert_eq!(problems(&[config])[0].0, "behavior[0].cache.max_ttl");
}

#[derive(Debug, Deserialize, Serialize, PartialEq)]
struct File {
    #[serde(default)]
    behavior: Vec<BehaviorConfig>,
}

#[test]
fn a_realistic_file_parses() {
    let text = r#"
        [[behavior]]
        path = "/api/*"
        origin_group = "api"
        dynamic = true

        [[behavior]]
        path = "*.jpg"
        origin_group = "images"
        methods = ["GET", "HEAD"]
        [behavior.cache]
        min_ttl = "1m"
        default_ttl = "1h"
        max_ttl = 86400
        query = ["v", "w"]
        headers = ["X-Device"]
        cookies = ["lang"]
        [behavior.origin_request]
        query = "all"
        headers = ["X-Request-Id"]

        [[behavior]]
        path = "/static/*"
        cache = { query = "none", normalize_accept_encoding = false }
    "#;
    let file: File = toml::from_str(text).expect("parses");
    let [api, jpg, statics] = &file.behavior[..] else {
        panic!("{file:?}")
    };
    assert!(api.dynamic && api.cache == CachePolicyConfig::default());
    assert_eq!(api.methods.len(), METHODS.len());
    assert_eq!(jpg.methods, names(&["GET", "HEAD"]));
    assert_eq!(jpg.cache.min_ttl, Dur::secs(60));
    assert_eq!(jpg.cache.default_ttl, Some(Dur::secs(3600)));
    assert_eq!(jpg.cache.max_ttl, Some(Dur::secs(86400)));
    assert_eq!(jpg.cache.query, QuerySelection::Names(names(&["v", "w"])));
    assert_eq!(jpg.origin_request.query, QuerySelection::All);
    assert_eq!(statics.origin_group, "default");
    assert_eq!(statics.cache.query, QuerySelection::None);
    assert_eq!(statics.origin_request.query, QuerySelection::None);
    let compiled = Behaviors::new(&file.behavior, Duration::ZERO).expect("valid");
    assert_eq!(compiled.select("/a/b.jpg").origin_group(), "images");
    let again: File = toml::from_str(&toml::to_string(&file).expect("serialises")).expect("parses");
    assert_eq!(again, file);
}

#[test]
fn unknown_keys_and_bad_query_forms_are_refused_with_the_accepted_forms() {
    let typo = "[[behavior]]\npath = \"/x\"\n[behavior.cache]\nmin_tll = 5\n";
    let e = toml::from_str::<File>(typo).expect_err("typo");
    assert!(e.message().contains("unknown field `min_tll`"), "{e}");
    for bad in ["\"some\"", "3"] {
        let text = format!("[[behavior]]\ncache = {{ query = {bad} }}\n");
        let e = toml::from_str::<File>(&text).expect_err(bad);
        assert!(e.message().contains(QUERY_FORMS), "{e}");
    }
    let upper: File =
        toml::from_str("[[behavior]]\ncache = { query = \"ALL\" }\n").expect("parses");
    assert_eq!(upper.behavior[0].cache.query, QuerySelection::All);
}
