//! `cachette`: look at and act on what cachette stores in a live Redis (or
//! Redis Cluster, or the master Redis Sentinel names), by `--url`,
//! `--cluster` or `--sentinel` and `--master`, or `REDIS_URL`,
//! `REDIS_CLUSTER_URLS` or `REDIS_SENTINEL_URLS` and `REDIS_SENTINEL_MASTER`.
//!
//! ```sh
//! cargo run --features cli --bin cachette -- --url redis://127.0.0.1:6379 stats
//! ```

mod inspect;
mod redis_target;
mod stats;

use std::io::{BufRead, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use redis_target::Target;

/// Inspect and manage cachette's entries in Redis.
#[derive(Parser, Debug)]
#[command(name = "cachette", version, about)]
struct Cli {
    /// The Redis to talk to (`redis://` or `rediss://`); else `REDIS_URL`.
    #[arg(long, global = true)]
    url: Option<String>,
    /// Seed nodes of a Redis Cluster, comma-separated; else `REDIS_CLUSTER_URLS`.
    #[arg(long, global = true, value_delimiter = ',')]
    cluster: Vec<String>,
    /// Redis Sentinel: the sentinels, comma-separated; else `REDIS_SENTINEL_URLS`.
    #[arg(long, global = true, value_delimiter = ',')]
    sentinel: Vec<String>,
    /// With `--sentinel`: the master's name, or a URL whose host is the name
    /// (`redis://:password@mymaster/0`); else `REDIS_SENTINEL_MASTER`.
    #[arg(long, global = true)]
    master: Option<String>,
    /// The caches' key prefix.
    #[arg(long, global = true, default_value = "cachette")]
    prefix: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Keys and memory by group (the key up to its last `:`), the largest
    /// keys, and lifetimes left, sampled with SCAN and MEMORY USAGE.
    Stats {
        /// Only keys matching this glob (after the prefix and `:`).
        #[arg(long = "match", default_value = "*")]
        glob: String,
        /// Look at most at this many keys.
        #[arg(long, default_value_t = 100_000)]
        sample: usize,
        /// How many of the largest keys to list.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// One JSON document instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// What cachette stored at KEY (as given to the cache, or as stored).
    Inspect {
        key: String,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Drops every entry of NAMESPACE (bumps its version).
    Bump { namespace: String },
    /// Drops every entry tagged TAG.
    InvalidateTag { tag: String },
    /// Removes the entries whose keys match GLOB (SCAN, never KEYS).
    DeletePattern {
        glob: String,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Removes every entry under the prefix.
    Clear {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return fail(&format!("cannot start: {error}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("cachette: {message}");
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> Result<(), String> {
    let target = Target::from_args(cli.url, cli.cluster, cli.sentinel, cli.master)?;
    let prefix = cli.prefix;
    match cli.command {
        Command::Stats {
            glob,
            sample,
            top,
            json,
        } => stats::run(&target, &prefix, &glob, sample, top, json).await,
        Command::Inspect { key, json } => inspect::run(&target, &prefix, &key, json).await,
        Command::Bump { namespace } => {
            let cache = target.cache(&prefix).await?;
            let bumped = cache.invalidate_namespace(&namespace).await;
            report_bump("namespace", &namespace, bumped)
        }
        Command::InvalidateTag { tag } => {
            let cache = target.cache(&prefix).await?;
            report_bump("tag", &tag, cache.invalidate_tag(&tag).await)
        }
        Command::DeletePattern { glob, yes } => {
            let cache = target.cache(&prefix).await?;
            confirm(
                yes,
                &format!("remove every entry of {prefix:?} matching {glob:?}"),
            )?;
            let removed = cache
                .delete_pattern(&glob)
                .await
                .map_err(|e| e.to_string())?;
            println!("removed {removed} entries");
            Ok(())
        }
        Command::Clear { yes } => {
            let cache = target.cache(&prefix).await?;
            confirm(
                yes,
                &format!("remove every entry under the prefix {prefix:?}"),
            )?;
            cache.clear().await.map_err(|e| e.to_string())?;
            println!("cleared {prefix:?}");
            Ok(())
        }
    }
}

/// What a bump of the namespace or tag `name` ended with.
fn report_bump(
    kind: &str,
    name: &str,
    bumped: cachette::Result<cachette::Invalidated>,
) -> Result<(), String> {
    let bumped = bumped.map_err(|e| e.to_string())?;
    match bumped.version() {
        Some(version) => {
            println!("{kind} {name:?} bumped to version {version}");
            Ok(())
        }
        None => Err(format!(
            "{kind} {name:?} not bumped: Redis did not take the command"
        )),
    }
}

/// Asks before a destructive command, unless `--yes`.
fn confirm(yes: bool, what: &str) -> Result<(), String> {
    if yes {
        return Ok(());
    }
    eprint!("{what}? Type `yes` to go on: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| format!("cannot read the answer: {e}"))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err("not confirmed; nothing removed (pass --yes to skip the question)".to_owned())
    }
}
