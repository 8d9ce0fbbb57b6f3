//! Expansion snapshots of the main forms of `#[cached]` and `invalidate!`
//! (`tests/expand/*.expanded.rs`; needs `cargo expand`, which scripts/test installs).

#[test]
fn expansions() {
    macrotest::expand("tests/expand/*.rs");
}
