//! Human-friendly units in the configuration: durations ("250ms", "30s") and
//! byte sizes ("16MiB", "10GB"). Parsing is delegated to `humantime` and
//! `parse-size`; this file only adapts them to serde and keeps the original
//! spelling for error messages.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;

/// A duration written as text ("10s", "1m 30s", "250ms") or as whole seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Self {
        Dur(Duration::from_secs(s))
    }
    pub const fn millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }
    pub fn get(self) -> Duration {
        self.0
    }
}

impl std::str::FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
            format!("invalid duration {s:?}: {e} (examples: \"500ms\", \"30s\", \"5m\")")
        })
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurVisitor)
    }
}

/// A duration as text, or as a number of seconds (a fraction allowed).
struct DurVisitor;

impl serde::de::Visitor<'_> for DurVisitor {
    type Value = Dur;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration: text such as \"30s\" or \"250ms\", or a number of seconds")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
        Ok(Dur::secs(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
        u64::try_from(v)
            .map(Dur::secs)
            .map_err(|_| E::custom(format!("a duration cannot be negative ({v})")))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dur, E> {
        Duration::try_from_secs_f64(v).map(Dur).map_err(|_| {
            E::custom(format!(
                "{v} is not a duration in seconds (it must be finite and not negative)"
            ))
        })
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
        v.parse().map_err(E::custom)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A byte size written as text ("16MiB", "10 GB", "4096") or as a number of bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl Size {
    pub const fn bytes(b: u64) -> Self {
        Size(b)
    }
    pub const fn mib(m: u64) -> Self {
        Size(m << 20)
    }
    pub fn get(self) -> u64 {
        self.0
    }
}

impl std::str::FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_size::Config::new()
            .with_binary()
            .parse_size(s.trim())
            .map(Size)
            .map_err(|e| {
                format!("invalid size {s:?}: {e} (examples: \"4096\", \"16MiB\", \"10GiB\")")
            })
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut v = self.0;
        let mut unit = 0;
        while unit + 1 < UNITS.len() && v >= 1024 && v.is_multiple_of(1024) {
            v /= 1024;
            unit += 1;
        }
        write!(f, "{v}{}", UNITS[unit])
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SizeVisitor)
    }
}

/// A size as text, or as a whole number of bytes.
struct SizeVisitor;

impl serde::de::Visitor<'_> for SizeVisitor {
    type Value = Size;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a size: text such as \"16MiB\" or \"10GiB\", or a whole number of bytes")
    }

    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Size, E> {
        Ok(Size(v))
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
        u64::try_from(v)
            .map(Size)
            .map_err(|_| E::custom(format!("a size cannot be negative ({v})")))
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Size, E> {
        Err(E::custom(format!(
            "{v} is not a whole number of bytes; write a size such as \"1.5GiB\" as text"
        )))
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
        v.parse().map_err(E::custom)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_text_and_seconds() {
        assert_eq!("250ms".parse::<Dur>().unwrap(), Dur::millis(250));
        assert_eq!("1m 30s".parse::<Dur>().unwrap(), Dur::secs(90));
        assert!("soon".parse::<Dur>().is_err());
        let d: Dur = toml::from_str::<toml::Value>("v = 7")
            .unwrap()
            .get("v")
            .cloned()
            .unwrap()
            .try_into()
            .unwrap();
        assert_eq!(d, Dur::secs(7));
        let from = |toml_value: &str| {
            toml::from_str::<toml::Value>(&format!("v = {toml_value}"))
                .unwrap()
                .get("v")
                .cloned()
                .unwrap()
                .try_into::<Dur>()
                .map_err(|e| e.to_string())
        };
        assert_eq!(from("1.5"), Ok(Dur::millis(1500)));
        assert!(from("-2").unwrap_err().contains("negative"));
        assert!(from("true").unwrap_err().contains("a duration"));
        let sized = |toml_value: &str| {
            toml::from_str::<toml::Value>(&format!("v = {toml_value}"))
                .unwrap()
                .get("v")
                .cloned()
                .unwrap()
                .try_into::<Size>()
                .map_err(|e| e.to_string())
        };
        assert_eq!(sized("4096"), Ok(Size(4096)));
        assert!(sized("1.5").unwrap_err().contains("whole number"));
        assert!(sized("[1]").unwrap_err().contains("a size"));
    }

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!("16MiB".parse::<Size>().unwrap(), Size::mib(16));
        assert_eq!("16MB".parse::<Size>().unwrap(), Size(16 << 20));
        assert_eq!("4096".parse::<Size>().unwrap(), Size(4096));
        assert!("lots".parse::<Size>().is_err());
        assert_eq!(Size::mib(16).to_string(), "16MiB");
        assert_eq!(Size(1000).to_string(), "1000B");
    }
}
