//! Invalidations on their way to Redis: each tried at once, and what
//! Redis did not take kept (`pending.rs`) and retried oldest first by a
//! task of its own; what landed lately is watched for a restart of the
//! server and sent again; and the local tier is made to forget what each
//! changed.

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::local::Local;
use super::pending::{Action, Fate, Pending};
use super::server::RedisBackend;
use crate::Error;
use crate::codec;

/// How many kept invalidations a retry sends at once.
const RETRY_BATCH: usize = 256;

/// The invalidations of one Redis (and its local tier): they are tried
/// once, and what fails is kept and retried in a task of its own.
pub(crate) struct Invalidations {
    pub(crate) pending: Arc<Pending>,
    /// Whether a task checks the server every second (`watch`).
    watching: Arc<std::sync::atomic::AtomicBool>,
}

impl Invalidations {
    pub(crate) fn new(bound: usize) -> Self {
        Self {
            pending: Arc::new(Pending::new(bound)),
            watching: Arc::default(),
        }
    }

    /// Applies `action` to `target` now, or keeps it for a retry; kept
    /// without a try unless `try_now` (an invalidation of the same call
    /// before it was not taken: Redis is not waited on twice).
    pub(crate) async fn apply(
        &self,
        redis: &Arc<RedisBackend>,
        tier: Option<&Arc<Local>>,
        space: &str,
        (target, action): (String, Action),
        try_now: bool,
    ) -> Fate {
        let tombstone = codec::tombstone();
        let result = if try_now {
            run(redis, &target, &action, &tombstone).await
        } else {
            Err(Error::Unavailable {
                reason: "kept behind an invalidation Redis did not take".to_owned(),
            })
        };
        if let Some(tier) = tier {
            forget(tier, &target, &action, result.as_ref().ok());
        }
        match result {
            Ok(Ran { applied, .. }) => {
                self.pending.remember(space, &target, &action);
                // A newer invalidation of the same target supersedes an older one still waiting.
                if self.pending.any()
                    && let Some(seq) = self.pending.waiting(&target)
                {
                    self.pending.landed(None, Some((&target, seq)), false);
                }
                Fate::Applied(applied)
            }
            Err(error) => {
                if self.pending.keep(space, target, action, tombstone) {
                    spawn_retries(
                        Arc::downgrade(&self.pending),
                        Arc::clone(redis),
                        tier.map(Arc::downgrade),
                    );
                }
                Fate::Queued(error)
            }
        }
    }
}

impl Invalidations {
    /// While an invalidation that landed lately is remembered (or one
    /// waits), pings `redis` (the one reads go to) every second, so that a
    /// restart is noticed (on the new connection the ping makes) and what
    /// was invalidated is sent again, even by a process that makes no call
    /// meanwhile.
    pub(crate) fn watch(&self, redis: &Arc<RedisBackend>) {
        if self.watching.swap(true, SeqCst) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.watching.store(false, SeqCst);
            return;
        };
        let redis = Arc::downgrade(redis);
        let pending = Arc::downgrade(&self.pending);
        let watching = Arc::clone(&self.watching);
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (Some(redis), Some(pending)) = (redis.upgrade(), pending.upgrade()) else {
                    return;
                };
                if !pending.remembers() && !pending.any() {
                    break;
                }
                let _ = redis.ping().await;
            }
            watching.store(false, SeqCst);
        });
    }

    /// What runs when `redis` (the one reads go to) turns out to have
    /// restarted: the invalidations that landed lately are kept again and
    /// sent again through `sender`.
    pub(crate) fn on_restart(
        &self,
        sender: &Arc<RedisBackend>,
        tier: Option<&Arc<Local>>,
    ) -> crate::backend::server::Hook {
        let pending = Arc::downgrade(&self.pending);
        let sender = Arc::downgrade(sender);
        let tier = tier.map(Arc::downgrade);
        Box::new(move || {
            let (Some(queue), Some(sender)) = (pending.upgrade(), sender.upgrade()) else {
                return;
            };
            if queue.restarted() {
                spawn_retries(Arc::downgrade(&queue), sender, tier.clone());
            }
        })
    }
}

