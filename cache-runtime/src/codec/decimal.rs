//! Numbers stored as decimal text, as Redis keeps them: counters (`INCR`)
//! and the versions of namespaces and tags.

/// Reads a counter: optional `-`, then decimal digits that fit an `i64`, as Redis writes them.
pub(crate) fn parse_counter(bytes: &[u8]) -> Option<i64> {
    match bytes.strip_prefix(b"-") {
        Some(digits) => 0_i64.checked_sub_unsigned(parse_decimal(digits)?),
        None => i64::try_from(parse_decimal(bytes)?).ok(),
    }
}

/// The number `digits` spell (ASCII digits only), if it fits a `u64`.
pub(crate) fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    if digits.len() < 20 {
        // Fewer than 20 digits cannot overflow: no check per digit (a
        // version has 16, and a tagged hit reads three).
        let mut n = 0_u64;
        for &digit in digits {
            let value = digit.wrapping_sub(b'0');
            if value > 9 {
                return None;
            }
            n = n * 10 + u64::from(value);
        }
        return Some(n);
    }
    digits.iter().try_fold(0_u64, |n, &digit| {
        if !digit.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(digit - b'0'))
    })
}

/// A random version for a version key that does not exist yet.
pub(crate) fn fresh_version() -> u64 {
    // 52 bits: with 2^52 bumps of room below 2^53, every version a script
    // returns is exact in a Lua number (a double).
    crate::clock::random_id() >> 12
}

#[cfg(test)]
mod tests {
    use super::{parse_counter, parse_decimal};

    #[test]
    fn counters_and_versions_parse_as_redis_writes_them() {
        for text in [
            "0",
            "-0",
            "7",
            "-7",
            "007",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            assert_eq!(
                parse_counter(text.as_bytes()),
                text.parse::<i64>().ok(),
                "{text}"
            );
        }
        for text in [
            "",
            "-",
            "+5",
            " 5",
            "5 ",
            "5a",
            "1.5",
            "9223372036854775808",
            "-9223372036854775809",
            "--1",
        ] {
            assert_eq!(parse_counter(text.as_bytes()), None, "{text}");
        }
        assert_eq!(parse_decimal(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(b"18446744073709551616"), None);
        assert_eq!(parse_decimal(b"4503599627370495"), Some((1 << 52) - 1));
        assert_eq!(parse_decimal(b"-1"), None);
        for text in [
            "",
            "0",
            "9999999999999999999",
            "99999999999999999999",
            "12/4",
            "1:2",
            "007",
        ] {
            assert_eq!(
                parse_decimal(text.as_bytes()),
                text.parse::<u64>()
                    .ok()
                    .filter(|_| text.bytes().all(|b| b.is_ascii_digit())),
                "{text}"
            );
        }
    }
}
