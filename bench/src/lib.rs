//! Benchmarks of cachette, side by side with its floor (raw redis-rs `GET`,
//! a bare moka `get`) and a peer (the `cached` crate). Nothing to use here:
//! the benches are `cargo bench -p cachette-bench --bench {load,hit,micro,stampede}`,
//! and `BENCHMARKS.md` at the workspace root gives their figures.
