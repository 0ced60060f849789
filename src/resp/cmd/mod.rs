//! The commands, one file each (mini-redis style): `parse` reads the arguments, `apply` runs
//! the command against the store and the connection, and the reply comes back as a [`Reply`].
//!
//! Arity is checked from [`COMMANDS`] before a command parses its arguments, so every
//! command answers a wrong argument count with Redis' own text, and the same table answers
//! `COMMAND COUNT|INFO|DOCS`.

mod append;
pub(crate) mod auth;
mod client;
mod command;
mod dbsize;
mod del;
mod echo;
mod exists;
mod fault;
mod flushall;
mod get;
mod hello;
mod incr;
mod info;
mod members;
mod mget;
mod ping;
mod quit;
mod select;
mod set;
mod strlen;

use bytes::Bytes;

use super::Reply;
use super::connection::Session;
use super::server::ServerState;
use crate::errinput;
use crate::error::{Error, Result};
use crate::store::Store;

/// What a command may touch while it runs.
pub struct Ctx<'a> {
    pub store: &'a dyn Store,
    pub session: &'a mut Session,
    pub server: &'a ServerState,
}

/// One row of the command table (the fields of Redis' `COMMAND INFO`).
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    /// Argument count including the name; negative means "at least".
    pub arity: i64,
    pub flags: &'static [&'static str],
    pub first_key: i64,
    pub last_key: i64,
    pub step: i64,
    pub summary: &'static str,
}

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
    summary: &'static str,
) -> Spec {
    Spec { name, arity, flags, first_key: keys.0, last_key: keys.1, step: keys.2, summary }
}

const R: &[&str] = &["readonly", "fast"];
const W: &[&str] = &["write", "denyoom"];
const C: &[&str] = &["fast", "no-auth"];
const NONE: (i64, i64, i64) = (0, 0, 0);
const ONE: (i64, i64, i64) = (1, 1, 1);
const ALL: (i64, i64, i64) = (1, -1, 1);

/// Every command valthree knows.
pub const COMMANDS: &[Spec] = &[
    spec("append", 3, W, ONE, "Appends a string to the value of a key. Creates the key if it doesn't exist."),
    spec("auth", -2, C, NONE, "Authenticates the connection."),
    spec("client", -2, &["slow"], NONE, "A container for client connection commands."),
    spec("command", -1, &["slow"], NONE, "Returns detailed information about all commands."),
    spec("dbsize", 1, R, NONE, "Returns the number of keys in the database."),
    spec("decr", 2, W, ONE, "Decrements the integer value of a key by one."),
    spec("decrby", 3, W, ONE, "Decrements a number from the integer value of a key."),
    spec("del", -2, &["write"], ALL, "Deletes one or more keys."),
    spec("echo", 2, &["fast"], NONE, "Returns the given string."),
    spec("exists", -2, R, ALL, "Determines whether one or more keys exist."),
    spec("flushall", -1, &["write"], NONE, "Removes all keys."),
    spec("flushdb", -1, &["write"], NONE, "Removes all keys from the current database."),
    spec("get", 2, R, ONE, "Returns the string value of a key."),
    spec("hello", -1, C, NONE, "Handshakes with the server."),
    spec("incr", 2, W, ONE, "Increments the integer value of a key by one."),
    spec("incrby", 3, W, ONE, "Increments the integer value of a key by a number."),
    spec("info", -1, &["slow"], NONE, "Returns information and statistics about the server."),
    spec("mget", -2, R, ALL, "Atomically returns the string values of one or more keys."),
    spec("ping", -1, &["fast"], NONE, "Returns the server's liveliness response."),
    spec("quit", -1, C, NONE, "Closes the connection."),
    spec("select", 2, &["fast"], NONE, "Changes the selected database (only 0 exists)."),
    spec("set", -3, W, ONE, "Sets the string value of a key. NX, XX and GET are supported; expiry is not."),
    spec("strlen", 2, R, ONE, "Returns the length of a string value."),
    spec("valthree.members", -3, &["admin"], NONE, "Shows or changes the cluster's membership (needs --admin-token)."),
    spec(
        "valthree.fault",
        -3,
        &["admin"],
        NONE,
        "Test only: isolates this node from peers, or heals it (needs --admin-token).",
    ),
];

/// Looks a command up by its lowercase name.
pub fn lookup(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|s| s.name == name)
}

/// A cursor over a command's arguments.
pub struct Args {
    name: &'static str,
    rest: std::vec::IntoIter<Bytes>,
}

impl Args {
    /// The next argument. Arity is checked before parsing, so a missing one is a syntax error.
    pub fn next_bytes(&mut self) -> Result<Bytes> {
        self.rest.next().ok_or_else(|| errinput!("syntax error"))
    }

    /// The next argument, if any.
    pub fn try_next(&mut self) -> Option<Bytes> {
        self.rest.next()
    }

    /// The next argument as an integer, with Redis' error text.
    pub fn next_i64(&mut self) -> Result<i64> {
        let arg = self.next_bytes()?;
        crate::store::parse_i64(&arg).ok_or_else(|| errinput!("{}", crate::store::NOT_AN_INTEGER))
    }

    /// Every remaining argument.
    pub fn rest(&mut self) -> Vec<Bytes> {
        self.rest.by_ref().collect()
    }

