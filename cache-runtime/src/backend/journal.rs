//! The invalidations that landed lately, remembered for [`REMEMBERED_FOR`]
//! (one per target, at most [`REMEMBERED`]), so that they can be sent again
//! when the server turns out to have restarted: from an older snapshot, or
//! a replica that missed them promoted. When the bound made it forget one
//! within the window, the key spaces they came from are to be cleared
//! instead.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How long a landed invalidation is remembered, to be sent again if the
/// server restarts (a snapshot older than this may bring back what was
/// invalidated before).
pub(crate) const REMEMBERED_FOR: Duration = Duration::from_secs(600);

/// How many landed invalidations are remembered at most (one per target).
pub(crate) const REMEMBERED: usize = 10_000;

/// The invalidations that landed lately (`A`: what each did), to send
/// again after a restart.
pub(crate) struct Journal<A> {
    /// The newest of each target: when, its key space, what it did.
    by_target: HashMap<String, (u64, Instant, String, A)>,
    /// Targets in the order they landed (a target again: a later entry).
    order: VecDeque<(u64, String)>,
    next: u64,
    /// When the bound last made it forget one younger than the window.
    forgot: Option<Instant>,
    /// Every key space an invalidation came from.
    spaces: BTreeSet<String>,
}

impl<A> Default for Journal<A> {
    fn default() -> Self {
        Self {
            by_target: HashMap::new(),
            order: VecDeque::new(),
            next: 0,
            forgot: None,
            spaces: BTreeSet::new(),
        }
    }
}

impl<A: Clone> Journal<A> {
    /// Remembers that `action` on `target` (of the key space scanned by `space`) landed.
    pub(crate) fn remember(&mut self, space: &str, target: &str, action: &A) {
        let now = Instant::now();
        let seq = self.next;
        self.next += 1;
        if !self.spaces.contains(space) {
            self.spaces.insert(space.to_owned());
        }
        self.by_target.insert(
            target.to_owned(),
            (seq, now, space.to_owned(), action.clone()),
        );
        self.order.push_back((seq, target.to_owned()));
        while let Some((seq, target)) = self.order.front() {
            match self.by_target.get(target) {
                Some(&(newest, at, ..)) if newest == *seq => {
                    let old = now.duration_since(at) >= REMEMBERED_FOR;
                    if !old && self.by_target.len() <= REMEMBERED {
                        break;
                    }
                    if !old {
                        self.forgot = Some(now);
                    }
                    self.by_target.remove(target);
                }
                // Superseded by a later entry of the same target.
                _ => {}
            }
            self.order.pop_front();
        }
        if self.order.len() > 4 * REMEMBERED {
            let by_target = &self.by_target;
            self.order
                .retain(|(seq, target)| by_target.get(target).is_some_and(|e| e.0 == *seq));
        }
    }

    /// What to send again, oldest first, unless some was forgotten within
    /// the window: then the key spaces to clear instead.
    pub(crate) fn recent(&self) -> Result<Vec<(String, String, A)>, Vec<String>> {
        if self.forgot.is_some_and(|at| at.elapsed() < REMEMBERED_FOR) {
            return Err(self.spaces.iter().cloned().collect());
        }
        let mut recent: Vec<_> = self
            .by_target
            .iter()
            .filter(|(_, (_, at, ..))| at.elapsed() < REMEMBERED_FOR)
            .map(|(target, (seq, _, space, action))| (*seq, target, space, action))
            .collect();
        recent.sort_unstable_by_key(|entry| entry.0);
        Ok(recent
            .into_iter()
            .map(|(_, target, space, action)| (space.clone(), target.clone(), action.clone()))
            .collect())
    }

    /// Whether the last invalidation that landed is still within the window.
    pub(crate) fn remembers(&self) -> bool {
        self.order
            .back()
            .and_then(|(_, target)| self.by_target.get(target))
            .is_some_and(|(_, at, ..)| at.elapsed() < REMEMBERED_FOR)
    }
}

#[cfg(test)]
mod tests {
    use super::{Journal, REMEMBERED};

    #[test]
    fn the_journal_keeps_the_newest_per_target_in_order_and_owns_up_past_its_bound() {
        let mut journal = Journal::<&str>::default();
        journal.remember("p:*", "p:#ns:a", &"bump");
        journal.remember("p:*", "p:k", &"bump");
        journal.remember("p:*", "p:#ns:a", &"bump");
        let recent = journal.recent().unwrap();
        let targets: Vec<&str> = recent.iter().map(|(_, t, _)| t.as_str()).collect();
        assert_eq!(targets, ["p:k", "p:#ns:a"]);

        for i in 0..=REMEMBERED {
            journal.remember("q:*", &format!("q:{i}"), &"bump");
        }
        assert_eq!(journal.by_target.len(), REMEMBERED);
        assert!(journal.order.len() <= 4 * REMEMBERED);
        // Some landed invalidation is forgotten: clear both key spaces instead.
        assert_eq!(journal.recent().unwrap_err(), ["p:*", "q:*"]);
    }
}
