//! The commands that span many keys or every master: keys grouped by the
//! node that serves them, a batch's reads (`MGET`, split by master in
//! `mget.rs`) and guarded writes (one pipeline per master), the masters'
//! URLs, sets of keys, and walking the key space with `SCAN` (on every
//! master of a cluster), page by page.

use deadpool_redis::redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use deadpool_redis::redis::{self, FromRedisValue};
use futures_util::future::try_join_all;

use super::link::Conn;
use super::mget::{Part, Values};
use super::{
    RedisBackend, SCAN_BATCH, cluster, expected_args, parse_version, set_cmd, ttl_arg, with_address,
};
use crate::Error;
use crate::backend::{Expiry, GuardedWrite};
use crate::scope::VersionKeys;

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

    /// The entries at `keys` and the versions at `vkeys`: one `MGET` of
    /// them all (on a cluster, one request per node serving them).
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
    /// node (on a cluster, sent whole to each master, see [`write_node`]);
    /// how many were stored.
    pub(crate) async fn write_guarded_many(&self, writes: &[GuardedWrite]) -> Result<usize, Error> {
        let mut groups: Vec<(Part, Vec<&GuardedWrite>)> = Vec::new();
        for write in writes {
            let slot = if self.is_cluster() {
                cluster::slot(write.key.as_bytes())
            } else {
                0
            };
            let node = self.node_serving(slot);
            match groups.iter_mut().find(|(part, _)| part.node == node) {
                Some((part, group)) => {
                    part.take(slot);
                    group.push(write);
                }
                None => groups.push((Part::of(node, slot), vec![write])),
            }
        }
        let stored = try_join_all(groups.into_iter().map(|(part, group)| {
            self.run_on("set", part.node, move |c| write_node(self, c, group, part))
        }))
        .await?;
        Ok(stored.into_iter().flatten().filter(|&s| s).count())
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
                    Conn::Single(_) | Conn::Node(_) => Ok(Vec::new()),
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
    ) -> Result<Vec<String>, Error> {
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
            return Ok(Vec::new());
        }
        let keys = crate::backend::member_keys(&[taken.as_slice(), kept.as_slice()].concat());
        let groups = self.groups(&keys, String::as_str);
        try_join_all(groups.into_iter().map(|(node, group)| {
            self.run_on("invalidate", node, move |mut c| async move {
                let mut pipe = redis::pipe();
                for key in &group {
                    pipe.add_command(set_cmd(key, tombstone, ttl)).ignore();
                }
                pipe.query_async::<()>(&mut c).await?;
                match group.first() {
                    Some(key) => self.replicated(&mut c, key).await,
                    None => Ok(()),
                }
            })
        }))
        .await?;
        if !taken.is_empty() {
            self.run("invalidate", take, |mut c| async move {
                redis::cmd("DEL").arg(take).query_async::<()>(&mut c).await
            })
            .await?;
        }
        Ok(keys)
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
                        Conn::Single(_) | Conn::Node(_) => Ok(Vec::new()),
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
                if let Some(first) = keys.first().cloned() {
                    let node = self.node_of(&first);
                    removed += self
                        .run_on("clear", node, |mut c| async move {
                            let removed = redis::cmd("UNLINK")
                                .arg(&keys)
                                .query_async::<u64>(&mut c)
                                .await?;
                            self.replicated(&mut c, &first).await?;
                            Ok(removed)
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

/// Guarded writes of one node, as `mget.rs` reads: one pipeline, on
/// a cluster sent whole to the node (the script loaded there first if it
/// had not been); after a `MOVED` or `ASK`, the writes again slot by slot,
/// routed by redis-rs (a write already applied finds its own value and is
/// refused by its guard: the value stays, only the count misses it).
async fn write_node(
    backend: &RedisBackend,
    conn: Conn,
    writes: Vec<&GuardedWrite>,
    part: Part,
) -> redis::RedisResult<Vec<bool>> {
    let script = &backend.scripts.write_guarded;
    let pipe = guarded_pipe(script, &writes);
    let mut conn = match conn {
        Conn::Cluster(conn) if !part.one_slot => conn,
        mut conn => return query_guarded(script, &mut conn, &pipe).await,
    };
    let route = || SingleNodeRoutingInfo::SpecificNode(Route::new(part.first, SlotAddr::Master));
    let mut sent = conn
        .route_pipeline(pipe.clone(), 0, pipe.len(), route())
        .await;
    let no_script = |value: &redis::Value| {
        matches!(value, redis::Value::ServerError(e)
            if e.kind() == Some(redis::ServerErrorKind::NoScript))
    };
    if matches!(&sent, Ok(values) if values.iter().any(no_script)) {
        script.prepare_invoke().load_async(&mut conn).await?;
        sent = conn
            .route_pipeline(pipe.clone(), 0, pipe.len(), route())
            .await;
    }
    match sent {
        Ok(values) => values
            .into_iter()
            .map(|value| Ok(bool::from_redis_value(value.extract_error()?)?))
            .collect(),
        Err(error) if error.redirect_node().is_some() => {
            backend.slots_moved();
            let mut stored = Vec::with_capacity(writes.len());
            let mut conn = Conn::Cluster(conn);
            for group in cluster::by_slot(&writes, |write| &write.key) {
                let group: Vec<&GuardedWrite> = group.into_iter().copied().collect();
                let pipe = guarded_pipe(script, &group);
                stored.extend(query_guarded(script, &mut conn, &pipe).await?);
            }
            Ok(stored)
        }
        Err(error) => Err(error),
    }
}

/// A pipeline of the guarded-write script, one invocation per write.
fn guarded_pipe(script: &redis::Script, writes: &[&GuardedWrite]) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for write in writes {
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
    pipe
}

/// Sends `pipe` of guarded writes, routed by its first key on a cluster,
/// loading the script once if the server does not know it.
async fn query_guarded(
    script: &redis::Script,
    conn: &mut Conn,
    pipe: &redis::Pipeline,
) -> redis::RedisResult<Vec<bool>> {
    match pipe.query_async(conn).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            script.prepare_invoke().load_async(conn).await?;
            pipe.query_async(conn).await
        }
        stored => stored,
    }
}
