//! Zendesk resource ids: canonical positive decimals that must survive exactly,
//! including values above 2^53 that a float would round.

/// Parses a canonical positive decimal (`[1-9][0-9]*`, fits in `u64`).
/// Leading zeros, signs, spaces and `0` are refused so that one id has exactly
/// one spelling (it becomes part of subjects and keys).
pub fn parse_canonical_id(s: &str) -> Option<u64> {
    let bytes = s.as_bytes();
    if bytes.is_empty() || bytes.len() > 20 || bytes[0] == b'0' {
        return None;
    }
    if !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.parse::<u64>().ok().filter(|v| *v > 0)
}

/// True when `s` is a canonical positive decimal id.
pub fn is_canonical_id(s: &str) -> bool {
    parse_canonical_id(s).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ids() {
        assert_eq!(parse_canonical_id("5158"), Some(5158));
        assert_eq!(
            parse_canonical_id("9223372036854775807"),
            Some(9_223_372_036_854_775_807)
        );
        assert_eq!(parse_canonical_id("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "0",
            "012",
            "-1",
            "+1",
            " 1",
            "1 ",
            "1.0",
            "1e3",
            "18446744073709551616",
            "abc",
        ] {
            assert_eq!(parse_canonical_id(bad), None, "{bad:?}");
        }
    }
}
