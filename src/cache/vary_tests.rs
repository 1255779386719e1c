//! Unit tests of `cache::vary`: Vary parsing, normalisation and selection
//! (RFC 9111 §4.1), the Accept-Encoding canonical form (RFC 9110 §12.5.3),
//! markers and variant keys.

use super::*;

fn headers(fields: &[(&str, &str)]) -> Headers {
    let mut h = Headers::new();
    for (n, v) in fields {
        h.push(n, v.as_bytes());
    }
    h
}

fn names(list: &str) -> VaryNames {
    match VaryField::of(&headers(&[("Vary", list)])) {
        VaryField::Names(n) => n,
        other => panic!("{list}: {other:?}"),
    }
}

fn norm(name: &str, fields: &[(&str, &str)]) -> Option<String> {
    normalise(name, &headers(fields)).map(|v| String::from_utf8(v).expect("utf-8"))
}

fn ae(value: &str) -> String {
    norm("accept-encoding", &[("Accept-Encoding", value)]).expect("present")
}

/// Whether two requests select the same variant of a response that varies
/// on `vary`.
fn same_variant(vary: &str, a: &[(&str, &str)], b: &[(&str, &str)]) -> bool {
    let marker = Marker {
        names: names(vary),
        epoch: 1,
    };
    Variant::of(marker, &headers(a)).selected_by(&headers(b))
}

// RFC 9111 §4.1: Vary names are case-insensitive field names; "*" never
// matches; an empty member is no member (RFC 9110 §5.6.1).
#[test]
fn vary_names_are_case_insensitive_sorted_and_deduplicated() {
    assert_eq!(
        names("User-Agent, accept-encoding, Accept-Encoding").as_slice(),
        ["accept-encoding", "user-agent"]
    );
    let two_lines = headers(&[("Vary", "Accept"), ("vary", "Accept-Language,")]);
    assert_eq!(
        VaryField::of(&two_lines),
        VaryField::Names(names("accept, accept-language"))
    );
    assert_eq!(VaryField::of(&headers(&[])), VaryField::Absent);
    assert_eq!(
        VaryField::of(&headers(&[("Vary", " , ")])),
        VaryField::Absent
    );
    for unmatchable in ["*", "Accept, *", "Accept, x y", "\"Accept\""] {
        assert_eq!(
            VaryField::of(&headers(&[("Vary", unmatchable)])),
            VaryField::Unmatchable,
            "{unmatchable}"
        );
    }
}

// RFC 9111 §4.1: fields match if one can be turned into the other by adding
// or removing whitespace where the syntax allows it and by combining lines
// (RFC 9110 §5.3); quoted strings are kept.
#[test]
fn any_field_combines_lines_and_collapses_whitespace() {
    let one = norm("x-device", &[("X-Device", "phone,  tablet")]);
    let two = norm(
        "x-device",
        &[("X-Device", " phone "), ("x-device", "tablet")],
    );
    assert_eq!(one.as_deref(), Some("phone, tablet"));
    assert_eq!(one, two);
    assert_eq!(
        norm("x-a", &[("X-A", "a \t b  \"q  \\\"  r\"  c")]).as_deref(),
        Some("a b \"q  \\\"  r\" c")
    );
    // Case is kept where the field's values are not known to ignore it.
    assert_ne!(
        norm("user-agent", &[("User-Agent", "Foo")]),
        norm("user-agent", &[("User-Agent", "foo")])
    );
}

// RFC 9111 §4.1: a field absent from the request is its own value, even
// against an empty one.
#[test]
fn a_missing_field_is_its_own_value() {
    assert_eq!(norm("accept-language", &[]), None);
    assert_eq!(
        norm("accept-language", &[("Accept-Language", "")]).as_deref(),
        Some("")
    );
    assert!(!same_variant(
        "Accept-Language",
        &[],
        &[("Accept-Language", "")]
    ));
    assert!(same_variant("Accept-Language", &[], &[]));
    assert!(same_variant("Accept-Language", &[], &[("Other", "x")]));
}