    /// How many arguments are left.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// The lowercase command name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Fails with "syntax error" when arguments are left over.
    pub fn finish(&mut self) -> Result<()> {
        match self.rest.next() {
            None => Ok(()),
            Some(_) => Err(errinput!("syntax error")),
        }
    }
}

/// Lowercases an argument for comparison with option names.
pub fn lower(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).to_ascii_lowercase()
}

/// A parsed command, ready to run.
#[derive(Debug)]
pub enum Command {
    Append(append::Append),
    Auth(auth::Auth),
    Client(client::Client),
    Command(command::CommandCmd),
    Dbsize(dbsize::Dbsize),
    Del(del::Del),
    Echo(echo::Echo),
    Exists(exists::Exists),
    Flushall(flushall::Flushall),
    Get(get::Get),
    Hello(hello::Hello),
    Incr(incr::Incr),
    Info(info::Info),
    Mget(mget::Mget),
    Ping(ping::Ping),
    Quit(quit::Quit),
    Select(select::Select),
    Set(set::Set),
    Strlen(strlen::Strlen),
    Fault(fault::Fault),
    Members(members::Members),
}

/// Redis' reply to an unknown command, quoting the first arguments: the name cut to 128
/// bytes, and arguments quoted while the quoted text is under 128 bytes.
fn unknown_command(request: &[Bytes]) -> Error {
    let cut = |b: &[u8], n: usize| String::from_utf8_lossy(&b[..b.len().min(n)]).into_owned();
    let name = cut(&request[0], 128);
    let mut args = String::new();
    for arg in &request[1..] {
        if args.len() >= 128 {
            break;
        }
        args.push_str(&format!("'{}' ", cut(arg, 128 - args.len())));
    }
    errinput!("unknown command '{name}', with args beginning with: {args}")
}

impl Command {
    /// Checks the arity and parses a request (name first).
    pub fn parse(request: Vec<Bytes>) -> Result<Command> {
        let name = lower(&request[0]);
        let Some(spec) = lookup(&name) else {
            return Err(unknown_command(&request));
        };
        let argc = request.len() as i64;
        if (spec.arity > 0 && argc != spec.arity) || (spec.arity < 0 && argc < -spec.arity) {
            return Err(errinput!("wrong number of arguments for '{}' command", spec.name));
        }
        let mut rest = request.into_iter();
        rest.next();
        let args = &mut Args { name: spec.name, rest };
        Ok(match spec.name {
            "append" => Command::Append(append::Append::parse(args)?),
            "auth" => Command::Auth(auth::Auth::parse(args)?),
            "client" => Command::Client(client::Client::parse(args)?),
            "command" => Command::Command(command::CommandCmd::parse(args)?),
            "dbsize" => Command::Dbsize(dbsize::Dbsize),
            "del" => Command::Del(del::Del::parse(args)?),
            "echo" => Command::Echo(echo::Echo::parse(args)?),
            "exists" => Command::Exists(exists::Exists::parse(args)?),
            "flushall" | "flushdb" => Command::Flushall(flushall::Flushall::parse(args)?),
            "get" => Command::Get(get::Get::parse(args)?),
            "hello" => Command::Hello(hello::Hello::parse(args)?),
            "incr" | "incrby" | "decr" | "decrby" => Command::Incr(incr::Incr::parse(args)?),
            "info" => Command::Info(info::Info::parse(args)?),
            "mget" => Command::Mget(mget::Mget::parse(args)?),
            "ping" => Command::Ping(ping::Ping::parse(args)?),
            "quit" => Command::Quit(quit::Quit),
            "select" => Command::Select(select::Select::parse(args)?),
            "set" => Command::Set(set::Set::parse(args)?),
            "strlen" => Command::Strlen(strlen::Strlen::parse(args)?),
            "valthree.fault" => Command::Fault(fault::Fault::parse(args)?),
            "valthree.members" => Command::Members(members::Members::parse(args)?),
            other => unreachable!("command {other} is in the table but not dispatched"),
        })
    }

    /// Runs the command; every failure becomes an error reply.
    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Reply {
        let result = match self {
            Command::Append(c) => c.apply(ctx).await,
            Command::Auth(c) => c.apply(ctx).await,
            Command::Client(c) => c.apply(ctx).await,
            Command::Command(c) => c.apply(ctx).await,
            Command::Dbsize(c) => c.apply(ctx).await,
            Command::Del(c) => c.apply(ctx).await,
            Command::Echo(c) => c.apply(ctx).await,
            Command::Exists(c) => c.apply(ctx).await,
            Command::Flushall(c) => c.apply(ctx).await,
            Command::Get(c) => c.apply(ctx).await,
            Command::Hello(c) => c.apply(ctx).await,
            Command::Incr(c) => c.apply(ctx).await,
            Command::Info(c) => c.apply(ctx).await,
            Command::Mget(c) => c.apply(ctx).await,
            Command::Ping(c) => c.apply(ctx).await,
            Command::Quit(c) => c.apply(ctx).await,
            Command::Select(c) => c.apply(ctx).await,
            Command::Set(c) => c.apply(ctx).await,
            Command::Strlen(c) => c.apply(ctx).await,
            Command::Fault(c) => c.apply(ctx).await,
            Command::Members(c) => c.apply(ctx).await,
        };
        result.unwrap_or_else(Reply::from)
    }
}

/// The commands a connection may send before it authenticates.
pub fn allowed_without_auth(name: &[u8]) -> bool {
    lookup(&lower(name)).is_some_and(|s| s.flags.contains(&"no-auth"))
}
