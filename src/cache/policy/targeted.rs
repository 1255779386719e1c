//! Targeted cache-control fields (RFC 9213): which field's directives this
//! cache obeys for a response, and which targeted fields must not travel
//! further downstream. Our target list is `Edgeslab-Cache-Control` (this
//! product's own field), then `CDN-Cache-Control`; the first one present
//! with a valid, non-empty value replaces `Cache-Control` *and* `Expires`
//! for this cache's decisions (RFC 9213 §2.2), otherwise `Cache-Control`
//! rules as usual. Pure: headers in, directives out.

use super::directives::{Arg, Quoting, ResponseDirectives};
use super::structured::{Value, parse_dictionary};
use crate::http::Headers;

/// The field this cache took its directives from, for one response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControllingField {
    EdgeslabCacheControl,
    CdnCacheControl,
    CacheControl,
}

impl ControllingField {
    /// The field name as sent on the wire.
    pub fn name(self) -> &'static str {
        match self {
            ControllingField::EdgeslabCacheControl => "Edgeslab-Cache-Control",
            ControllingField::CdnCacheControl => "CDN-Cache-Control",
            ControllingField::CacheControl => "Cache-Control",
        }
    }

    /// The access log's token.
    pub fn token(self) -> &'static str {
        match self {
            ControllingField::EdgeslabCacheControl => "edgeslab-cache-control",
            ControllingField::CdnCacheControl => "cdn-cache-control",
            ControllingField::CacheControl => "cache-control",
        }
    }

    /// Whether `Expires` counts: only without a targeted field (RFC 9213
    /// §2.2: the cache "MUST ignore the Cache-Control and Expires header
    /// fields" when it uses a targeted one).
    pub fn honours_expires(self) -> bool {
        self == ControllingField::CacheControl
    }
}

/// This cache's target list, most specific first (RFC 9213 §2.2).
pub const TARGET_LIST: [ControllingField; 2] = [
    ControllingField::EdgeslabCacheControl,
    ControllingField::CdnCacheControl,
];

/// The directives that govern this cache for one response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Controls {
    pub field: ControllingField,
    pub directives: ResponseDirectives,
}

impl Controls {
    /// The first targeted field on the target list that is present, valid
    /// and non-empty; otherwise `Cache-Control`.
    pub fn of(headers: &Headers) -> Controls {
        for field in TARGET_LIST {
            if let Some(directives) = targeted_directives(headers, field.name()) {
                return Controls { field, directives };
            }
        }
        Controls {
            field: ControllingField::CacheControl,
            directives: ResponseDirectives::from_cache_control(headers),
        }
    }
}

/// A targeted field's directives, or `None` when it is absent, empty or
/// does not parse as a Dictionary (RFC 9213 §2.1: then "that field MUST be
/// ignored").
fn targeted_directives(headers: &Headers, name: &str) -> Option<ResponseDirectives> {
    let mut combined = String::new();
    for line in headers.get_all(name) {
        let line = std::str::from_utf8(line).ok()?;
        if !combined.is_empty() {
            combined.push_str(", ");
        }
        combined.push_str(line.trim_matches([' ', '\t']));
    }
    let members = parse_dictionary(&combined).ok()?;
    if members.is_empty() {
        return None;
    }
    let mut d = ResponseDirectives::default();
    for (key, value) in members {
        // RFC 9213 §2.1: a directive without a value is Boolean true; a
        // false one is as if absent. Values of types a directive cannot
        // have are not consumed (Strict quoting turns a String max-age into
        // an invalid one).
        let arg = match value {
            Value::Boolean(true) => Arg::None,
            Value::Boolean(false) => continue,
            Value::Integer(n) => Arg::Token(n.to_string().into()),
            Value::String(s) => Arg::Quoted(s.into()),
            Value::Token(t) => Arg::Token(t.into()),
            Value::Other => Arg::Unusable,
        };
        d.apply(&key, arg, Quoting::Strict);
    }
    Some(d)
}

/// Who receives what this node sends downstream: decides which targeted
/// fields it strips.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Downstream {
    /// An edge: browsers and apps, which implement neither targeted field.
    #[default]
    Viewers,
    /// A regional tier: its downstream is our own edges, which obey both.
    Caches,
}

