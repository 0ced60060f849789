//! `CLIENT SETNAME|GETNAME|ID|SETINFO|INFO|LIST|HELP`: what a connection says about itself.

use bytes::Bytes;

use super::{Args, Ctx, lower};
use crate::errinput;
use crate::error::Result;
use crate::resp::Reply;
use crate::resp::Session;

#[derive(Debug)]
pub enum Client {
    SetName(Bytes),
    GetName,
    Id,
    SetInfo { attr: String, value: Bytes },
    Info,
    Help,
}

/// Redis refuses names with spaces, newlines or other non-printable characters.
/// The longest client name (or library name or version) a connection keeps: it lives as long
/// as the connection, outside any buffer `--maxmemory-clients` counts.
pub const MAX_CLIENT_NAME: usize = 4096;

pub fn check_name(name: &[u8]) -> Result<()> {
    if name.len() > MAX_CLIENT_NAME {
        return Err(errinput!("Client names are limited to {MAX_CLIENT_NAME} bytes."));
    }
    if name.iter().any(|c| !(b'!'..=b'~').contains(c)) {
        return Err(errinput!("Client names cannot contain spaces, newlines or special characters."));
    }
    Ok(())
}

fn arity(sub: &str, args: &Args, want: usize) -> Result<()> {
    if args.remaining() != want {
        return Err(errinput!("wrong number of arguments for 'client|{sub}' command"));
    }
    Ok(())
}

impl Client {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let given = args.next_bytes()?;
        let sub = lower(&given);
        Ok(match sub.as_str() {
            "setname" => {
                arity(&sub, args, 1)?;
                Client::SetName(args.next_bytes()?)
            }
            "getname" | "id" | "info" | "list" | "help" => {
                if sub != "list" {
                    arity(&sub, args, 0)?;
                }
                match sub.as_str() {
                    "getname" => Client::GetName,
                    "id" => Client::Id,
                    "help" => Client::Help,
                    _ => Client::Info,
                }
            }
            "setinfo" => {
                arity(&sub, args, 2)?;
                let attr = lower(&args.next_bytes()?);
                if attr != "lib-name" && attr != "lib-ver" {
                    return Err(errinput!("Unrecognized option '{attr}'"));
                }
                Client::SetInfo { attr, value: args.next_bytes()? }
            }
            _ => {
                let given = String::from_utf8_lossy(&given);
                return Err(errinput!("unknown subcommand '{given}'. Try CLIENT HELP."));
            }
        })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        let session = &mut *ctx.session;
        Ok(match self {
            Client::SetName(name) => {
                check_name(&name)?;
                // A copy: a slice would keep the whole request's buffer alive.
                session.name = Some(bytes::Bytes::copy_from_slice(&name)).filter(|n| !n.is_empty());
                Reply::ok()
            }
            Client::GetName => Reply::bulk_or_null(session.name.clone()),
            Client::Id => Reply::Integer(session.id as i64),
            Client::SetInfo { attr, value } => {
                if value.len() > MAX_CLIENT_NAME {
                    return Err(errinput!("{attr} is limited to {MAX_CLIENT_NAME} bytes."));
                }
                check_name(&value)
                    .map_err(|_| errinput!("{attr} cannot contain spaces, newlines or special characters."))?;
                let text = String::from_utf8_lossy(&value).into_owned();
                if attr == "lib-name" {
                    session.lib_name = text
                } else {
                    session.lib_ver = text
                }
                Reply::ok()
            }
            Client::Info => Reply::Verbatim(describe(session)),
            Client::Help => Reply::Array(
                [
                    "CLIENT <subcommand> [<arg> ...]. Subcommands are:",
                    "GETNAME",
                    "SETNAME <name>",
                    "ID",
                    "INFO",
                    "LIST",
                    "SETINFO <LIB-NAME|LIB-VER> <value>",
                    "HELP",
                ]
                .into_iter()
                .map(|l| Reply::Simple(l.into()))
                .collect(),
            ),
        })
    }
}

/// One line of `CLIENT INFO`, in Redis' field=value format.
fn describe(s: &Session) -> String {
    let name = s.name.as_deref().map(String::from_utf8_lossy).unwrap_or_default();
    format!(
        "id={} addr={} laddr={} name={} age={} db=0 resp={} lib-name={} lib-ver={}\n",
        s.id,
        s.peer,
        s.local,
        name,
        s.connected.elapsed().as_secs(),
        s.protocol,
        s.lib_name,
        s.lib_ver
    )
}
