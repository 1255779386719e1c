//! Unit tests of Cache-Control parsing: each rule of RFC 9111 §5.2 (and
//! §1.2.2, §4.2.1) with the section it covers.
use super::*;

fn cc(lines: &[&str]) -> Headers {
    let mut h = Headers::new();
    for l in lines {
        h.push("Cache-Control", *l);
    }
    h
}

fn response(lines: &[&str]) -> ResponseDirectives {
    ResponseDirectives::from_cache_control(&cc(lines))
}

fn request(lines: &[&str]) -> RequestDirectives {
    RequestDirectives::parse(&cc(lines))
}

fn fields(names: &[&str]) -> Coverage {
    let mut f = FieldNames::new();
    for n in names {
        f.add(n);
    }
    Coverage::Fields(f)
}

// RFC 9111 §5.2: names are case-insensitive, every line counts, and
// arguments may be tokens or quoted strings.
#[test]
fn names_are_case_insensitive_across_lines() {
    let d = response(&["Public, MAX-AGE=30", "s-maxage=\"4\""]);
    assert!(d.public);
    assert_eq!(d.max_age, Some(DeltaSeconds::Valid(30)));
    assert_eq!(d.s_maxage, Some(DeltaSeconds::Valid(4)));
}

// RFC 9111 §5.2.3: unknown directives are ignored, even with quoted
// arguments that contain commas.
#[test]
fn unknown_directives_are_ignored() {
    let d = response(&["community=\"UCI, x\", max-age=5, foo"]);
    assert_eq!(d.max_age, Some(DeltaSeconds::Valid(5)));
    assert_eq!(
        d,
        ResponseDirectives {
            max_age: Some(DeltaSeconds::Valid(5)),
            ..ResponseDirectives::default()
        }
    );
}

// RFC 9111 §4.2.1: invalid freshness information is stale; repeated
// values that differ conflict.
#[test]
fn invalid_and_conflicting_max_age() {
    assert_eq!(
        response(&["max-age=abc"]).max_age,
        Some(DeltaSeconds::Invalid)
    );
    assert_eq!(
        response(&["max-age=-1"]).max_age,
        Some(DeltaSeconds::Invalid)
    );
    assert_eq!(response(&["max-age"]).max_age, Some(DeltaSeconds::Invalid));
    assert_eq!(
        response(&["max-age=1.5"]).max_age,
        Some(DeltaSeconds::Invalid)
    );
    assert_eq!(
        response(&["max-age=5", "max-age=6"]).max_age,
        Some(DeltaSeconds::Invalid)
    );
    assert_eq!(
        response(&["max-age=5, max-age=5"]).max_age,
        Some(DeltaSeconds::Valid(5))
    );
}

// RFC 9111 §1.2.2: delta-seconds past 2^31 are taken as 2^31.
#[test]
fn huge_values_are_capped() {
    let d = response(&["max-age=99999999999999999999999"]);
    assert_eq!(d.max_age, Some(DeltaSeconds::Valid(MAX_DELTA_SECONDS)));
}

// RFC 9111 §5.2.2.4 and §5.2.2.7: qualified forms name fields, the
// unqualified form covers the response and wins when both appear.
#[test]
fn qualified_no_cache_and_private() {
    let d = response(&["no-cache=\"Set-Cookie, X-Id\", private=x-user"]);
    assert_eq!(d.no_cache, Some(fields(&["set-cookie", "x-id"])));
    assert_eq!(d.private, Some(fields(&["x-user"])));
    let d = response(&["no-cache=\"a\"", "no-cache=\"b\""]);
    assert_eq!(d.no_cache, Some(fields(&["a", "b"])));
    let d = response(&["no-cache=\"a\", no-cache"]);
    assert_eq!(d.no_cache, Some(Coverage::Response));
    // An empty or malformed list is read as the whole response.
    assert_eq!(
        response(&["private=\"\""]).private,
        Some(Coverage::Response)
    );
    assert_eq!(
        response(&["private=\"a b\""]).private,
        Some(Coverage::Response)
    );
    assert_eq!(
        response(&["no-cache=\"a"]).no_cache,
        Some(Coverage::Response)
    );
}