/// The targeted fields to remove from responses sent downstream.
///
/// RFC 9213 §3: a CDN "will typically forward [CDN-Cache-Control] so that
/// downstream CDN caches can use it", and "MAY remove it when this is
/// undesirable (for example, ... because it is known not to be used
/// downstream)". A regional forwards both fields: its downstream is edges
/// with the same target list. An edge faces viewers, which use neither;
/// forwarding them would only disclose the origin's CDN policy (and a
/// freshness longer than `Cache-Control` grants), so it removes both.
/// Other targeted fields are not on our target list and pass through (RFC
/// 9213 §2.2: they "MUST be passed through").
pub fn fields_to_strip(downstream: Downstream) -> &'static [&'static str] {
    match downstream {
        Downstream::Viewers => &["Edgeslab-Cache-Control", "CDN-Cache-Control"],
        Downstream::Caches => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::super::directives::{Coverage, DeltaSeconds};
    use super::*;

    fn headers(fields: &[(&str, &str)]) -> Headers {
        Headers::from_fields(fields)
    }

    // RFC 9213 §2.2: the first valid field on the target list wins, and
    // Cache-Control is then ignored.
    #[test]
    fn most_specific_valid_field_wins() {
        let h = headers(&[
            ("Cache-Control", "no-store"),
            ("CDN-Cache-Control", "max-age=600"),
            (
                "Edgeslab-Cache-Control",
                "max-age=60, stale-while-revalidate=5",
            ),
        ]);
        let c = Controls::of(&h);
        assert_eq!(c.field, ControllingField::EdgeslabCacheControl);
        assert_eq!(c.directives.max_age, Some(DeltaSeconds::Valid(60)));
        assert!(!c.directives.no_store);
        assert!(!c.field.honours_expires());

        let h = headers(&[
            ("Cache-Control", "no-store"),
            ("CDN-Cache-Control", "max-age=600"),
        ]);
        let c = Controls::of(&h);
        assert_eq!(c.field, ControllingField::CdnCacheControl);
        assert_eq!(c.directives.max_age, Some(DeltaSeconds::Valid(600)));
        assert!(!c.directives.no_store);
    }

    // RFC 9213 §2.1: an empty or unparseable field is ignored, falling
    // back to the next field on the list, then to Cache-Control.
    #[test]
    fn invalid_or_empty_fields_are_ignored() {
        let h = headers(&[
            ("Cache-Control", "max-age=5"),
            ("Edgeslab-Cache-Control", "Max-Age=60"),
            ("CDN-Cache-Control", "   "),
        ]);
        let c = Controls::of(&h);
        assert_eq!(c.field, ControllingField::CacheControl);
        assert_eq!(c.directives.max_age, Some(DeltaSeconds::Valid(5)));
        assert!(c.field.honours_expires());
        // A field split over lines is one dictionary; an error on any line
        // fails it whole.
        let h = headers(&[
            ("CDN-Cache-Control", "max-age=60"),
            ("CDN-Cache-Control", "x="),
        ]);
        assert_eq!(Controls::of(&h).field, ControllingField::CacheControl);
        let h = headers(&[
            ("CDN-Cache-Control", "max-age=60"),
            ("CDN-Cache-Control", "public"),
        ]);
        let c = Controls::of(&h);
        assert!(c.directives.public && c.directives.max_age.is_some());
    }

    // RFC 9213 §2.1: values are typed; a String max-age or a Decimal one is
    // not consumed, Boolean false is absent, parameters are ignored.
    #[test]
    fn typed_values() {
        let c = Controls::of(&headers(&[("CDN-Cache-Control", "max-age=\"60\"")]));
        assert_eq!(c.directives.max_age, Some(DeltaSeconds::Invalid));
        let c = Controls::of(&headers(&[("CDN-Cache-Control", "max-age=1.5")]));
        assert_eq!(c.directives.max_age, Some(DeltaSeconds::Invalid));
        let c = Controls::of(&headers(&[(
            "CDN-Cache-Control",
            "no-store=?0, max-age=9;x=1",
        )]));
        assert!(!c.directives.no_store);
        assert_eq!(c.directives.max_age, Some(DeltaSeconds::Valid(9)));
        let c = Controls::of(&headers(&[("CDN-Cache-Control", "private=\"x-user\"")]));
        assert!(matches!(c.directives.private, Some(Coverage::Fields(_))));
        // RFC 9213 §3 example: "none" is an unknown directive, but the field
        // is valid, so Cache-Control's no-store no longer applies here.
        let h = headers(&[("Cache-Control", "no-store"), ("CDN-Cache-Control", "none")]);
        let c = Controls::of(&h);
        assert_eq!(c.field, ControllingField::CdnCacheControl);
        assert!(!c.directives.no_store);
    }

    // RFC 9213 §3: an edge facing viewers strips both of its targeted
    // fields; a regional forwards them to the edges below it.
    #[test]
    fn downstream_stripping() {
        assert_eq!(
            fields_to_strip(Downstream::Viewers),
            ["Edgeslab-Cache-Control", "CDN-Cache-Control"]
        );
        assert!(fields_to_strip(Downstream::Caches).is_empty());
        assert_eq!(
            ControllingField::CdnCacheControl.token(),
            "cdn-cache-control"
        );
    }
}
