//! Single flight: concurrent misses on one key in one process run one computation.
//!
//! The first miss on a key becomes the *leader* and computes; later misses
//! on the same key *follow*: they wait for the leader's value instead of
//! computing it again. A leader that fails, returns something not to cache,
//! panics or is cancelled lands nothing, and one follower takes over. A
//! leader whose outcome its computation marks as not to be shared (the HTTP
//! layer's responses that must not be stored) lands that: every follower
//! then computes its own, at once. A flight leaves the map before it lands,
//! so no caller joins a flight that has ended. Each key has its own flight,
//! so waiting on one key never holds up another, and a cached function
//! calling cached functions (itself included, with other arguments) cannot
//! deadlock.

use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::backend::Expected;

/// What the read before a flight saw of its key: what the key held and the
/// versions of its scope (`None` when the read failed). A flight serves
/// only the callers whose read saw the same, so a caller that read the key
/// after an invalidation never gets a value computed before it. A failed
/// read saw nothing: such a caller follows only a flight that started after
/// every invalidation this cache had finished when it joined.
pub(crate) type FlightState = Option<(Expected, Vec<u64>)>;

/// What a flight ended with.
#[derive(Clone)]
pub(crate) enum Landing {
    /// Still computing.
    Pending,
    /// The computed value, as stored.
    Value(Arc<dyn Any + Send + Sync>),
    /// Nothing to share: a follower must compute.
    Failed,
    /// An outcome not to be shared: every follower computes its own.
    Unshared,
    /// The computation ran past its hard timeout and was abandoned: the
    /// followers are told so, rather than each running it in turn.
    Abandoned(std::time::Duration),
}

/// What a follower gets at the end of its flight.
pub(crate) enum Followed {
    /// The leader's value.
    Value(Arc<dyn Any + Send + Sync>),
    /// Nothing: one follower must compute (and may store) it.
    Failed,
    /// The leader's outcome is not to be shared: compute your own.
    Unshared,
    /// The leader's computation was abandoned past this hard timeout.
    Abandoned(std::time::Duration),
}

/// The flights of one cache, by stored key.
pub(crate) struct Flights {
    map: Mutex<HashMap<String, Flight>>,
    next_id: AtomicU64,
    /// Invalidations of this cache that have finished (applied or failed).
    invalidations: AtomicU64,
    /// Off: every caller leads a flight of its own, followed by nobody.
    enabled: bool,
}

struct Flight {
    id: u64,
    state: FlightState,
    /// `invalidations` when the flight started.
    epoch: u64,
    landing: watch::Receiver<Landing>,
}

/// A caller's part in the flight of a key.
pub(crate) enum Role<'a> {
    Leader(Leader<'a>),
    Follower(watch::Receiver<Landing>),
}

impl Flights {
    pub(crate) fn new(enabled: bool) -> Self {
        Self {
            map: Mutex::default(),
            next_id: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            enabled,
        }
    }

    /// Notes that an invalidation of this cache finished (whatever became
    /// of it): no caller whose read fails joins a flight that started before.
    pub(crate) fn invalidated(&self) {
        self.invalidations.fetch_add(1, SeqCst);
    }

    /// Follows the flight of `key` under way if it read what this caller
    /// read (`state`) — or, when this caller's read failed (`None`), if no
    /// invalidation of this cache finished since the flight started, whatever
    /// the flight read: its computation starts after every invalidation that
    /// had returned when this caller started. Else leads a new one (which
    /// takes the older one's place for later callers; the older one still
    /// serves its own followers).
    pub(crate) fn join(&self, key: &str, state: FlightState) -> Role<'_> {
        if !self.enabled {
            return self.alone();
        }
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let epoch = self.invalidations.load(SeqCst);
        if let Some(flight) = map.get(key)
            && match &state {
                Some(_) => flight.state == state,
                None => flight.epoch == epoch,
            }
        {
            return Role::Follower(flight.landing.clone());
        }
        let (sender, landing) = watch::channel(Landing::Pending);
        let id = self.next_id.fetch_add(1, Relaxed);
        map.insert(
            key.to_owned(),
            Flight {
                id,
                state,
                epoch,
                landing,
            },
        );
        Role::Leader(Leader {
            flights: self,
            key: key.to_owned(),
            id,
            sender,
        })
    }

    /// A flight of its own, followed by nobody (single flight off, or a
    /// computation that does without it).
    pub(crate) fn alone(&self) -> Role<'_> {
        let (sender, _) = watch::channel(Landing::Pending);
        Role::Leader(Leader {
            flights: self,
            key: String::new(),
            id: u64::MAX,
            sender,
        })
    }

    /// Whether a flight on `key` is under way.
    pub(crate) fn busy(&self, key: &str) -> bool {
        self.enabled
            && self
                .map
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(key)
    }

    /// How many flights are under way (for tests and `Debug`).
    pub(crate) fn len(&self) -> usize {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The leader of a flight. Dropping it without [`land`](Self::land) (an
/// error, a panic, a cancelled future) lets a follower take over.
pub(crate) struct Leader<'a> {
    flights: &'a Flights,
    key: String,
    id: u64,
    sender: watch::Sender<Landing>,
}

impl Leader<'_> {
    /// Records a later read of the key by the leader, which its computation uses.
    pub(crate) fn restate(&self, state: FlightState) {
        let mut map = self
            .flights
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(flight) = map.get_mut(&self.key)
            && flight.id == self.id
        {
            flight.state = state;
        }
    }

    /// Hands the value to the followers, or tells them to compute (`None`).
    pub(crate) fn land(self, value: Option<Arc<dyn Any + Send + Sync>>) {
        self.land_as(value.map_or(Landing::Failed, Landing::Value));
    }

    /// Tells the followers to compute their own outcome, at once.
    pub(crate) fn land_unshared(self) {
        self.land_as(Landing::Unshared);
    }

    /// Tells the followers the computation was abandoned after `limit`.
    pub(crate) fn land_abandoned(self, limit: std::time::Duration) {
        self.land_as(Landing::Abandoned(limit));
    }

    /// Ends the flight with `landing`. The flight leaves the map first: a
    /// caller that came after the landing must not follow it (it would find
    /// it over and come back at once, again and again, until the leader
    /// left the map).
    fn land_as(mut self, landing: Landing) {
        self.leave();
        self.sender.send_replace(landing);
    }

    /// Takes the flight out of the map, if it is still the key's flight.
    fn leave(&mut self) {
        if self.id == u64::MAX {
            return;
        }
        let mut map = self
            .flights
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if map
            .get(&self.key)
            .is_some_and(|flight| flight.id == self.id)
        {
            map.remove(&self.key);
        }
        // Only once: a landed leader has left already.
        self.id = u64::MAX;
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.leave();
        // Followers still waiting see the flight end when `sender` drops.
    }
}

/// Waits for the end of a flight: the leader's value, or what a follower
/// must do without it.
pub(crate) async fn follow(mut landing: watch::Receiver<Landing>) -> Followed {
    match landing.wait_for(|l| !matches!(l, Landing::Pending)).await {
        Ok(landed) => match &*landed {
            Landing::Value(value) => Followed::Value(Arc::clone(value)),
            Landing::Unshared => Followed::Unshared,
            Landing::Abandoned(limit) => Followed::Abandoned(*limit),
            Landing::Pending | Landing::Failed => Followed::Failed,
        },
        Err(_) => Followed::Failed,
    }
}
