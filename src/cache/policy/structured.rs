//! The Dictionary Structured Field grammar (RFC 8941 §3.2, parsed per
//! §4.2.2), which targeted cache-control fields use (RFC 9213 §2.1). Only
//! what a targeted field needs: members with their bare-item values, the
//! types kept as far as the directives care. Any syntax error fails the
//! whole field, as RFC 9213 §2.1 requires ("that field MUST be ignored");
//! it never guesses.

/// A member's value, reduced to what a cache directive can use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Value {
    Integer(i64),
    /// Decimals, byte sequences and inner lists: valid syntax, never a
    /// valid cache-directive argument.
    Other,
    String(String),
    Token(String),
    Boolean(bool),
}

/// A syntax error somewhere in the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Malformed;

/// Parses the combined field value (all lines joined with ", ", RFC 8941
/// §4.2). A key given twice keeps its last value (§4.2.2).
pub(super) fn parse_dictionary(input: &str) -> Result<Vec<(String, Value)>, Malformed> {
    let mut p = Parser {
        bytes: input.as_bytes(),
        pos: 0,
    };
    if !input.is_ascii() {
        return Err(Malformed);
    }
    p.skip_sp();
    let mut members: Vec<(String, Value)> = Vec::new();
    while !p.done() {
        let key = p.key()?;
        let value = if p.eat(b'=') {
            p.item_or_inner_list()?
        } else {
            p.parameters()?;
            Value::Boolean(true)
        };
        match members.iter_mut().find(|(k, _)| *k == key) {
            Some(existing) => existing.1 = value,
            None => members.push((key, value)),
        }
        p.skip_ows();
        if p.done() {
            break;
        }
        if !p.eat(b',') {
            return Err(Malformed);
        }
        p.skip_ows();
        if p.done() {
            return Err(Malformed);
        }
    }
    Ok(members)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Parser<'_> {
    fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn skip_sp(&mut self) {
        while self.eat(b' ') {}
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    /// key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" )
    fn key(&mut self) -> Result<String, Malformed> {
        let start = self.pos;
        match self.peek() {
            Some(b) if b.is_ascii_lowercase() || b == b'*' => self.pos += 1,
            _ => return Err(Malformed),
        }
        while let Some(b) = self.peek() {
            if b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.*".contains(&b) {
                self.pos += 1;
            } else {
                break;
            }
        }
        Ok(String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned())
    }

    fn item_or_inner_list(&mut self) -> Result<Value, Malformed> {
        if self.eat(b'(') {
            loop {
                self.skip_sp();
                if self.eat(b')') {
                    self.parameters()?;
                    return Ok(Value::Other);
                }
                self.bare_item()?;
                self.parameters()?;
                if !matches!(self.peek(), Some(b' ' | b')')) {
                    return Err(Malformed);
                }
            }
        }
        let value = self.bare_item()?;
        self.parameters()?;
        Ok(value)
    }

    /// Parameters are ignored (RFC 9213 §2.1) but must parse.
    fn parameters(&mut self) -> Result<(), Malformed> {
        while self.eat(b';') {
            self.skip_sp();
            self.key()?;
            if self.eat(b'=') {
                self.bare_item()?;
            }
        }
        Ok(())
    }

    fn bare_item(&mut self) -> Result<Value, Malformed> {
        match self.peek() {
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'"') => self.string(),
            Some(b'*' | b'A'..=b'Z' | b'a'..=b'z') => Ok(self.token()),
            Some(b':') => self.byte_sequence(),
            Some(b'?') => self.boolean(),
            _ => Err(Malformed),
        }
    }

    /// RFC 8941 §4.2.4: at most 15 integer digits; decimals at most 12
    /// before and 1 to 3 after the point.
    fn number(&mut self) -> Result<Value, Malformed> {
        let negative = self.eat(b'-');
        let start = self.pos;
        let mut point = None;
        while let Some(b) = self.peek() {
            if b.is_ascii_digit() {
                self.pos += 1;
            } else if b == b'.' && point.is_none() {
                point = Some(self.pos);
                self.pos += 1;
            } else {
                break;
            }
        }
        let digits = &self.bytes[start..self.pos];
        match point {
            None => {
                if digits.is_empty() || digits.len() > 15 {
                    return Err(Malformed);
                }
                let text = std::str::from_utf8(digits).map_err(|_| Malformed)?;
                let n: i64 = text.parse().map_err(|_| Malformed)?;
                Ok(Value::Integer(if negative { -n } else { n }))
            }
            Some(dot) => {
                let (int, frac) = (dot - start, self.pos - dot - 1);
                if int == 0 || int > 12 || frac == 0 || frac > 3 {
                    return Err(Malformed);
                }
                Ok(Value::Other)
            }
        }
    }

    fn string(&mut self) -> Result<Value, Malformed> {
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => return Err(Malformed),
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(c @ (b'"' | b'\\')) => {
                            out.push(c as char);
                            self.pos += 1;
                        }
                        _ => return Err(Malformed),
                    }
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Value::String(out));
                }
                Some(c @ 0x20..=0x7e) => {
                    out.push(c as char);
                    self.pos += 1;
                }
                Some(_) => return Err(Malformed),
            }
        }
    }

    /// sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" )
    fn token(&mut self) -> Value {
        let start = self.pos;
        self.pos += 1;
        while let Some(b) = self.peek() {
            if b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&b) {
                self.pos += 1;
            } else {
                break;
            }
        }
        Value::Token(String::from_utf8_lossy(&self.bytes[start..self.pos]).into_owned())
    }

    fn byte_sequence(&mut self) -> Result<Value, Malformed> {
        self.pos += 1;
        while let Some(b) = self.peek() {
            self.pos += 1;
            if b == b':' {
                return Ok(Value::Other);
            }
            if !(b.is_ascii_alphanumeric() || b"+/=".contains(&b)) {
                return Err(Malformed);
            }
        }
        Err(Malformed)
    }

    fn boolean(&mut self) -> Result<Value, Malformed> {
        self.pos += 1;
        let value = match self.peek() {
            Some(b'1') => true,
            Some(b'0') => false,
            _ => return Err(Malformed),
        };
        self.pos += 1;
        Ok(Value::Boolean(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Vec<(String, Value)> {
        parse_dictionary(s).unwrap_or_else(|_| panic!("{s:?} should parse"))
    }

    // RFC 8941 §3.2: members with and without values, parameters ignored.
    #[test]
    fn dictionary_members() {
        let d = ok("max-age=60, no-store, private=\"x-a, x-b\";p=1, tag=abc/d");
        assert_eq!(
            d,
            vec![
                ("max-age".into(), Value::Integer(60)),
                ("no-store".into(), Value::Boolean(true)),
                ("private".into(), Value::String("x-a, x-b".into())),
                ("tag".into(), Value::Token("abc/d".into())),
            ]
        );
        assert_eq!(ok("  a=?0,b=-5")[1], ("b".into(), Value::Integer(-5)));
        assert_eq!(ok("a=1.5")[0].1, Value::Other);
        assert_eq!(ok("a=(1 2);x, b=:aGk=:")[1].1, Value::Other);
        assert_eq!(ok("")[..], []);
    }

    // RFC 8941 §4.2.2: a repeated key keeps its last value.
    #[test]
    fn last_value_wins() {
        assert_eq!(
            ok("max-age=1, max-age=2"),
            vec![("max-age".into(), Value::Integer(2))]
        );
    }

    // RFC 9213 §2.1 with RFC 8941 §4.2: any syntax error fails the field.
    #[test]
    fn syntax_errors_fail_the_field() {
        for bad in [
            "Max-Age=60",
            "max-age=60,",
            "max-age=60;",
            "max-age==1",
            "max-age=\"open",
            "a=1234567890123456",
            "a=1.2345",
            "a=?2",
            "a b",
            "a=\u{e9}",
            "a=\"\\x\"",
            "a=(1 2",
            "a=:zz",
            "1a=1",
        ] {
            assert_eq!(parse_dictionary(bad), Err(Malformed), "{bad:?}");
        }
    }
}
