//! Which response fields carry an object's tags, and reading them: from a
//! parsed head, from its header list, or straight from the stored head's
//! bytes (as the store keeps them: status line, `Name: value` lines, each
//! ending in CRLF), which is what the lookup path has at hand. Pure.

use crate::http::headers::list_elements;
use crate::http::{Headers, ResponseHead};

/// How one tag field separates its tags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagSeparator {
    /// Space-separated tokens (Fastly's `Surrogate-Key`).
    Whitespace,
    /// A comma-separated list (Cloudflare's `Cache-Tag`).
    Comma,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagField {
    /// Matched case-insensitively.
    pub name: String,
    pub separator: TagSeparator,
}

impl TagField {
    pub fn new(name: &str, separator: TagSeparator) -> TagField {
        TagField {
            name: name.to_owned(),
            separator,
        }
    }
}

/// The fields tags are read from, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagFields(Vec<TagField>);

impl Default for TagFields {
    /// `Surrogate-Key` (space-separated) and `Cache-Tag` (comma-separated).
    fn default() -> Self {
        TagFields(vec![
            TagField::new("Surrogate-Key", TagSeparator::Whitespace),
            TagField::new("Cache-Tag", TagSeparator::Comma),
        ])
    }
}

impl TagFields {
    pub fn new(fields: Vec<TagField>) -> TagFields {
        TagFields(fields)
    }

    pub fn fields(&self) -> &[TagField] {
        &self.0
    }

    /// The tags of a parsed response head.
    pub fn of_response(&self, head: &ResponseHead) -> Vec<String> {
        self.of_headers(&head.headers)
    }

    /// The tags in a header list, every occurrence of every tag field.
    pub fn of_headers(&self, headers: &Headers) -> Vec<String> {
        let mut tags = Vec::new();
        for field in &self.0 {
            for value in headers.get_all(&field.name) {
                push_tags(field.separator, value, &mut tags);
            }
        }
        tags
    }

    /// The tags of a stored head: its bytes as encoded for serving. Lines
    /// without a colon (the status line, a `Vary` marker) carry none.
    pub fn of_stored_head(&self, head: &[u8]) -> Vec<String> {
        let mut tags = Vec::new();
        let lines = head
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        for line in lines.skip(1) {
            if line.is_empty() {
                break;
            }
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = &line[..colon];
            for field in &self.0 {
                if name.eq_ignore_ascii_case(field.name.as_bytes()) {
                    push_tags(field.separator, line[colon + 1..].trim_ascii(), &mut tags);
                }
            }
        }
        tags
    }
}

fn push_tags(separator: TagSeparator, value: &[u8], out: &mut Vec<String>) {
    let text = |t: &[u8]| String::from_utf8_lossy(t).into_owned();
    match separator {
        TagSeparator::Whitespace => out.extend(
            value
                .split(u8::is_ascii_whitespace)
                .filter(|t| !t.is_empty())
                .map(text),
        ),
        TagSeparator::Comma => out.extend(list_elements(value).map(text)),
    }
}
