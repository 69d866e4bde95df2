//! Twilio wire details: form parameters and the RFC 2822 `Timestamp` of status callbacks.
//! (Call events come from the state machine in [`super::calls`].)

/// The first value of form parameter `name`, unless empty.
pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// Parse an RFC 2822 date as Twilio sends it (`Thu, 01 Jan 2026 12:01:00 +0000`) to unix
/// seconds (the `time` crate's RFC 2822 parser: day names, zones and ranges checked).
pub fn parse_rfc2822(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc2822)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2822_dates() {
        assert_eq!(parse_rfc2822("Thu, 01 Jan 1970 00:00:00 +0000"), Some(0));
        assert_eq!(parse_rfc2822("Thu, 01 Jan 2026 12:01:00 +0000"), Some(1_767_268_860));
        assert_eq!(parse_rfc2822("Thu, 01 Jan 2026 13:01:00 +0100"), Some(1_767_268_860));
        assert_eq!(parse_rfc2822("Thu, 29 Feb 2024 00:00:00 GMT"), Some(1_709_164_800));
        assert_eq!(parse_rfc2822("Thu, 30 Feb 2024 00:00:00 +0000"), None);
        assert_eq!(parse_rfc2822("yesterday"), None);
    }
}
