//! `CONFIG GET parameter [parameter ...]`: the few settings a client may want to read, under
//! Redis' names, as Redis replies them (a flat `[name, value, ...]`; each argument a glob, an
//! unknown name matching nothing). `valthree restore` asks `proto-max-bulk-len` before it
//! writes, so a value the nodes would refuse is found before anything is restored. valthree's
//! settings are its start-up flags: `CONFIG SET`, `REWRITE` and `RESETSTAT` are refused.

use bytes::Bytes;

use super::{Args, Ctx, lower};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;
use crate::store::Pattern;

#[derive(Debug)]
pub struct Config {
    patterns: Vec<Bytes>,
}

impl Config {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let sub = lower(&args.next_bytes()?);
        match sub.as_str() {
            "get" => {
                let patterns = args.rest();
                if patterns.is_empty() {
                    return Err(errinput!("wrong number of arguments for 'config|get' command"));
                }
                Ok(Self { patterns })
            }
            "set" | "rewrite" | "resetstat" => Err(errinput!(
                "CONFIG {} is not supported: valthree's settings are the flags `valthree serve` starts with",
                sub.to_ascii_uppercase()
            )),
            _ => Err(errinput!("unknown subcommand '{sub}'. Try CONFIG GET.")),
        }
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let server = ctx.server;
        let settings = [
            ("client-output-buffer-limit", server.output_limit.to_string()),
            ("maxclients", server.maxclients.to_string()),
            ("proto-max-bulk-len", server.proto_max_bulk_len.to_string()),
            ("timeout", server.idle_timeout.map_or(0, |t| t.as_secs()).to_string()),
        ];
        let patterns: Vec<Pattern> = self.patterns.iter().map(|p| Pattern::new(&p.to_ascii_lowercase())).collect();
        let mut reply = Vec::new();
        for (name, value) in settings {
            if patterns.iter().any(|p| p.matches(name.as_bytes())) {
                reply.push(Reply::text(name));
                reply.push(Reply::text(value));
            }
        }
        Ok(Reply::Array(reply))
    }
}
