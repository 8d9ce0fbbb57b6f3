//! `MGET` of keys that may live on several masters: one command on one
//! server; on a cluster, one request per master serving some of them,
//! sent at once, each through that master's circuit, the values put back
//! in the keys' order as each answer arrives. A strict tagged hit reads
//! its entry and its versions this way, so a few keys' bookkeeping stays
//! on the stack (each key's slot computed once, no vector per master),
//! and while every master's direct connection is made, all the requests
//! are awaited in one future (`mget_direct`) rather than one future per
//! master, each with its own deadline and breaker layers.

use std::pin::Pin;
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use deadpool_redis::redis::aio::ConnectionLike;
use deadpool_redis::redis::cluster_async::ClusterConnection;
use deadpool_redis::redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use deadpool_redis::redis::{self, FromRedisValue, RedisFuture, Value};
use futures_util::future::join_all;
use smallvec::SmallVec;

use super::link::Conn;
use super::{RedisBackend, cluster, command};
use crate::Error;

/// What `MGET` answers.
pub(super) type Values = Vec<Option<Vec<u8>>>;

/// The keys one master is sent: the slot of the first, whether every key
/// is in it, and how many there are.
#[derive(Clone, Copy)]
pub(super) struct Part {
    pub(super) node: usize,
    pub(super) first: u16,
    pub(super) one_slot: bool,
    count: usize,
}

impl Part {
    pub(super) fn of(node: usize, slot: u16) -> Self {
        Self {
            node,
            first: slot,
            one_slot: true,
            count: 1,
        }
    }

    /// One more key, in `slot`.
    pub(super) fn take(&mut self, slot: u16) {
        self.one_slot &= self.first == slot;
        self.count += 1;
    }
}

/// Each key, with its part: taken once (the topology may move meanwhile).
type Placed<'k> = SmallVec<[(&'k str, usize); 8]>;