// RFC 9111 §4.1 (case-normalisation where values are case-insensitive):
// language ranges and charsets (RFC 9110 §12.5.4, §12.5.2); the media range
// and parameter names of Accept but not its parameter values (§8.3.1).
#[test]
fn case_insensitive_lists_are_lower_cased() {
    assert_eq!(
        norm(
            "accept-language",
            &[
                ("Accept-Language", "en-US ,  FR;Q=0.5"),
                ("Accept-Language", "de")
            ]
        )
        .as_deref(),
        Some("en-us,fr;q=0.5,de")
    );
    assert_eq!(
        norm(
            "accept-charset",
            &[("Accept-Charset", "UTF-8, ISO-8859-1;q=0.1")]
        )
        .as_deref(),
        Some("utf-8,iso-8859-1;q=0.1")
    );
    assert_eq!(
        norm(
            "accept",
            &[(
                "Accept",
                "Text/HTML ; Level=1 ;Q=0.9, application/JSON;v=\"A b\""
            )]
        )
        .as_deref(),
        Some("text/html;level=1;q=0.9,application/json;v=\"A b\"")
    );
    // Order can carry preference: it is kept.
    assert!(!same_variant(
        "Accept-Language",
        &[("Accept-Language", "en, fr")],
        &[("Accept-Language", "fr, en")]
    ));
}

// RFC 9110 §12.5.3: the canonical set of acceptable codings.
#[test]
fn accept_encoding_is_the_set_of_acceptable_codings() {
    assert_eq!(ae("gzip, br"), "br,gzip");
    assert_eq!(ae("BR;q=0.5 , GZip"), "br,gzip");
    assert_eq!(ae("gzip;q=1.000, br;Q=0.001"), "br,gzip");
    assert_eq!(ae("x-gzip"), "gzip");
    // A q=0 coding is not acceptable; neither is an unlisted one.
    assert_eq!(ae("gzip, deflate;q=0"), "gzip");
    assert_eq!(ae("gzip, deflate;q=0.000"), "gzip");
    // Identity is acceptable unless excluded: these all mean identity only.
    for only_identity in ["", "identity", "gzip;q=0", " , "] {
        assert_eq!(ae(only_identity), "", "{only_identity:?}");
    }
    assert_eq!(ae("gzip, identity;q=0"), "gzip,identity;q=0");
    assert_eq!(ae("gzip, *;q=0"), "gzip,identity;q=0");
    assert_eq!(ae("gzip, identity, *;q=0"), "gzip");
    // With an acceptable "*", exclusions are what count.
    assert_eq!(ae("*"), "*");
    assert_eq!(ae("br, *"), "*");
    assert_eq!(ae("*, br;q=0"), "*,br;q=0");
    assert_eq!(ae("*, identity;q=0"), "*,identity;q=0");
    // The first mention of a coding counts.
    assert_eq!(ae("gzip, gzip;q=0"), "gzip");
    // Lines are combined first.
    let two = norm(
        "accept-encoding",
        &[("Accept-Encoding", "br"), ("Accept-Encoding", "GZIP")],
    );
    assert_eq!(two.as_deref(), Some("br,gzip"));
}

#[test]
fn accept_encoding_that_does_not_parse_is_compared_as_written() {
    // An invalid weight, an unknown parameter, a non-token: no merge, only
    // whitespace and case (Accept-Encoding's grammar ignores case).
    assert_eq!(ae("gzip;q=2,  BR"), "gzip;q=2,br");
    assert_eq!(ae("gzip;level=9"), "gzip;level=9");
    assert_eq!(ae("gzip;q=0.5;x=1"), "gzip;q=0.5;x=1");
    assert_eq!(ae("\"gzip\""), "\"gzip\"");
    assert_ne!(ae("gzip;q=2, br"), ae("br, gzip;q=2"));
}

// RFC 9111 §4.1: a stored response is selected only if every field its
// Vary names matches the request that stored it.
#[test]
fn selection_needs_every_named_field_to_match() {
    let gzip_en = [("Accept-Encoding", "gzip"), ("Accept-Language", "en")];
    let gzip_fr = [("Accept-Encoding", "gzip"), ("Accept-Language", "fr")];
    assert!(same_variant("Accept-Encoding", &gzip_en, &gzip_fr));
    assert!(!same_variant(
        "Accept-Encoding, Accept-Language",
        &gzip_en,
        &gzip_fr
    ));
    assert!(same_variant(
        "accept-encoding",
        &[("Accept-Encoding", "gzip, br")],
        &[("accept-encoding", "br;q=0.9,gzip")]
    ));
    assert!(!same_variant(
        "Accept-Encoding",
        &[("Accept-Encoding", "gzip")],
        &[("Accept-Encoding", "br")]
    ));
}

