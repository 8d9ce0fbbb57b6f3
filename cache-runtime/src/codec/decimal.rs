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
        // Fewer than 20 digits cannot overflow: no check per digit, and
        // eight digits at a time (a version has 16, and a tagged hit reads
        // three).
        let mut eights = digits.chunks_exact(8);
        let mut n = 0_u64;
        for eight in &mut eights {
            n = n * 100_000_000 + eight_digits(eight)?;
        }
        for &digit in eights.remainder() {
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

/// The number eight ASCII digits spell, read as one word: each byte
/// checked at once, then pairs, fours and eights of digits combined by
/// multiplications that cannot carry from one lane into the next.
fn eight_digits(eight: &[u8]) -> Option<u64> {
    const ZEROS: u64 = u64::from_le_bytes([b'0'; 8]);
    const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
    const EVEN: u64 = 0x0000_00FF_0000_00FF;
    let mut word = [0; 8];
    word.copy_from_slice(eight);
    let word = u64::from_le_bytes(word);
    // Every byte is 0x30..=0x3F, and stays below 0x40 once 6 is added:
    // 0x30..=0x39, an ASCII digit.
    if word & HIGH != ZEROS || word.wrapping_add(0x0606_0606_0606_0606) & HIGH != ZEROS {
        return None;
    }
    // The first digit is the lowest byte. Pairs: each even byte holds 10 ×
    // its digit + the next one.
    let pairs = (word - ZEROS) * 10 + ((word - ZEROS) >> 8);
    // Pairs 0 and 2 times 10^6 and 10^2, pairs 1 and 3 times 10^4 and 1,
    // summed in the high half.
    let first = (pairs & EVEN).wrapping_mul(100 + (1_000_000 << 32));
    let second = ((pairs >> 16) & EVEN).wrapping_mul(1 + (10_000 << 32));
    Some(first.wrapping_add(second) >> 32)
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
        // Every length that reads eight digits at a time, with each byte
        // in turn not a digit (the bytes around the digits included).
        let text = "9876543210123456789";
        for len in 1..text.len() {
            let digits = &text.as_bytes()[..len];
            assert_eq!(parse_decimal(digits), text[..len].parse().ok(), "{len}");
            for at in 0..len {
                for wrong in [b'/', b':', b' ', b'a', 0xFF, 0x00, b'0' + 16, b'9' + 6] {
                    let mut bad = digits.to_vec();
                    bad[at] = wrong;
                    assert_eq!(parse_decimal(&bad), None, "{len} {at} {wrong}");
                }
            }
        }
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