impl RedisBackend {
    /// `MGET` of `keys`: one command on one server; on a cluster, one
    /// request per node serving them (sent at once, see [`read_node`]),
    /// each through that node's circuit, so that a failing master costs
    /// only the reads of its keys.
    pub(super) async fn mget<'k, I>(&self, op: &'static str, keys: I) -> Result<Values, Error>
    where
        I: Iterator<Item = &'k str> + Clone,
    {
        if !self.is_cluster() {
            return self
                .run_on(op, 0, |mut c| async move {
                    command("MGET", keys).query_async(&mut c).await
                })
                .await;
        }
        let mut parts: SmallVec<[Part; 4]> = SmallVec::new();
        let mut placed = Placed::new();
        for key in keys {
            let slot = cluster::slot(key.as_bytes());
            let node = self.node_serving(slot);
            match parts.iter().position(|part| part.node == node) {
                Some(at) => {
                    parts[at].take(slot);
                    placed.push((key, at));
                }
                None => {
                    placed.push((key, parts.len()));
                    parts.push(Part::of(node, slot));
                }
            }
        }
        let values = Mutex::new(vec![None; placed.len()]);
        if let [part] = parts[..] {
            self.read_on(op, part.node, |c| {
                read_node(self, c, &placed, 0, part, &values)
            })
            .await?;
        } else if let Some(read) =
            // Boxed (under a kilobyte), to keep every read's future small.
            Box::pin(self.mget_direct(op, &placed, &parts, &values)).await
        {
            read?;
        } else {
            // Rare (a master's direct connection not made yet, a budget):
            // boxed, to keep every read's future small.
            Box::pin(self.mget_by_node(op, &placed, &parts, &values)).await?;
        }
        Ok(values.into_inner().unwrap_or_else(PoisonError::into_inner))
    }

    /// The parts of [`mget`](Self::mget) on several masters, sent at once,
    /// each as [`read_on`](Self::read_on) reads.
    async fn mget_by_node(
        &self,
        op: &'static str,
        placed: &Placed<'_>,
        parts: &[Part],
        values: &Mutex<Values>,
    ) -> Result<(), Error> {
        // Every part runs to its end, so that each node's breaker learns how
        // it went (a part dropped unfinished would tell it nothing).
        join_all(parts.iter().enumerate().map(|(at, &part)| {
            self.read_on(op, part.node, move |c| {
                read_node(self, c, placed, at, part, values)
            })
        }))
        .await
        .into_iter()
        .collect()
    }

    /// What [`mget_by_node`](Self::mget_by_node) does, in one future (not
    /// one per master), when every master has its direct connection and no
    /// budget runs: each master's request sent on it (unless its circuit
    /// is open) and all awaited at once (each connection enforces the
    /// command deadline); then, master by master, the breaker told how it
    /// went, after the read again through the cluster connection where
    /// [`read_on`](Self::read_on) would read again. `None` (nothing sent)
    /// otherwise. The first error, in the masters' order, is the answer.
    async fn mget_direct(
        &self,
        op: &'static str,
        placed: &Placed<'_>,
        parts: &[Part],
        values: &Mutex<Values>,
    ) -> Option<Result<(), Error>> {
        if crate::budget::running() {
            return None;
        }
        // Each master's connection and request, in one allocation (the
        // reads borrow them), to keep this future small.
        let mut sends = Vec::with_capacity(parts.len());
        for (at, &part) in parts.iter().enumerate() {
            sends.push((self.direct(part.node)?, Request::of(placed, at, part)));
        }
        let mut passes: SmallVec<[_; 4]> = (parts.iter())
            .map(|part| self.breakers.admit(part.node))
            .collect();
        let mut reads: SmallVec<[Read<'_>; 4]> = (sends.iter_mut().zip(&passes))
            .map(|((conn, request), pass)| match pass {
                Ok(_) => Read::Sent(request.send(conn)),
                Err(_) => Read::Refused,
            })
            .collect();
        std::future::poll_fn(|cx| {
            let mut waiting = false;
            for (at, read) in reads.iter_mut().enumerate() {
                if let Read::Sent(sent) = read {
                    match Pin::new(sent).poll(cx) {
                        Poll::Ready(replies) => {
                            let put = replies.and_then(|replies| put(values, placed, at, replies));
                            *read = Read::Done(put);
                        }
                        Poll::Pending => waiting = true,
                    }
                }
            }
            if waiting {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
        let mut answer = Ok(());
        for (at, (pass, read)) in passes.drain(..).zip(reads.drain(..)).enumerate() {
            let part = parts[at];
            let read = match (pass, read) {
                (Ok(pass), Read::Done(put)) => {
                    let put = match put {
                        Err(error) => {
                            // Rare: boxed, to keep every read's future small.
                            let again = |c| read_node(self, c, placed, at, part, values);
                            Box::pin(self.read_again(op, part.node, error, &again)).await
                        }
                        put => put,
                    };
                    self.settle(op, pass, put, || {})
                }
                (Err(retry_in), _) => Err(Error::CircuitOpen { op, retry_in }),
                (Ok(_), Read::Sent(_) | Read::Refused) => {
                    unreachable!("every read sent is awaited to its end")
                }
            };
            if answer.is_ok() {
                answer = read;
            }
        }
        Some(answer)
    }
}

/// One master's read in [`RedisBackend::mget_direct`].
enum Read<'a> {
    /// Not sent: the master's circuit is open.
    Refused,
    Sent(Sent<'a>),
    /// Its values put in place, or why not.
    Done(redis::RedisResult<()>),
}

/// Reads the keys of the part `at` of `placed`, all served by one node,
/// each value put at its key's place in `values` (see [`Request`]). On the
/// cluster connection, keys that span slots go as one pipeline of `GET`s
/// routed by the first key's slot (`route_pipeline`: redis-rs would split
/// an `MGET` into one routed command per slot); a key that moved meanwhile
/// (`MOVED`, `ASK`, after redis-rs' own retries) sends the keys again as
/// one `MGET` that redis-rs splits by slot and redirects, and has the
/// topology looked at again. On a direct connection, such an error goes
/// back to [`read_on`](RedisBackend::read_on), which reads through the
/// cluster connection instead.
async fn read_node(
    backend: &RedisBackend,
    conn: Conn,
    placed: &Placed<'_>,
    at: usize,
    part: Part,
    values: &Mutex<Values>,
) -> redis::RedisResult<()> {
    let replies = match conn {
        // Boxed, to keep every read's future small.
        Conn::Cluster(conn) if !part.one_slot => {
            let pipelined = read_pipelined(backend, conn, keys_of(placed, at), part.first);
            Replies::many(Box::pin(pipelined).await?)
        }
        mut conn => {
            let request = Request::of(placed, at, part);
            request.send(&mut conn).await?
        }
    };
    put(values, placed, at, replies)
}

/// The keys of the part `at` of `placed`.
fn keys_of<'p, 'k>(
    placed: &'p Placed<'k>,
    at: usize,
) -> impl Iterator<Item = &'k str> + Clone + 'p {
    placed
        .iter()
        .filter(move |(_, of)| *of == at)
        .map(|(key, _)| *key)
}

/// What one master is sent for its part of an `MGET`: a `GET` of its one
/// key; an `MGET` of keys that share a slot; else a pipeline of one `GET`
/// per key (a cluster refuses an `MGET` across slots).
enum Request {
    /// A `GET` (`false`) or an `MGET` (`true`).
    Command(redis::Cmd, bool),
    Pipeline(redis::Pipeline),
}

impl Request {
    fn of(placed: &Placed<'_>, at: usize, part: Part) -> Self {
        let keys = keys_of(placed, at);
        if !part.one_slot {
            Self::Pipeline(gets(keys))
        } else if part.count == 1 {
            Self::Command(command("GET", keys), false)
        } else {
            Self::Command(command("MGET", keys), true)
        }
    }

    /// Sends it on `conn`.
    fn send<'a>(&'a self, conn: &'a mut impl ConnectionLike) -> Sent<'a> {
        match self {
            Self::Command(cmd, many) => Sent::Command(conn.req_packed_command(cmd), *many),
            Self::Pipeline(pipe) => Sent::Pipeline(conn.req_packed_commands(pipe, 0, pipe.len())),
        }
    }
}

/// A [`Request`] sent, until its replies arrive.
enum Sent<'a> {
    Command(RedisFuture<'a, Value>, bool),
    Pipeline(RedisFuture<'a, Vec<Value>>),
}

impl Future for Sent<'_> {
    type Output = redis::RedisResult<Replies>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match self.get_mut() {
            Self::Command(sent, false) => ready!(sent.as_mut().poll(cx)).map(Replies::one),
            Self::Command(sent, true) => {
                ready!(sent.as_mut().poll(cx)).and_then(|reply| Ok(Replies::many(array(reply)?)))
            }
            Self::Pipeline(sent) => ready!(sent.as_mut().poll(cx)).map(Replies::many),
        })
    }
}

/// A part's replies, in its keys' order: a `GET`'s one, or those of an
/// `MGET` or a pipeline.
struct Replies {
    one: Option<Value>,
    many: Vec<Value>,
}

impl Replies {
    fn one(reply: Value) -> Self {
        Self {
            one: Some(reply),
            many: Vec::new(),
        }
    }

    fn many(replies: Vec<Value>) -> Self {
        Self {
            one: None,
            many: replies,
        }
    }
}

/// The replies of an `MGET`.
fn array(reply: Value) -> redis::RedisResult<Vec<Value>> {
    match reply {
        Value::Array(replies) => Ok(replies),
        other => Ok(Vec::from_redis_value(other.extract_error()?)?),
    }
}

/// Puts the replies to the part `at` of `placed` at their keys' places
/// in `values`; the first error, if any.
fn put(
    values: &Mutex<Values>,
    placed: &Placed<'_>,
    at: usize,
    replies: Replies,
) -> redis::RedisResult<()> {
    let spots = (placed.iter().enumerate())
        .filter(|(_, (_, of))| *of == at)
        .map(|(spot, _)| spot);
    let mut values = values.lock().unwrap_or_else(PoisonError::into_inner);
    for (spot, reply) in spots.zip(replies.one.into_iter().chain(replies.many)) {
        values[spot] = match reply {
            Value::Nil => None,
            Value::BulkString(bytes) => Some(bytes),
            other => Option::<Vec<u8>>::from_redis_value(other.extract_error()?)?,
        };
    }
    Ok(())
}

/// A pipeline of one `GET` per key.
fn gets<'k>(keys: impl Iterator<Item = &'k str>) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for key in keys {
        pipe.add_command(command("GET", [key]));
    }
    pipe
}

/// [`read_node`]'s pipeline of `GET`s, routed by the slot `first`.
async fn read_pipelined<'k, I>(
    backend: &RedisBackend,
    mut conn: ClusterConnection,
    keys: I,
    first: u16,
) -> redis::RedisResult<Vec<Value>>
where
    I: Iterator<Item = &'k str> + Clone,
{
    let pipe = gets(keys.clone());
    let count = pipe.len();
    let route = SingleNodeRoutingInfo::SpecificNode(Route::new(first, SlotAddr::Master));
    match conn.route_pipeline(pipe, 0, count, route).await {
        Ok(replies) => Ok(replies),
        Err(error) if error.redirect_node().is_some() => {
            backend.slots_moved();
            array(conn.req_packed_command(&command("MGET", keys)).await?)
        }
        Err(error) => Err(error),
    }
}