#[test]
fn markers_round_trip_and_nothing_else_decodes_as_one() {
    let m = Marker {
        names: names("Accept-Encoding, Accept"),
        epoch: 0x0123_4567_89ab_cdef,
    };
    assert_eq!(
        m.encode(),
        b"EDGESLAB-VARY/1 0123456789abcdef accept,accept-encoding\r\n"
    );
    assert_eq!(Marker::decode(&m.encode()), Some(m));
    for not_a_marker in [
        &b"HTTP/1.1 200 OK\r\nVary: Accept\r\n\r\n"[..],
        b"EDGESLAB-VARY/1 0123456789abcdef \r\n",
        b"EDGESLAB-VARY/1 0123456789abcdef Accept\r\n",
        b"EDGESLAB-VARY/1 0123456789abcdef b,a\r\n",
        b"EDGESLAB-VARY/1 123 a\r\n",
        b"EDGESLAB-VARY/1 0123456789abcdef a",
    ] {
        assert_eq!(Marker::decode(not_a_marker), None);
    }
}

#[test]
fn variant_keys_spell_epoch_names_and_values_without_ambiguity() {
    let url = CacheKey::from_text("http://h:80/x".into());
    let key = |vary: &str, epoch: u64, req: &[(&str, &str)]| {
        let marker = Marker {
            names: names(vary),
            epoch,
        };
        Variant::of(marker, &headers(req))
            .key(&url)
            .expect("short")
            .as_str()
            .to_string()
    };
    assert_eq!(
        key("Accept-Encoding", 7, &[("Accept-Encoding", "gzip, br")]),
        "http://h:80/x vary;e=0000000000000007;accept-encoding=br,gzip"
    );
    // Absent, empty and escaped values stay apart.
    assert_eq!(
        key("A, B", 1, &[("B", "")]),
        "http://h:80/x vary;e=0000000000000001;a;b="
    );
    assert_eq!(
        key("X", 1, &[("X", "1;y=2 %")]),
        "http://h:80/x vary;e=0000000000000001;x=1%3By=2%20%25"
    );
    assert_ne!(key("X", 1, &[("X", "a")]), key("X", 2, &[("X", "a")]));
    assert_ne!(key("X", 1, &[("X", "a")]), key("Y", 1, &[("Y", "a")]));
    let v = Variant::of(
        Marker {
            names: names("X"),
            epoch: 1,
        },
        &headers(&[("X", &"a".repeat(MAX_VARIANT_SUFFIX))]),
    );
    assert_eq!(v.key(&url), None, "too long to keep");
}

#[test]
fn a_fill_keeps_a_known_epoch_for_the_same_names_and_starts_one_otherwise() {
    let url = CacheKey::from_text("http://h:80/x".into());
    let req = headers(&[("Accept-Encoding", "gzip")]);
    let varies = headers(&[("Vary", "Accept-Encoding")]);
    assert_eq!(
        plan_fill(&url, None, &headers(&[]), &req, 9),
        Ok(FillKey::Url)
    );
    assert_eq!(
        plan_fill(&url, None, &headers(&[("Vary", "*")]), &req, 9),
        Err(NotStored::Vary)
    );
    let plan =
        |known: Option<&KnownMarker>, resp: &Headers| match plan_fill(&url, known, resp, &req, 9) {
            Ok(FillKey::Variant(f)) => f,
            other => panic!("{other:?}"),
        };
    let fresh = plan(None, &varies);
    assert_eq!(fresh.variant.marker.epoch, 9);
    assert!(fresh.write_marker);
    assert!(fresh.key.is_variant());
    assert_eq!(fresh.key.owner(7), url.owner(7));
    let known = |source| KnownMarker {
        marker: Marker {
            names: names("accept-encoding"),
            epoch: 3,
        },
        source,
    };
    let stored = plan(Some(&known(MarkerSource::StoredFresh)), &varies);
    assert_eq!(stored.variant.marker.epoch, 3);
    assert!(
        !stored.write_marker,
        "a fresh stored marker is not rewritten"
    );
    for source in [MarkerSource::StoredStale, MarkerSource::Leader] {
        let f = plan(Some(&known(source)), &varies);
        assert_eq!((f.variant.marker.epoch, f.write_marker), (3, true));
    }
    let other_names = plan(
        Some(&known(MarkerSource::StoredFresh)),
        &headers(&[("Vary", "Accept-Encoding, Accept-Language")]),
    );
    assert_eq!(
        other_names.variant.marker.epoch, 9,
        "a new list, a new epoch"
    );
    assert!(other_names.write_marker);
}
