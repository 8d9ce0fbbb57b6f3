//! Compile-time behaviour of `#[cached]` and `invalidate!`: what compiles,
//! and the error each misuse gives, at the user's token.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("pass/*.rs");
    cases.compile_fail("fail/*.rs");
}
