//! The floor of a tagged hit on a cluster (`hit_loop cluster-floor`): the
//! entry and its three version keys read by raw redis-rs connections, one
//! to each master holding some of them, all sent at once: an `MGET` where
//! that master's keys share a slot, else a pipeline of one `GET` per key.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use redis::aio::{ConnectionLike, MultiplexedConnection};

/// What one master is asked for on each hit.
pub(crate) struct Part {
    conn: MultiplexedConnection,
    request: redis::Pipeline,
}

/// Connects to the masters of the cluster at `seed` holding `keys`, each
/// with its request.
pub(crate) async fn parts(seed: &str, keys: &[String]) -> Vec<Part> {
    let mut any = redis::Client::open(seed)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let nodes: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query_async(&mut any)
        .await
        .unwrap();
    // Each key's slot and the address of the master serving it.
    let mut placed: Vec<(String, Vec<(u16, String)>)> = Vec::new();
    for key in keys {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut any)
            .await
            .unwrap();
        let address = master_of(&nodes, slot);
        match placed.iter_mut().find(|(a, _)| *a == address) {
            Some((_, held)) => held.push((slot, key.clone())),
            None => placed.push((address, vec![(slot, key.clone())])),
        }
    }
    let mut parts = Vec::new();
    for (address, held) in placed {
        let conn = redis::Client::open(format!("redis://{address}"))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let mut request = redis::pipe();
        if held.iter().all(|(slot, _)| *slot == held[0].0) {
            request.cmd("MGET");
            for (_, key) in &held {
                request.arg(key);
            }
        } else {
            for (_, key) in &held {
                request.cmd("GET").arg(key);
            }
        }
        parts.push(Part { conn, request });
    }
    parts
}

/// The address of the master serving `slot`, from `CLUSTER NODES`.
fn master_of(nodes: &str, slot: u16) -> String {
    nodes
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if !fields.get(2)?.contains("master") {
                return None;
            }
            let serves = fields.iter().skip(8).any(|range| {
                let (first, last) = range.split_once('-').unwrap_or((range, range));
                matches!((first.parse::<u16>(), last.parse::<u16>()), (Ok(f), Ok(l)) if (f..=l).contains(&slot))
            });
            serves.then(|| fields[1].split('@').next().unwrap().to_owned())
        })
        .expect("a master serves every slot")
}

/// One hit's reads: every part's request sent at once, all awaited.
pub(crate) async fn read(parts: &[Part]) -> usize {
    let mut pending: Vec<Pin<Box<dyn Future<Output = usize> + Send + '_>>> = parts
        .iter()
        .map(|part| {
            let mut conn = part.conn.clone();
            let read: Pin<Box<dyn Future<Output = usize> + Send>> = Box::pin(async move {
                let pipe = &part.request;
                let replies = conn.req_packed_commands(pipe, 0, pipe.len()).await;
                // An `MGET`'s reply holds its values.
                replies
                    .unwrap()
                    .iter()
                    .map(|reply| match reply {
                        redis::Value::Array(values) => values.len(),
                        _ => 1,
                    })
                    .sum()
            });
            read
        })
        .collect();
    let mut read = 0;
    std::future::poll_fn(|cx| {
        pending.retain_mut(|part| match part.as_mut().poll(cx) {
            Poll::Ready(values) => {
                read += values;
                false
            }
            Poll::Pending => true,
        });
        if pending.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    read
}