// RFC 9111 §5.2: quoted-string arguments unescape backslashes.
#[test]
fn quoted_strings_unescape() {
    assert_eq!(parse_arg("\"a\\\"b\""), Arg::Quoted("a\"b".into()));
    assert_eq!(parse_arg("\"ab"), Arg::Unusable);
    assert_eq!(parse_arg("\"ab\"x"), Arg::Unusable);
    assert_eq!(parse_arg("60"), Arg::Token("60".into()));
}

// RFC 9111 §5.2.2: restrictive directives count with any argument;
// permissive ones only in their defined form.
#[test]
fn arguments_on_flag_directives() {
    let d = response(&["no-store=1, must-revalidate=x, public=yes, immutable=1"]);
    assert!(d.no_store && d.must_revalidate);
    assert!(!d.public && !d.immutable);
    let d = response(&["must-understand, no-store, immutable, proxy-revalidate"]);
    assert!(d.must_understand && d.no_store && d.immutable && d.proxy_revalidate);
}

// RFC 5861 §3, §4: the stale windows are delta-seconds.
#[test]
fn stale_windows() {
    let d = response(&["stale-while-revalidate=30, stale-if-error=600"]);
    assert_eq!(d.stale_while_revalidate, Some(DeltaSeconds::Valid(30)));
    assert_eq!(d.stale_if_error, Some(DeltaSeconds::Valid(600)));
    let d = response(&["stale-while-revalidate"]);
    assert_eq!(d.stale_while_revalidate, Some(DeltaSeconds::Invalid));
}

// RFC 9111 §3.5: public, must-revalidate and s-maxage allow reuse of
// responses to authorised requests.
#[test]
fn authorization_allowing_directives() {
    assert!(response(&["public"]).allows_authorized());
    assert!(response(&["must-revalidate"]).allows_authorized());
    assert!(response(&["s-maxage=1"]).allows_authorized());
    assert!(!response(&["max-age=1, proxy-revalidate"]).allows_authorized());
}

// RFC 9111 §5.2.1: request directives, with and without arguments.
#[test]
fn request_directives() {
    let d = request(&["no-cache, no-store, only-if-cached, max-age=0, min-fresh=5"]);
    assert!(d.no_cache && d.no_store && d.only_if_cached);
    assert_eq!((d.max_age, d.min_fresh), (Some(0), Some(5)));
    // RFC 9111 §5.2.1.2: max-stale with and without a value.
    assert_eq!(request(&["max-stale"]).max_stale, Some(MaxStale::Any));
    assert_eq!(
        request(&["max-stale=9"]).max_stale,
        Some(MaxStale::Limit(9))
    );
    assert_eq!(request(&["max-stale=x"]).max_stale, None);
    assert_eq!(
        request(&["max-stale, max-stale=3", "max-stale=7"]).max_stale,
        Some(MaxStale::Limit(3))
    );
    // Invalid arguments drop the directive; repeats keep the strictest.
    assert_eq!(request(&["max-age=soon"]).max_age, None);
    assert_eq!(request(&["max-age=9, max-age=2"]).max_age, Some(2));
    assert_eq!(request(&["min-fresh=1, min-fresh=4"]).min_fresh, Some(4));
    // RFC 5861 §4: stale-if-error as a request directive.
    assert_eq!(request(&["stale-if-error=60"]).stale_if_error, Some(60));
    // RFC 9111 §5.4: Pragma is deprecated and not read.
    let mut h = Headers::new();
    h.push("Pragma", "no-cache");
    assert!(!RequestDirectives::parse(&h).no_cache);
}

// Non-UTF-8 bytes elsewhere on the line do not hide a directive.
#[test]
fn odd_bytes_do_not_hide_directives() {
    let mut h = Headers::new();
    h.push("Cache-Control", b"x=\xff, no-store");
    assert!(ResponseDirectives::from_cache_control(&h).no_store);
}

#[test]
fn field_names_strip_case_insensitively() {
    let Coverage::Fields(names) = fields(&["Set-Cookie"]) else {
        unreachable!()
    };
    let mut h = Headers::new();
    h.push("set-cookie", "a=b");
    h.push("X", "1");
    names.strip_from(&mut h);
    assert!(!h.contains("Set-Cookie") && h.contains("x"));
    assert_eq!(names.iter().collect::<Vec<_>>(), vec!["set-cookie"]);
}
