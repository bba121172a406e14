//! Timestamps: always UTC, always RFC 3339, so logs and status from hosts in
//! different time zones line up.

use std::time::SystemTime;

/// `t` as UTC RFC 3339 with milliseconds, e.g. `2026-01-01T12:00:00.000Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The current time as UTC RFC 3339 with milliseconds (see [`rfc3339`]).
pub fn now_rfc3339() -> String {
    rfc3339(SystemTime::now())
}

/// Milliseconds since the Unix epoch, for deadlines and back-off stored in
/// the state database; 0 from a clock set before 1970.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_with_z() {
        let s = super::rfc3339(std::time::UNIX_EPOCH);
        assert_eq!(s, "1970-01-01T00:00:00.000Z");
    }
}
