//! Micro benches of the pieces of a hit: deriving a key from typical
//! arguments, and encoding and decoding values of 256 B, 4 KiB and 64 KiB.
//!
//! `cargo bench -p cachette-bench --bench micro`

use std::hint::black_box;

use cachette::internals::KeyBuilder;
use cachette::internals::{decode, encode};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};

#[derive(Serialize)]
struct Filter<'a> {
    category: &'a str,
    max_price: u32,
    in_stock: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Page {
    id: u64,
    title: String,
    tags: Vec<String>,
    body: String,
}

fn page(size: usize) -> Page {
    let mut page = Page {
        id: 42,
        title: "Weekly specials".to_owned(),
        tags: vec!["news".to_owned(), "offers".to_owned()],
        body: String::new(),
    };
    let overhead = encode(&page).unwrap().len();
    page.body = "lorem ipsum "
        .chars()
        .cycle()
        .take(size.saturating_sub(overhead + 3))
        .collect();
    page
}

fn key_derivation(c: &mut Criterion) {
    let mut group = c.benchmark_group("key derivation");
    group.bench_function("one integer (user_id)", |b| {
        b.iter(|| {
            let mut key = KeyBuilder::new("shop::orders");
            key.arg(black_box(&42_i64));
            let mut derived = String::with_capacity(64);
            key.finish("user_order_stats", &mut derived);
            black_box(derived)
        });
    });
    group.bench_function("string + integer + struct", |b| {
        let filter = Filter {
            category: "books",
            max_price: 30,
            in_stock: true,
        };
        b.iter(|| {
            let mut key = KeyBuilder::new("shop::catalog");
            key.arg(black_box("https://api.example.com/v1/products"));
            key.arg(black_box(&2_u32));
            key.arg(black_box(&filter));
            let mut derived = String::with_capacity(64);
            key.finish("search", &mut derived);
            black_box(derived)
        });
    });
    group.finish();
}

fn envelope(c: &mut Criterion) {
    let mut group = c.benchmark_group("envelope");
    for size in [256, 4096, 65_536] {
        let value = page(size);
        let bytes = encode(&value).unwrap();
        assert!(
            bytes.len().abs_diff(size) < 8,
            "{} bytes for {size}",
            bytes.len()
        );
        assert_eq!(decode::<Page>(&bytes).as_ref(), Some(&value));
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("encode", size), &value, |b, value| {
            b.iter(|| black_box(encode(black_box(value)).unwrap()));
        });
        group.bench_with_input(BenchmarkId::new("decode", size), &bytes, |b, bytes| {
            b.iter(|| black_box(decode::<Page>(black_box(bytes)).unwrap()));
        });
    }
    group.finish();
}

criterion_group!(benches, key_derivation, envelope);
criterion_main!(benches);
