//! What cachette reports to the `metrics` facade (feature `metrics`), for
//! whatever exporter the application installs (Prometheus or another).
//! Names follow Prometheus conventions; labels are the cache (its key
//! prefix) and the function, an operation or a kind — never a key.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `cachette_requests_total` | counter | `cache`, `function`, `result` = hit, miss, stale, joined, error, skipped |
//! | `cachette_compute_seconds` | histogram | `cache`, `function` |
//! | `cachette_value_bytes` | histogram | `cache` (each value written) |
//! | `cachette_operations_total` | counter | `cache`, `op` (direct API: get, set, …), `result` |
//! | `cachette_backend_errors_total` | counter | `cache` |
//! | `cachette_skipped_total` | counter | `cache` (open circuit, spent budget) |
//! | `cachette_refused_total` | counter | `cache`, `reason` = undecodable, forged |
//! | `cachette_invalidations_total` | counter | `cache`, `kind` = key, namespace, tag |
//! | `cachette_invalidations_pending` | gauge | — (invalidations waiting for Redis now) |
//! | `cachette_invalidations_queued_total`, `cachette_invalidations_retried_total`, `cachette_invalidations_applied_late_total` | counter | — |
//! | `cachette_lease_waits_total`, `cachette_lease_timeouts_total` | counter | `cache` |
//! | `cachette_circuit_open` | gauge | — (how many nodes' circuits are open: 0 or 1 on one server) |
//! | `cachette_circuit_transitions_total` | counter | `to` = open, closed |
//! | `cachette_evictions_total` | counter | `tier` = memory, local; `cause` = size, expired |
//!
//! Without the feature, every function here is empty and the handles are
//! zero-sized.

#[cfg(feature = "metrics")]
use metrics::{Counter, Histogram, SharedString, counter, gauge, histogram};

/// A cache's label (its key prefix), shared by every metric that names it:
/// labelling one copies no text.
pub(crate) type Label = std::sync::Arc<str>;

#[cfg(feature = "metrics")]
fn shared(cache: &Label) -> SharedString {
    SharedString::from_shared(std::sync::Arc::clone(cache))
}

/// How a cached call was served, as `cachette_requests_total` labels it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Request {
    Hit,
    Miss,
    Stale,
    Joined,
    Error,
    Skipped,
}

impl Request {
    #[cfg(feature = "metrics")]
    const ALL: [(Request, &'static str); 6] = [
        (Request::Hit, "hit"),
        (Request::Miss, "miss"),
        (Request::Stale, "stale"),
        (Request::Joined, "joined"),
        (Request::Error, "error"),
        (Request::Skipped, "skipped"),
    ];
}

/// The handles of one function in one cache, made once: counting a call
/// looks nothing up.
#[derive(Debug)]
pub(crate) struct FunctionMeters {
    /// `cachette_requests_total` by result, in the order of [`Request`].
    #[cfg(feature = "metrics")]
    requests: [Counter; 6],
    #[cfg(feature = "metrics")]
    compute: Histogram,
}

impl FunctionMeters {
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
    pub(crate) fn new(cache: &Label, function: &'static str) -> Self {
        #[cfg(feature = "metrics")]
        {
            Self {
                requests: Request::ALL.map(|(_, result)| {
                    counter!("cachette_requests_total", "cache" => shared(cache), "function" => function, "result" => result)
                }),
                compute: histogram!("cachette_compute_seconds", "cache" => shared(cache), "function" => function),
            }
        }
        #[cfg(not(feature = "metrics"))]
        Self {}
    }

    /// Counts a call served as `request`.
    #[inline]
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
    pub(crate) fn count(&self, request: Request) {
        #[cfg(feature = "metrics")]
        self.requests[request as usize].increment(1);
    }

    /// Records a computation's time (the call is counted apart).
    #[cfg_attr(not(feature = "metrics"), allow(unused_variables, clippy::unused_self))]
    pub(crate) fn computed(&self, micros: u64) {
        #[cfg(feature = "metrics")]
        #[allow(clippy::cast_precision_loss)] // seconds as a float
        self.compute.record(micros as f64 / 1e6);
    }
}

/// A direct operation (`get`, `set`, …) and how it ended.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn operation(cache: &Label, op: &'static str, result: &'static str) {
    #[cfg(feature = "metrics")]
    operation_keys::count(cache, op, result);
}

/// The keys of `cachette_operations_total`, made once per thread for each
/// cache, operation and result rather than on every operation (a key is a
/// vector of labels and a hash: most of what counting an operation cost).
/// The counter is registered with the recorder of the moment each time, as
/// `counter!` does: a recorder installed later, or one local to a thread,
/// sees every operation.
#[cfg(feature = "metrics")]
mod operation_keys {
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::sync::Arc;

    use metrics::{Key, Level, Metadata};

    use super::{Label, shared};

    /// Where `counter!` in this module would say the counts come from.
    static METADATA: Metadata<'static> =
        Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

    /// By the address of the cache's label (held, so that another cache's
    /// cannot take it) and the addresses and lengths of the two texts.
    type Id = (usize, usize, usize, usize, usize);
    type Keys = HashMap<Id, (Label, Key), foldhash::fast::RandomState>;

    thread_local! {
        static KEYS: RefCell<Keys> = RefCell::new(HashMap::default());
    }

    /// How many keys a thread keeps: past it (caches made and dropped again
    /// and again), they are made anew rather than kept for caches long gone.
    const KEPT: usize = 1024;

