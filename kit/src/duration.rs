//! Durations in settings. A setting's name says its unit
//! (`idle_timeout_ms`), and it takes either a whole number of that unit
//! (`idle_timeout_ms = 30000`) or a duration in words (`idle_timeout_ms =
//! "30s"`, `"1m 30s"`, `"250ms"`; the `humantime` crate's forms). In code
//! it is a [`Duration`]; written out (the defaults in docs/settings.md) it
//! is the number.
//!
//! ```
//! # use std::time::Duration;
//! #[derive(serde::Deserialize)]
//! struct S {
//!     #[serde(with = "warren_kit::duration::ms")]
//!     idle_timeout_ms: Duration,
//! }
//! let s: S = serde_json::from_str(r#"{"idle_timeout_ms": "1m 30s"}"#).unwrap();
//! assert_eq!(s.idle_timeout_ms, Duration::from_secs(90));
//! ```

use std::{fmt, time::Duration};

use serde::{Deserializer, Serializer, de};

/// The unit a setting's number is in.
#[derive(Clone, Copy)]
enum Unit {
    Micros,
    Millis,
    Secs,
}

impl Unit {
    fn of(self, n: u64) -> Duration {
        match self {
            Unit::Micros => Duration::from_micros(n),
            Unit::Millis => Duration::from_millis(n),
            Unit::Secs => Duration::from_secs(n),
        }
    }

    fn count(self, d: &Duration) -> u64 {
        let n = match self {
            Unit::Micros => d.as_micros(),
            Unit::Millis => d.as_millis(),
            Unit::Secs => u128::from(d.as_secs()),
        };
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    fn name(self) -> &'static str {
        match self {
            Unit::Micros => "microseconds",
            Unit::Millis => "milliseconds",
            Unit::Secs => "seconds",
        }
    }
}

struct Visitor(Unit);

impl de::Visitor<'_> for Visitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a whole number of {} or a duration such as \"250ms\", \"30s\" or \"5m\"",
            self.0.name()
        )
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
        Ok(self.0.of(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
        u64::try_from(n)
            .map(|n| self.0.of(n))
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(n), &self))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Duration, E> {
        let s = s.trim();
        if let Ok(n) = s.parse::<u64>() {
            return Ok(self.0.of(n));
        }
        humantime::parse_duration(s).map_err(|e| {
            E::custom(format_args!(
                "{s:?} is not a duration ({e}): write a whole number of {} or a duration \
                 such as \"250ms\", \"30s\" or \"5m\"",
                self.0.name()
            ))
        })
    }
}

fn deserialize<'de, D: Deserializer<'de>>(d: D, unit: Unit) -> Result<Duration, D::Error> {
    d.deserialize_any(Visitor(unit))
}

fn serialize<S: Serializer>(d: &Duration, s: S, unit: Unit) -> Result<S::Ok, S::Error> {
    s.serialize_u64(unit.count(d))
}

macro_rules! unit_module {
    ($name:ident, $unit:expr, $doc:literal) => {
        #[doc = $doc]
        pub mod $name {
            use std::time::Duration;

            use serde::{Deserializer, Serializer};

            pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
                super::deserialize(d, $unit)
            }

            pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
                super::serialize(d, s, $unit)
            }
        }
    };
}

unit_module!(
    us,
    super::Unit::Micros,
    "A setting named `…_us`: `#[serde(with = \"warren_kit::duration::us\")]`."
);
unit_module!(
    ms,
    super::Unit::Millis,
    "A setting named `…_ms`: `#[serde(with = \"warren_kit::duration::ms\")]`."
);
unit_module!(
    s,
    super::Unit::Secs,
    "A setting named `…_s` or `…_secs`: `#[serde(with = \"warren_kit::duration::s\")]`."
);

/// A duration in words ("7days", "12h", "1m 30s"), for the command line.
pub fn parse_words(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{s:?} is not a duration ({e}): write e.g. \"7days\" or \"12h\""))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde::{Deserialize, Serialize};

    #[derive(Debug, Deserialize, Serialize)]
    struct S {
        #[serde(with = "super::ms")]
        t_ms: Duration,
        #[serde(with = "super::s")]
        t_s: Duration,
    }

    fn parse(json: &str) -> Result<S, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_are_in_the_named_unit_and_words_in_their_own() {
        let s = parse(r#"{"t_ms": 1500, "t_s": "2m"}"#).unwrap();
        assert_eq!(
            (s.t_ms, s.t_s),
            (Duration::from_millis(1500), Duration::from_secs(120))
        );
        let s = parse(r#"{"t_ms": "1m30s", "t_s": "7days"}"#).unwrap();
        assert_eq!(
            (s.t_ms, s.t_s),
            (Duration::from_secs(90), Duration::from_secs(7 * 86_400))
        );
        let s = parse(r#"{"t_ms": "1s 250ms", "t_s": "30"}"#).unwrap();
        assert_eq!(
            (s.t_ms, s.t_s),
            (Duration::from_millis(1250), Duration::from_secs(30))
        );
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"t_ms":1250,"t_s":30}"#,
            "written back as numbers"
        );
    }

    #[test]
    fn bad_durations_say_what_is_wanted() {
        let e = parse(r#"{"t_ms": "soon", "t_s": 1}"#).unwrap_err();
        assert!(
            e.contains("\"soon\" is not a duration") && e.contains("milliseconds"),
            "{e}"
        );
        let e = parse(r#"{"t_ms": -5, "t_s": 1}"#).unwrap_err();
        assert!(e.contains("whole number of milliseconds"), "{e}");
        let e = parse(r#"{"t_ms": 1.5, "t_s": 1}"#).unwrap_err();
        assert!(e.contains("whole number of milliseconds"), "{e}");
    }
}
