//! The procedural macros of cachette: `#[cached]`, `invalidate!` and `refresh!`.
//!
//! Use them through the `cachette` crate, which documents them; this crate
//! only parses, checks and generates code that calls `cachette::__private`.

mod ast;
mod attr;
mod expand;
mod invalidate;
mod refresh;
#[cfg(test)]
mod snapshots;
mod template;
mod valid;

use proc_macro::TokenStream;

/// Caches the results of an `async fn`.
///
/// Documented, with examples, where applications use it: `cachette::cached`.
#[proc_macro_attribute]
pub fn cached(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::cached(args.into(), &item.into()).into()
}

/// Drops cached entries: one call's, a namespace's or a tag's.
///
/// Documented, with examples, where applications use it: `cachette::invalidate`.
#[proc_macro]
pub fn invalidate(input: TokenStream) -> TokenStream {
    invalidate::expand(input.into()).into()
}

/// Recomputes one call's entry of a `#[cached]` function and stores it.
///
/// Documented, with examples, where applications use it: `cachette::refresh`.
#[proc_macro]
pub fn refresh(input: TokenStream) -> TokenStream {
    refresh::expand(input.into()).into()
}
