//! `INFO [section ...]`: server, clients, stats, keyspace, a `valthree` section describing the
//! consistency mode, and in dynamo mode a `dynamo` section (its ring, quorums, siblings, read
//! repairs, hints and failure detector); `commandstats` and `errorstats` as Redis has them.
//! The counters are the node's [`Metrics`](crate::metrics::Metrics), the ones `/metrics`
//! serves.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::{Args, Ctx, lower};
use crate::error::Result;
use crate::resp::{REDIS_COMPAT_VERSION, Reply};

#[derive(Debug)]
pub struct Info {
    sections: Vec<String>,
}

const SECTIONS: &[&str] =
    &["server", "clients", "stats", "commandstats", "errorstats", "keyspace", "valthree", "dynamo"];

/// The sections a bare INFO (or `INFO default`) leaves out, as Redis does.
const NOT_DEFAULT: &[&str] = &["commandstats"];

/// The mode details that make up the `dynamo` section.
const DYNAMO_PREFIX: &str = "dynamo_";

impl Info {
    pub fn parse(args: &mut Args) -> Result<Self> {
        Ok(Self { sections: args.rest().iter().map(|s| lower(s)).collect() })
    }

    fn wants(&self, section: &str) -> bool {
        let default = !NOT_DEFAULT.contains(&section);
        (self.sections.is_empty() && default)
            || self
                .sections
                .iter()
                .any(|s| s == section || matches!(s.as_str(), "all" | "everything") || (s == "default" && default))
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let server = ctx.server;
        let mode = ctx.store.describe();
        let mut out = String::new();
        for section in SECTIONS.iter().filter(|s| self.wants(s)) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            let mut line = |k: &str, v: &dyn std::fmt::Display| {
                let _ = write!(out, "{k}:{v}\r\n");
            };
            match *section {
                "server" => {
                    line("# Server\r\nredis_version", &REDIS_COMPAT_VERSION);
                    line("valthree_version", &env!("CARGO_PKG_VERSION"));
                    line("redis_mode", &"standalone");
                    line("os", &std::env::consts::OS);
                    line("arch_bits", &(usize::BITS));
                    line("process_id", &std::process::id());
                    line("tcp_port", &server.local_addr.port());
                    line("uptime_in_seconds", &server.started.elapsed().as_secs());
                }
                "clients" => {
                    line("# Clients\r\nconnected_clients", &server.clients.load(Ordering::Relaxed));
                    line("maxclients", &server.maxclients);
                    // What --maxmemory-clients bounds: the bytes all query buffers hold now.
                    line("client_query_buffers", &server.client_buffers.used());
                }
                "stats" => {
                    line("# Stats\r\ntotal_connections_received", &server.next_client_id.load(Ordering::Relaxed));
                    line("total_commands_processed", &server.commands.load(Ordering::Relaxed));
                    line("rejected_connections", &server.rejected_connections.load(Ordering::Relaxed));
                    line("acl_access_denied_auth", &server.auth_failures.load(Ordering::Relaxed));
                    line("auth_attempts_throttled", &server.auth_throttled.load(Ordering::Relaxed));
                    line("unauthenticated_closed", &server.strangers_closed.load(Ordering::Relaxed));
                    line(
                        "client_output_buffer_limit_disconnections",
                        &server.output_limit_closed.load(Ordering::Relaxed),
                    );
                    line("evicted_clients", &server.evictor.evicted());
                    line("snapshot_walks", &server.snapshot_walks.load(Ordering::Relaxed));
                    line("total_net_input_bytes", &server.metrics.net_input_bytes.load(Ordering::Relaxed));
                    line("total_net_output_bytes", &server.metrics.net_output_bytes.load(Ordering::Relaxed));
                    line("total_error_replies", &server.metrics.error_stats().values().sum::<u64>());
                    line("snapshot_walks_expired", &server.snapshot_walks_expired.load(Ordering::Relaxed));
                }
                "commandstats" => {
                    out.push_str("# Commandstats\r\n");
                    for c in server.metrics.command_stats() {
                        let per_call = if c.calls == 0 { 0.0 } else { c.usec as f64 / c.calls as f64 };
                        let _ = write!(
                            out,
                            "cmdstat_{}:calls={},usec={},usec_per_call={per_call:.2},rejected_calls={},failed_calls={}\r\n",
                            c.name, c.calls, c.usec, c.rejected, c.failed
                        );
                    }
                }
                "errorstats" => {
                    out.push_str("# Errorstats\r\n");
                    for (kind, count) in server.metrics.error_stats() {
                        let _ = write!(out, "errorstat_{kind}:count={count}\r\n");
                    }
                }
                "keyspace" => {
                    out.push_str("# Keyspace\r\n");
                    // Never a cluster-wide count: INFO must stay cheap (paxos' DBSIZE is a
                    // round per key). Modes that replicate report their local count.
                    let count = match ctx.store.local_dbsize() {
                        Some(n) => Ok(n),
                        None => ctx.store.dbsize().await,
                    };
                    match count {
                        Ok(0) => {}
                        Ok(n) => out.push_str(&format!("db0:keys={n},expires=0,avg_ttl=0\r\n")),
                        Err(e) => out.push_str(&format!("# unavailable: {e}\r\n")),
                    }
                }
                "valthree" => {
                    line("# Valthree\r\nmode", &mode.mode);
                    let fs = server.faults.fs();
                    line("storage_failed", &fs.failure().unwrap_or("no"));
                    if fs.is_lazy() {
                        line("fault_fs", &"lazy");
                    }
                    for (k, v) in mode.details.iter().filter(|(k, _)| !k.starts_with(DYNAMO_PREFIX)) {
                        line(k, v);
                    }
                }
                "dynamo" => {
                    let mut dynamo = mode.details.iter().filter(|(k, _)| k.starts_with(DYNAMO_PREFIX)).peekable();
                    if dynamo.peek().is_some() {
                        out.push_str("# Dynamo\r\n");
                        for (k, v) in dynamo {
                            let _ = write!(out, "{k}:{v}\r\n");
                        }
                    } else if out.ends_with("\r\n\r\n") {
                        out.truncate(out.len() - 2);
                    }
                }
                _ => unreachable!(),
            }
        }
        Ok(Reply::Verbatim(out))
    }
}
