//! `cachette inspect KEY`: what cachette stored at a key — its format,
//! write time, lifetime left, freshness, version stamps (current or
//! stale), size, and the value decoded to JSON where it can be.

use std::time::{SystemTime, UNIX_EPOCH};

use cachette::internals::{Described, describe};
use serde_json::json;

use crate::redis_target::Target;

pub(crate) async fn run(
    target: &Target,
    prefix: &str,
    key: &str,
    as_json: bool,
) -> Result<(), String> {
    let stored = if key.starts_with(&format!("{prefix}:")) || key.starts_with(&format!("{prefix}#"))
    {
        key.to_owned()
    } else {
        target.cache(prefix).await?.key_for(key)
    };
    let mut conn = target.key_conn().await?;
    let kind: String = conn
        .query(redis::cmd("TYPE").arg(&stored))
        .await
        .map_err(|e| e.to_string())?;
    match kind.as_str() {
        "none" => return Err(format!("no key {stored:?}")),
        "string" => {}
        other => {
            return Err(format!(
                "{stored:?} holds a Redis {other}, not a cachette entry"
            ));
        }
    }
    let bytes: Vec<u8> = conn
        .query(redis::cmd("GET").arg(&stored))
        .await
        .map_err(|e| e.to_string())?;
    let ttl_ms: i64 = conn
        .query(redis::cmd("PTTL").arg(&stored))
        .await
        .map_err(|e| e.to_string())?;
    let memory: Option<u64> = conn
        .query(redis::cmd("MEMORY").arg("USAGE").arg(&stored))
        .await
        .unwrap_or(None);
    let Some(described) = describe(&bytes) else {
        return Err(format!(
            "{stored:?} holds {} bytes that are not a cachette entry",
            bytes.len()
        ));
    };
    let versions = if let Described::Value(envelope) = &described
        && !envelope.stamps.is_empty()
    {
        version_keys(target, prefix).await?
    } else {
        Vec::new()
    };
    let now = now_ms();
    let report = report(&stored, &bytes, ttl_ms, memory, &described, &versions, now);
    if as_json {
        println!("{report}");
    } else {
        print(&report);
    }
    Ok(())
}

/// Every version key under `prefix` and its version, to tell stamps apart.
async fn version_keys(target: &Target, prefix: &str) -> Result<Vec<(String, u64)>, String> {
    let mut out = Vec::new();
    for mut master in target.masters().await? {
        for kind in ["ns", "tag"] {
            let mut cursor = 0_u64;
            loop {
                let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{prefix}#{kind}:*"))
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut master)
                    .await
                    .map_err(|e| e.to_string())?;
                for key in keys {
                    let version: Option<String> = redis::cmd("GET")
                        .arg(&key)
                        .query_async(&mut master)
                        .await
                        .map_err(|e| e.to_string())?;
                    if let Some(version) = version.and_then(|v| v.parse().ok()) {
                        out.push((key, version));
                    }
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
    }
    Ok(out)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The report as JSON (printed as is with `--json`, as text otherwise).
fn report(
    stored: &str,
    bytes: &[u8],
    ttl_ms: i64,
    memory: Option<u64>,
    described: &Described,
    versions: &[(String, u64)],
    now: u64,
) -> serde_json::Value {
    let lifetime = match ttl_ms {
        ms if ms >= 0 => json!({"left_ms": ms}),
        _ => json!("no expiry"),
    };
    let mut report = json!({
        "key": stored,
        "bytes": bytes.len(),
        "memory_usage": memory,
        "lifetime": lifetime,
    });
    let fields = match described {
        Described::Counter(n) => json!({"format": "counter", "value": n}),
        Described::Tombstone { written_at_ms } => json!({
            "format": "tombstone (an invalidated key)",
            "written_at": timestamp(*written_at_ms),
            "age_ms": now.saturating_sub(*written_at_ms),
        }),
        Described::Value(envelope) => {
            let mut format = "value".to_owned();
            if envelope.compressed {
                format.push_str(", compressed");
            }
            if envelope.signed {
                format.push_str(", signed");
            }
            let freshness = match envelope.fresh_until_ms {
                None => json!("no freshness limit"),
                Some(until) if until > now => json!({"fresh_for_ms": until - now}),
                Some(until) => json!({"stale_for_ms": now - until}),
            };
            let stamps: Vec<serde_json::Value> = envelope
                .stamps
                .iter()
                .map(|stamp| match versions.iter().find(|(_, v)| v == stamp) {
                    Some((key, _)) => json!({"stamp": stamp, "current": true, "version_key": key}),
                    None => json!({"stamp": stamp, "current": false}),
                })
                .collect();
            let value = envelope.payload.as_deref().map_or(
                json!("(does not decompress within the size limit)"),
                |payload| {
                    rmp_serde::from_slice::<serde_json::Value>(payload)
                        .unwrap_or_else(|_| json!("(not decodable without its type)"))
                },
            );
            json!({
                "format": format,
                "written_at": timestamp(envelope.written_at_ms),
                "age_ms": now.saturating_sub(envelope.written_at_ms),
                "computed_in_ms": envelope.compute_ms,
                "freshness": freshness,
                "stamps": stamps,
                "stale": stamps.iter().any(|s| s["current"] == false),
                "value": value,
            })
        }
        _ => json!({"format": "a cachette entry of a newer format"}),
    };
    if let (Some(report), serde_json::Value::Object(fields)) = (report.as_object_mut(), fields) {
        report.extend(fields);
    }
    report
}

fn print(report: &serde_json::Value) {
    let Some(fields) = report.as_object() else {
        return;
    };
    for (name, value) in fields {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Null => "-".to_owned(),
            other if name == "value" => {
                serde_json::to_string_pretty(other).unwrap_or_else(|_| other.to_string())
            }
            other => other.to_string(),
        };
        println!("{:<16} {text}", format!("{name}:"));
    }
}

/// Unix milliseconds as an RFC 3339 UTC time.
fn timestamp(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::timestamp;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(timestamp(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(timestamp(1_795_000_000_000), "2026-11-18T11:06:40.000Z");
    }
}
