//! An application under load for fault tests: a cached function whose every
//! value is known, called in a loop by many tasks, each call checked for a
//! hang and for a wrong value.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use cachette::{Cache, cached};

/// No call may take this long: far above every deadline, it only catches a hang.
pub const HANG: Duration = Duration::from_secs(5);

/// The "database" behind the cached function, and what the callers saw.
pub struct App {
    pub cache: Cache,
    pub computed: AtomicU64,
    pub calls: AtomicU64,
    pub hung: AtomicU64,
    pub wrong: AtomicU64,
    /// The longest call, in ms.
    pub slowest_ms: AtomicU64,
}

impl App {
    pub fn new(cache: Cache) -> Arc<Self> {
        Arc::new(Self {
            cache,
            computed: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            hung: AtomicU64::new(0),
            wrong: AtomicU64::new(0),
            slowest_ms: AtomicU64::new(0),
        })
    }

    /// One call of `item`, checked: it completes, with the right value.
    pub async fn call(&self, id: u64) {
        let start = Instant::now();
        let result = tokio::time::timeout(HANG, item(self, id)).await;
        let ms = u64::try_from(start.elapsed().as_millis()).unwrap();
        self.slowest_ms.fetch_max(ms, SeqCst);
        self.calls.fetch_add(1, SeqCst);
        match result {
            Ok(value) if value == expected(id) => {}
            Ok(_) => {
                self.wrong.fetch_add(1, SeqCst);
            }
            Err(_) => {
                self.hung.fetch_add(1, SeqCst);
            }
        }
    }
}

pub fn expected(id: u64) -> String {
    format!("item {id}: {}", id * 7)
}

#[cached(key = "item:{id}", skip(app), cache = &app.cache, timeout = 60)]
pub async fn item(app: &App, id: u64) -> String {
    app.computed.fetch_add(1, SeqCst);
    expected(id)
}

/// `tasks` tasks calling `item` on ids 0..50 in a loop until `stop` is set.
pub fn load(
    app: &Arc<App>,
    tasks: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..tasks)
        .map(|task| {
            let (app, stop) = (Arc::clone(app), Arc::clone(stop));
            tokio::spawn(async move {
                let mut id = task;
                while !stop.load(SeqCst) {
                    app.call(id % 50).await;
                    id += 7;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect()
}

/// Whether `item(id)` is served from the cache now (a hit: nothing computed).
pub async fn is_hit(app: &App, id: u64) -> bool {
    let before = app.computed.load(SeqCst);
    assert_eq!(item(app, id).await, expected(id));
    app.computed.load(SeqCst) == before
}