    pub(super) fn count(cache: &Label, op: &'static str, result: &'static str) {
        KEYS.with_borrow_mut(|keys| {
            let id = (
                Arc::as_ptr(cache).cast::<u8>().addr(),
                op.as_ptr().addr(),
                op.len(),
                result.as_ptr().addr(),
                result.len(),
            );
            if keys.len() >= KEPT && !keys.contains_key(&id) {
                keys.clear();
            }
            let (_, key) = keys.entry(id).or_insert_with(|| {
                let labels = vec![
                    metrics::Label::new("cache", shared(cache)),
                    metrics::Label::from_static_parts("op", op),
                    metrics::Label::from_static_parts("result", result),
                ];
                (
                    Arc::clone(cache),
                    Key::from_parts("cachette_operations_total", labels),
                )
            });
            metrics::with_recorder(|recorder| recorder.register_counter(key, &METADATA))
                .increment(1);
        });
    }
}

/// The size of a value written.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn value_written(cache: &Label, bytes: usize) {
    #[cfg(feature = "metrics")]
    #[allow(clippy::cast_precision_loss)] // sizes as floats
    histogram!("cachette_value_bytes", "cache" => shared(cache)).record(bytes as f64);
}

/// A counter of the cache labelled `cache` alone: backend errors, skipped calls, leases.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn count(name: &'static str, cache: &Label) {
    #[cfg(feature = "metrics")]
    counter!(name, "cache" => shared(cache)).increment(1);
}

/// A stored value refused: `undecodable` or `forged`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn refused(cache: &Label, reason: &'static str) {
    #[cfg(feature = "metrics")]
    counter!("cachette_refused_total", "cache" => shared(cache), "reason" => reason).increment(1);
}

/// An invalidation of a `key`, a `namespace` or a `tag`.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn invalidation(cache: &Label, kind: &'static str) {
    #[cfg(feature = "metrics")]
    counter!("cachette_invalidations_total", "cache" => shared(cache), "kind" => kind).increment(1);
}

/// Invalidations that Redis did not take: `n` more of the counter `name`
/// (queued, retried, applied late), and how many wait now.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn pending(name: &'static str, n: u64, waiting: usize) {
    #[cfg(feature = "metrics")]
    {
        if n > 0 {
            counter!(name).increment(n);
        }
        #[allow(clippy::cast_precision_loss)] // a count as a float
        gauge!("cachette_invalidations_pending").set(waiting as f64);
    }
}

/// A node's breaker opened (`true`) or closed, leaving `now_open` open.
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn circuit(open: bool, now_open: u32) {
    #[cfg(feature = "metrics")]
    {
        gauge!("cachette_circuit_open").set(f64::from(now_open));
        counter!("cachette_circuit_transitions_total", "to" => if open { "open" } else { "closed" })
            .increment(1);
    }
}

/// Entries an in-process tier (`memory`, `local`) let go of, for `cause`
/// (`size`: the byte budget; `expired`: the sweep).
#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
pub(crate) fn evicted(tier: &'static str, cause: &'static str, n: u64) {
    #[cfg(feature = "metrics")]
    counter!("cachette_evictions_total", "tier" => tier, "cause" => cause).increment(n);
}

#[cfg(all(test, feature = "metrics"))]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use metrics::{
        Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
    };

    type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

    /// A recorder that adds up each counter's increments, by name and labels.
    #[derive(Default)]
    struct Tally(Counts);

    struct Series(Counts, String);

    impl CounterFn for Series {
        fn increment(&self, n: u64) {
            *self.0.lock().unwrap().entry(self.1.clone()).or_default() += n;
        }

        fn absolute(&self, _: u64) {}
    }

    impl Recorder for Tally {
        fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
        fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

        fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
            let labels: Vec<String> = key
                .labels()
                .map(|label| format!("{}={}", label.key(), label.value()))
                .collect();
            let series = format!("{}{{{}}}", key.name(), labels.join(","));
            Counter::from_arc(Arc::new(Series(Arc::clone(&self.0), series)))
        }

        fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
            Gauge::noop()
        }

        fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
            Histogram::noop()
        }
    }

    fn counts(tally: &Tally) -> Vec<(String, u64)> {
        tally.0.lock().unwrap().clone().into_iter().collect()
    }

    #[test]
    fn operations_are_counted_by_the_recorder_of_the_moment() {
        let shop: super::Label = Arc::from("shop");
        // Another cache with the same label: the same series.
        let twin: super::Label = Arc::from("shop");
        let first = Tally::default();
        metrics::with_local_recorder(&first, || {
            super::operation(&shop, "get", "hit");
            super::operation(&shop, "get", "hit");
            super::operation(&shop, "get_or_set", "miss");
        });
        // The keys made for the first recorder are registered with the next.
        let second = Tally::default();
        metrics::with_local_recorder(&second, || {
            super::operation(&shop, "get", "hit");
            super::operation(&twin, "get", "hit");
            super::operation(&Arc::from("other"), "get", "miss");
        });
        let series = |op: &str, result: &str, cache: &str| {
            format!("cachette_operations_total{{cache={cache},op={op},result={result}}}")
        };
        assert_eq!(
            counts(&first),
            [
                (series("get", "hit", "shop"), 2),
                (series("get_or_set", "miss", "shop"), 1)
            ]
        );
        assert_eq!(
            counts(&second),
            [
                (series("get", "miss", "other"), 1),
                (series("get", "hit", "shop"), 2)
            ]
        );
        // Without a recorder, nothing is counted anywhere (and nothing fails).
        super::operation(&shop, "get", "hit");
        assert_eq!(counts(&first)[0].1, 2);
    }
}
