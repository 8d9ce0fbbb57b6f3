//! Hostile bytes: whatever a key holds, decoding is a value or
//! [`Undecodable`], never a panic, an abort or a hang.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde::Deserialize;

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    items: Vec<String>,
    total: f64,
    note: Option<String>,
    tags: BTreeMap<String, i32>,
}

/// A recursive type: hostile nesting must not overflow the stack.
#[derive(Debug, Deserialize)]
#[allow(dead_code)] // only decoded
struct Tree(Vec<Tree>);

/// Every target type a cached function commonly returns.
fn decode_all(bytes: &[u8]) {
    let _ = parse(bytes);
    let _ = decode::<String>(bytes);
    let _ = decode::<u32>(bytes);
    let _ = decode::<Vec<u64>>(bytes);
    let _ = decode::<Order>(bytes);
    let _ = decode::<Vec<Order>>(bytes);
    let _ = decode::<BTreeMap<String, Vec<u8>>>(bytes);
    let _ = decode::<Option<(i8, String, bool)>>(bytes);
    let _ = decode::<Tree>(bytes);
}

/// A valid envelope header with `stamps` versions.
fn header_bytes(flags: u8, stamps: u8) -> Vec<u8> {
    let versions: Vec<u64> = (0..u64::from(stamps)).collect();
    header(flags, &versions, Freshness::default())
}

fn order() -> impl Strategy<Value = Order> {
    (
        any::<u64>(),
        proptest::collection::vec(".*", 0..4),
        any::<f64>().prop_filter("NaN is not equal to itself", |f| !f.is_nan()),
        proptest::option::of(".*"),
        proptest::collection::btree_map(".*", any::<i32>(), 0..4),
    )
        .prop_map(|(id, items, total, note, tags)| Order {
            id,
            items,
            total,
            note,
            tags,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        decode_all(&bytes);
    }

    #[test]
    fn random_payloads_behind_a_valid_header_never_panic(
        flags in 0_u8..3,
        stamps in 0_u8..4,
        payload in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = header_bytes(flags, stamps);
        bytes.extend_from_slice(&payload);
        decode_all(&bytes);
    }

    #[test]
    fn values_round_trip_and_every_truncation_is_undecodable(order in order(), cut in any::<prop::sample::Index>()) {
        let bytes = encode(&order).unwrap();
        prop_assert_eq!(decode::<Order>(&bytes), Ok(order));
        let cut = cut.index(bytes.len());
        prop_assert_eq!(decode::<Order>(&bytes[..cut]), Err(Undecodable));
        let mut longer = bytes.clone();
        longer.push(0xc0);
        prop_assert_eq!(decode::<Order>(&longer), Err(Undecodable), "trailing bytes");
    }

    #[test]
    fn another_format_byte_is_undecodable(order in order(), format in 2_u8..=255) {
        let mut bytes = encode(&order).unwrap();
        bytes[0] = format;
        prop_assert_eq!(decode::<Order>(&bytes), Err(Undecodable));
    }
}

#[test]
fn huge_lengths_and_deep_nesting_are_undecodable() {
    let mut bytes = header_bytes(0, 0);
    // An array and a string claiming 4 G elements / bytes, with nothing behind them.
    for claim in [
        [0xdd, 0xff, 0xff, 0xff, 0xff],
        [0xdb, 0xff, 0xff, 0xff, 0xff],
    ] {
        let mut hostile = bytes.clone();
        hostile.extend_from_slice(&claim);
        decode_all(&hostile);
        assert_eq!(decode::<Vec<u64>>(&hostile), Err(Undecodable));
    }
    // 100 000 nested one-element arrays.
    bytes.extend(std::iter::repeat_n(0x91, 100_000));
    bytes.push(0x01);
    decode_all(&bytes);
    assert!(decode::<Tree>(&bytes).is_err());
}
