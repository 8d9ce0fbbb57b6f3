//! How the load bench measures a row: latency percentiles over sequential
//! calls, throughput and CPU per hit with `TASKS` tasks, and the median of
//! `ROUNDS` interleaved rounds.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

use super::{Clients, LATENCY_CALLS, ROUNDS, Row, TASKS, THROUGHPUT_FOR};

/// One row's figures for one size.
#[derive(Clone, Copy, Default)]
pub(super) struct Figures {
    pub(super) p50_us: f64,
    pub(super) p99_us: f64,
    pub(super) ops_per_s: f64,
    /// This process's CPU time (user + system) per hit, at 64 tasks.
    pub(super) cpu_us: f64,
}

/// CPU time this process used so far (user + system), from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with `)`): utime is the 12th, stime the 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // Clock ticks are 1/100 s on Linux.
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

async fn latency(clients: &'static Clients, row: Row, size: usize) -> (f64, f64) {
    for _ in 0..200 {
        clients.hit(row, size).await;
    }
    let mut samples = Vec::with_capacity(LATENCY_CALLS);
    for _ in 0..LATENCY_CALLS {
        let start = Instant::now();
        clients.hit(row, size).await;
        samples.push(start.elapsed());
    }
    samples.sort_unstable();
    let at = |q: f64| {
        let index = ((samples.len() as f64 * q) as usize).min(samples.len() - 1);
        samples[index].as_secs_f64() * 1e6
    };
    (at(0.50), at(0.99))
}

/// Hits per second with `TASKS` tasks, and this process's CPU µs per hit.
/// Each task counts its own hits: one shared counter, bumped by both
/// threads on every hit, would cost the in-process rows more than their hit.
pub(super) async fn throughput(clients: &'static Clients, row: Row, size: usize) -> (f64, f64) {
    let stop: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let counted: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            tokio::spawn(async move {
                let mut done = 0_u64;
                while !stop.load(Relaxed) {
                    clients.hit(row, size).await;
                    if matches!(row, Row::Local | Row::LocalTagged | Row::Moka) {
                        // A local hit never waits: let the other tasks and the timer run.
                        tokio::task::yield_now().await;
                    }
                    if counted.load(Relaxed) {
                        done += 1;
                    }
                }
                done
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(200)).await; // warm-up
    counted.store(true, Relaxed);
    let (start, cpu_start) = (Instant::now(), cpu_time());
    tokio::time::sleep(THROUGHPUT_FOR).await;
    stop.store(true, Relaxed);
    let (elapsed, cpu) = (start.elapsed(), cpu_time().saturating_sub(cpu_start));
    let mut ops = 0;
    for task in tasks {
        ops += task.await.unwrap();
    }
    (
        ops as f64 / elapsed.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / ops as f64,
    )
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// The median figures of `rows` on the value of `size`, over `ROUNDS` interleaved rounds.
pub(super) async fn measure(clients: &'static Clients, rows: &[Row], size: usize) -> Vec<Figures> {
    medians(&rounds(clients, rows, size).await)
}

/// The median figures of each row's rounds.
pub(super) fn medians(rounds: &[Vec<Figures>]) -> Vec<Figures> {
    rounds
        .iter()
        .map(|r| Figures {
            p50_us: median(r.iter().map(|f| f.p50_us).collect()),
            p99_us: median(r.iter().map(|f| f.p99_us).collect()),
            ops_per_s: median(r.iter().map(|f| f.ops_per_s).collect()),
            cpu_us: median(r.iter().map(|f| f.cpu_us).collect()),
        })
        .collect()
}

/// The figures of each of `rows` in each of `ROUNDS` rounds: the rows run
/// forward in one round and backward in the next, so that no row always
/// runs right after another.
pub(super) async fn rounds(
    clients: &'static Clients,
    rows: &[Row],
    size: usize,
) -> Vec<Vec<Figures>> {
    let mut rounds: Vec<Vec<Figures>> = vec![Vec::new(); rows.len()];
    for round in 0..ROUNDS {
        let mut order: Vec<usize> = (0..rows.len()).collect();
        if round % 2 == 1 {
            order.reverse();
        }
        for i in order {
            let row = rows[i];
            let (p50_us, p99_us) = latency(clients, row, size).await;
            let (ops_per_s, cpu_us) = throughput(clients, row, size).await;
            rounds[i].push(Figures {
                p50_us,
                p99_us,
                ops_per_s,
                cpu_us,
            });
        }
    }
    rounds
}

/// The ratios of `of` to `to` within each round (seconds apart, so that a
/// drift of the machine between rounds does not enter them), as their
/// median and spread: `1.02 (0.98–1.05)`.
pub(super) fn paired(of: &[Figures], to: &[Figures], figure: fn(&Figures) -> f64) -> String {
    let ratios: Vec<f64> = of
        .iter()
        .zip(to)
        .map(|(a, b)| figure(a) / figure(b))
        .collect();
    let (low, high) = ratios
        .iter()
        .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
    format!("{:.2} ({low:.2}–{high:.2})", median(ratios))
}
