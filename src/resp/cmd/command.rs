//! `COMMAND [COUNT | LIST | INFO name ... | DOCS name ...]`: the command table, for
//! redis-cli and for client libraries that look commands up.

use super::{Args, COMMANDS, Ctx, Spec, lookup, lower};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;

#[derive(Debug)]
pub enum CommandCmd {
    All,
    Count,
    List,
    Info(Vec<String>),
    Docs(Vec<String>),
}

fn info(spec: &Spec) -> Reply {
    Reply::Array(vec![
        Reply::text(spec.name),
        Reply::Integer(spec.arity),
        Reply::Array(spec.flags.iter().map(|f| Reply::Simple((*f).into())).collect()),
        Reply::Integer(spec.first_key),
        Reply::Integer(spec.last_key),
        Reply::Integer(spec.step),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
        Reply::Array(Vec::new()),
    ])
}

fn docs(spec: &Spec) -> Reply {
    Reply::Map(vec![
        (Reply::text("summary"), Reply::text(spec.summary)),
        (Reply::text("since"), Reply::text("1.0.0")),
        (Reply::text("group"), Reply::text(if spec.first_key > 0 { "string" } else { "server" })),
    ])
}

impl CommandCmd {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let Some(sub) = args.try_next() else {
            return Ok(CommandCmd::All);
        };
        let names = |args: &mut Args| args.rest().iter().map(|n| lower(n)).collect();
        Ok(match lower(&sub).as_str() {
            "count" => {
                args.finish()?;
                CommandCmd::Count
            }
            "list" => CommandCmd::List,
            "info" => CommandCmd::Info(names(args)),
            "docs" => CommandCmd::Docs(names(args)),
            _ => {
                let given = String::from_utf8_lossy(&sub);
                return Err(errinput!("unknown subcommand '{given}'. Try COMMAND HELP."));
            }
        })
    }

    pub async fn apply(self, _ctx: &mut Ctx<'_>) -> Result<Reply> {
        Ok(match self {
            CommandCmd::All => Reply::Array(COMMANDS.iter().map(info).collect()),
            CommandCmd::Count => Reply::Integer(COMMANDS.len() as i64),
            CommandCmd::List => Reply::Array(COMMANDS.iter().map(|s| Reply::text(s.name)).collect()),
            CommandCmd::Info(names) if names.is_empty() => Reply::Array(COMMANDS.iter().map(info).collect()),
            CommandCmd::Info(names) => {
                Reply::Array(names.iter().map(|n| lookup(n).map_or(Reply::Null, info)).collect())
            }
            CommandCmd::Docs(names) => {
                let specs: Vec<&Spec> = if names.is_empty() {
                    COMMANDS.iter().collect()
                } else {
                    names.iter().filter_map(|n| lookup(n)).collect()
                };
                Reply::Map(specs.into_iter().map(|s| (Reply::text(s.name), docs(s))).collect())
            }
        })
    }
}
