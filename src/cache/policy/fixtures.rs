//! Shared fixtures of the policy layer's unit tests: a fixed clock and
//! responses built from field lists.

use crate::http::ResponseHead;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `secs` seconds after a fixed instant (November 2023), so tests that
/// compare dates never depend on the machine's clock.
pub(crate) fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

/// The IMF-fixdate of `at(secs)`.
pub(crate) fn date(secs: u64) -> String {
    httpdate::fmt_http_date(at(secs))
}

/// A response head with `status` and the given fields, in order.
pub(crate) fn resp(status: u16, fields: &[(&str, &str)]) -> ResponseHead {
    ResponseHead::with_fields(status, fields)
}