/// Makes the local tier forget what an invalidation of `target` changed
/// (`ran`: what it did, when Redis took it).
fn forget(tier: &Local, target: &str, action: &Action, ran: Option<&Ran>) {
    match (action, ran) {
        // The members it tombstoned, and only those.
        (Action::Members { .. }, Some(ran)) => tier.forget(&ran.tombstoned),
        // Not taken, or not known how far it went: everything.
        (Action::Members { .. }, None) => tier.flush(),
        (Action::Tombstone(_) | Action::Bump, _) => tier.forget(&[target.to_owned()]),
    }
}

/// What an invalidation Redis took did.
struct Ran {
    /// What it reports (`Fate::Applied`): a bump's answer, how many
    /// members it tombstoned, 0 for a tombstone.
    applied: u64,
    /// The keys it tombstoned beside its target (the members of a set).
    tombstoned: Vec<String>,
}

/// Sends one invalidation to Redis, with `tombstone` where it writes one.
async fn run(
    redis: &RedisBackend,
    target: &str,
    action: &Action,
    tombstone: &[u8],
) -> Result<Ran, Error> {
    let (applied, tombstoned) = match action {
        Action::Tombstone(expiry) => {
            redis.tombstone(target, tombstone, *expiry).await?;
            (0, Vec::new())
        }
        Action::Bump => (
            redis.bump(target, codec::fresh_version()).await?,
            Vec::new(),
        ),
        Action::Members { keep, expiry } => {
            let tombstoned = redis
                .tombstone_sets(target, keep, tombstone, *expiry)
                .await?;
            (tombstoned.len() as u64, tombstoned)
        }
    };
    Ok(Ran {
        applied,
        tombstoned,
    })
}

/// Retries what is pending, oldest first, with a growing pause between
/// rounds (50 ms to 1 s), until nothing is left or the cache is gone.
fn spawn_retries(pending: Weak<Pending>, redis: Arc<RedisBackend>, tier: Option<Weak<Local>>) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        // No runtime to retry on: the next invalidation tries again.
        if let Some(pending) = pending.upgrade() {
            pending.not_retrying();
        }
        return;
    };
    runtime.spawn(async move {
        let mut pause = Duration::from_millis(50);
        loop {
            tokio::time::sleep(pause).await;
            let Some(queue) = pending.upgrade() else {
                return;
            };
            let (spaces, entries) = queue.due();
            let mut failed = false;
            for space in spaces {
                queue.retry(1);
                if redis.clear(&space).await.is_ok() {
                    if let Some(tier) = tier.as_ref().and_then(Weak::upgrade) {
                        tier.flush();
                    }
                    queue.landed(Some(&space), None, true);
                } else {
                    failed = true;
                    break;
                }
            }
            if !failed {
                // One per target: those of different targets may go out together.
                for batch in entries.chunks(RETRY_BATCH) {
                    queue.retry(batch.len() as u64);
                    let sent = batch
                        .iter()
                        .map(|due| run(&redis, &due.target, &due.action, &due.tombstone));
                    let results = futures_util::future::join_all(sent).await;
                    let tier = tier.as_ref().and_then(Weak::upgrade);
                    for (due, result) in batch.iter().zip(results) {
                        let Ok(ran) = result else {
                            failed = true;
                            continue;
                        };
                        if let Some(tier) = &tier {
                            forget(tier, &due.target, &due.action, Some(&ran));
                        }
                        queue.remember(&due.space, &due.target, &due.action);
                        queue.landed(None, Some((&due.target, due.seq)), true);
                    }
                    if failed {
                        break;
                    }
                }
            }
            if queue.done() {
                return;
            }
            pause = if failed {
                (pause * 2).min(Duration::from_secs(1))
            } else {
                Duration::from_millis(50)
            };
        }
    });
}
