//! The commands that span many keys or every master: keys grouped by the
//! node that serves them, `MGET` split by node on a cluster, the masters'
//! URLs, sets of keys, and walking the key space with `SCAN` (on every
//! master of a cluster), page by page.

use deadpool_redis::redis;
use futures_util::future::try_join_all;

use super::link::Conn;
use super::{
    RedisBackend, SCAN_BATCH, cluster, command, expected_args, parse_version, set_cmd, ttl_arg,
    with_address,
};
use crate::Error;
use crate::backend::{Expiry, GuardedWrite};
use crate::scope::VersionKeys;

/// What `MGET` answers.
type Values = Vec<Option<Vec<u8>>>;

impl RedisBackend {
    /// `items` in the groups one command (a script, a pipeline) may take,
    /// by the key each has: all of them on one server, one group per slot
    /// on a cluster; each with the node that serves it.
    pub(super) fn groups<'i, T>(
        &self,
        items: &'i [T],
        key: impl Fn(&T) -> &str,
    ) -> Vec<(usize, Vec<&'i T>)> {
        if !self.is_cluster() {
            return vec![(0, items.iter().collect())];
        }
        let groups = cluster::by_slot(items, &key);
        let node = |group: &[&T]| group.first().map_or(0, |item| self.node_of(key(item)));
        groups.into_iter().map(|g| (node(&g), g)).collect()
    }

    /// `MGET` of `keys`: one command on one server, or on a cluster one
    /// per slot of them (sent at once, not left for the cluster client to
    /// split), each through the circuit of the node serving it, so that a
    /// failing master costs only the reads of its keys.
    pub(super) async fn mget<'k, I>(&self, op: &'static str, keys: I) -> Result<Values, Error>
    where
        I: Iterator<Item = &'k str> + Clone,
    {
        // One server, or every key in one slot: one command.
        let single = if self.is_cluster() {
            let mut slots = keys.clone().map(|key| cluster::slot(key.as_bytes()));
            let first = slots.next().unwrap_or(0);
            slots
                .all(|slot| slot == first)
                .then(|| keys.clone().next().map_or(0, |key| self.node_of(key)))
        } else {
            Some(0)
        };
        if let Some(node) = single {
            return self
                .run_on(op, node, |mut c| async move {
                    command("MGET", keys).query_async(&mut c).await
                })
                .await;
        }
        // Rare (keys in several slots): boxed, to keep every read's future small.
        Box::pin(self.mget_by_slot(op, keys.collect())).await
    }

    /// The entries at `keys` and the versions at `vkeys`: one `MGET` of
    /// them all (on a cluster, one per slot of them, sent at once).
    pub(crate) async fn read_many(
        &self,
        keys: &[String],
        vkeys: &VersionKeys,
    ) -> Result<(Values, Vec<Option<u64>>), Error> {
        if keys.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let all = keys.iter().map(String::as_str).chain(vkeys);
        let mut values = self.mget("get_many", all).await?;
        let versions = values
            .drain(keys.len()..)
            .map(|v| v.as_deref().and_then(parse_version))
            .collect();
        Ok((values, versions))
    }

    /// Guarded writes (see `write_guarded`), pipelined: one pipeline per
    /// node (per slot on a cluster); how many were stored.
    pub(crate) async fn write_guarded_many(&self, writes: &[GuardedWrite]) -> Result<usize, Error> {
        let script = &self.scripts.write_guarded;
        let groups = self.groups(writes, |w| &w.key);
        let stored = try_join_all(groups.into_iter().map(|(node, group)| {
            self.run_on("set", node, move |mut c| async move {
                let mut pipe = redis::pipe();
                for write in &group {
                    let (expected, mode) = expected_args(write.expected);
                    let mut invocation = script.prepare_invoke();
                    invocation
                        .key(&write.key)
                        .arg(expected)
                        .arg(&write.bytes)
                        .arg(ttl_arg(write.expiry))
                        .arg(mode);
                    pipe.invoke_script(&invocation);
                }
                let stored: Result<Vec<bool>, _> = pipe.query_async(&mut c).await;
                match stored {
                    Err(e)
                        if e.kind()
                            == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                    {
                        script.prepare_invoke().load_async(&mut c).await?;
                        pipe.query_async::<Vec<bool>>(&mut c).await
                    }
                    stored => stored,
                }
            })
        }))
        .await?;
        Ok(stored.into_iter().flatten().filter(|&s| s).count())
    }

    async fn mget_by_slot(&self, op: &'static str, keys: Vec<&str>) -> Result<Values, Error> {
        let mut groups: Vec<(u16, usize, Vec<usize>)> = Vec::new();
        for (at, key) in keys.iter().enumerate() {
            let slot = cluster::slot(key.as_bytes());
            match groups.iter_mut().find(|(s, _, _)| *s == slot) {
                Some((_, _, group)) => group.push(at),
                None => groups.push((slot, self.node_of(key), vec![at])),
            }
        }
        let groups: Vec<(usize, Vec<usize>)> = groups
            .into_iter()
            .map(|(_, node, group)| (node, group))
            .collect();
        let keys = &keys;
        let parts = try_join_all(groups.iter().map(|(node, group)| {
            self.run_on(op, *node, move |mut c| async move {
                command("MGET", group.iter().map(|&at| keys[at]))
                    .query_async::<Values>(&mut c)
                    .await
            })
        }))
        .await?;
        let mut values = vec![None; keys.len()];
        for ((_, group), part) in groups.iter().zip(parts) {
            for (&at, value) in group.iter().zip(part) {
                values[at] = value;
            }
        }
        Ok(values)
    }

    /// The URLs of the masters, for dedicated connections: the server's own,
    /// or each master of a cluster (with the seeds' credentials).
    pub(crate) async fn tracking_urls(&self) -> Result<Vec<String>, Error> {
        if !self.is_cluster() {
            return Ok(vec![self.server_url().await?]);
        }
        let masters = self
            .run_on("tracking", 0, |c| async move {
                match c {
                    Conn::Cluster(mut c) => cluster::masters(&mut c).await,
                    Conn::Single(_) => Ok(Vec::new()),
                }
            })
            .await?;
        Ok(masters
            .iter()
            .map(|(host, port)| with_address(&self.url, host, *port))
            .collect())
    }

    /// Adds `member` to each set of `sets`, the parts sent at once.
    pub(crate) async fn add_to_sets(&self, sets: &[String], member: &str) -> Result<(), Error> {
        try_join_all(sets.iter().map(|set| {
            self.run("tags", set, move |mut c| async move {
                redis::cmd("SADD")
                    .arg(set)
                    .arg(member)
                    .query_async::<()>(&mut c)
                    .await
            })
        }))
        .await
        .map(drop)
    }

    /// Takes `member` out of the set at `set`.
    pub(crate) async fn remove_from_set(&self, set: &str, member: &str) -> Result<(), Error> {
        self.run("tags", set, |mut c| async move {
            redis::cmd("SREM")
                .arg(set)
                .arg(member)
                .query_async(&mut c)
                .await
        })
        .await
    }

    /// Writes `tombstone` over every key in the sets at `take` (then
    /// removed) and `keep`; how many keys.
    pub(crate) async fn tombstone_sets(
        &self,
        take: &str,
        keep: &str,
        tombstone: &[u8],
        ttl: Expiry,
    ) -> Result<u64, Error> {
        let members = |set: &str| {
            let (node, set) = (self.node_of(set), set.to_owned());
            self.run_on("invalidate", node, move |mut c| async move {
                redis::cmd("SMEMBERS")
                    .arg(&set)
                    .query_async::<Vec<String>>(&mut c)
                    .await
            })
        };
        // Both sets in one round of latency (they may sit on two masters).
        let (taken, kept) = tokio::try_join!(members(take), members(keep))?;
        if taken.is_empty() && kept.is_empty() {
            // No entry carries the tag from its value: nothing more to send.
            return Ok(0);
        }
        let keys = crate::backend::member_keys(&[taken.as_slice(), kept.as_slice()].concat());
        let groups = self.groups(&keys, String::as_str);
        try_join_all(groups.into_iter().map(|(node, group)| {
            self.run_on("invalidate", node, move |mut c| async move {
                let mut pipe = redis::pipe();
                for key in group {
                    pipe.add_command(set_cmd(key, tombstone, ttl)).ignore();
                }
                pipe.query_async::<()>(&mut c).await
            })
        }))
        .await?;
        if !taken.is_empty() {
            self.run("invalidate", take, |mut c| async move {
                redis::cmd("DEL").arg(take).query_async::<()>(&mut c).await
            })
            .await?;
        }
        Ok(keys.len() as u64)
    }

    /// One page of `SCAN … MATCH pattern` on one server, or on the
    /// cluster's master `node`: the next cursor (0 at the end) and the keys.
    async fn scan_page(
        &self,
        op: &'static str,
        node: Option<&(String, u16)>,
        cursor: u64,
        pattern: &str,
    ) -> Result<(u64, Vec<String>), Error> {
        let at = node.map_or(0, |(host, port)| self.node_at(host, *port));
        self.run_on(op, at, |c| async move {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg(pattern)
                .arg("COUNT")
                .arg(SCAN_BATCH);
            match (c, node) {
                (Conn::Cluster(mut c), Some((host, port))) => {
                    let page = c.route_command(scan, cluster::at(host, *port)).await?;
                    Ok(redis::FromRedisValue::from_redis_value(page)?)
                }
                (mut c, _) => scan.query_async(&mut c).await,
            }
        })
        .await
    }

    /// The nodes a `SCAN` must walk: every master of a cluster, or the one server (`None`).
    async fn scan_nodes(&self, op: &'static str) -> Result<Vec<Option<(String, u16)>>, Error> {
        Ok(if self.is_cluster() {
            let masters = self
                .run_on(op, 0, |c| async move {
                    match c {
                        Conn::Cluster(mut c) => cluster::masters(&mut c).await,
                        Conn::Single(_) => Ok(Vec::new()),
                    }
                })
                .await?;
            masters.into_iter().map(Some).collect()
        } else {
            vec![None]
        })
    }

    /// Walks the keys matching `pattern` page by page — on every master of
    /// a cluster — handing each page to `page`.
    async fn scan(
        &self,
        op: &'static str,
        pattern: &str,
        mut page: impl AsyncFnMut(Vec<String>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let nodes = self.scan_nodes(op).await?;
        for node in &nodes {
            let mut cursor = 0_u64;
            loop {
                let (next, keys) = self.scan_page(op, node.as_ref(), cursor, pattern).await?;
                if !keys.is_empty() {
                    page(keys).await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// The keys matching `pattern` that hold a live value.
    pub(crate) async fn live_keys(&self, pattern: &str) -> Result<Vec<String>, Error> {
        let script = &self.scripts.live;
        let mut found = Vec::new();
        self.scan("keys", pattern, async |keys: Vec<String>| {
            let groups = self.groups(&keys, String::as_str);
            let live = try_join_all(groups.into_iter().map(|(node, group)| {
                self.run_on("keys", node, move |mut c| async move {
                    let mut invocation = script.prepare_invoke();
                    for key in group {
                        invocation.key(key);
                    }
                    invocation.invoke_async::<Vec<String>>(&mut c).await
                })
            }))
            .await?;
            found.extend(live.into_iter().flatten());
            Ok(())
        })
        .await?;
        Ok(found)
    }

    /// Deletes every key matching `pattern`; how many held a live value.
    pub(crate) async fn delete_matching(&self, pattern: &str) -> Result<u64, Error> {
        let mut removed = 0;
        self.scan("delete_pattern", pattern, async |keys: Vec<String>| {
            removed += self.delete_many(&keys).await?;
            Ok(())
        })
        .await?;
        Ok(removed)
    }

    /// Deletes every key matching `pattern` (`UNLINK`, split by slot on a
    /// cluster). Written without [`scan`](Self::scan)'s closure, so that a
    /// spawned task can run it.
    pub(crate) async fn clear(&self, pattern: &str) -> Result<u64, Error> {
        let mut removed = 0;
        for node in &self.scan_nodes("clear").await? {
            let mut cursor = 0_u64;
            loop {
                let (next, keys) = self
                    .scan_page("clear", node.as_ref(), cursor, pattern)
                    .await?;
                if let Some(first) = keys.first() {
                    let node = self.node_of(first);
                    removed += self
                        .run_on("clear", node, |mut c| async move {
                            redis::cmd("UNLINK")
                                .arg(&keys)
                                .query_async::<u64>(&mut c)
                                .await
                        })
                        .await?;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        Ok(removed)
    }
}
