//! The procedural macros of cachet. Use them through the `cachet` crate.
