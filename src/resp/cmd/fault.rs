//! `VALTHREE.FAULT token ISOLATE peer [peer ...] | REFUSE peer [peer ...] | DROP TO|FROM peer
//! [peer ...] | PACKETS name value [name value ...] PEERS peer [peer ...] | HEAL | STATUS | LINKS
//! | DISK WRITE|FSYNC EIO|ENOSPC|OFF | CLOCK BUMP ±ms | CLOCK STROBE ms-a ms-b period-ms | CLOCK
//! RESET`: the authenticated admin command behind `valthree cluster partition|packet|heal|clock`
//! and the `disk` and `clock` nemeses. It only flips the node's fault switches
//! ([`crate::node::Faults`], and the skew of its one wall clock, [`crate::node::clock`]); the
//! peer plane consults them on every call, the file layer on every write and fsync, every
//! wall-clock read the skew.
//!
//! `ISOLATE` drops messages both ways (as a real partition does), `REFUSE` refuses them at
//! once both ways (fail-fast, for tests), `DROP TO` loses this node's messages to the peers
//! and `DROP FROM` theirs to it (one-way cuts). `PACKETS` takes `DELAY ms`, `JITTER ms`,
//! `LOSS p`, `DUPLICATE p`, `REORDER p` (chances from 0 to 1) and `SEED n`. `STATUS` answers
//! the peers cut off either way, `LINKS` one line per faulty link.

use bytes::Bytes;

use super::{Args, Ctx, lower};
use crate::errinput;
use crate::error::Result;
use crate::node::{Cut, Direction, DiskError, DiskOp, Packets, clock};
use crate::resp::Reply;

#[derive(Debug)]
pub struct Fault {
    token: Bytes,
    action: Action,
}

#[derive(Debug)]
enum Action {
    /// Cut the links to the peers, in these directions, this way.
    Cut(Vec<String>, Vec<Direction>, Cut),
    Packets(Vec<String>, Packets, Option<u64>),
    Heal,
    Status,
    Links,
    /// Inject (or with `None` clear) a disk error into writes or fsyncs.
    Disk(DiskOp, Option<DiskError>),
    /// Skew the node's wall clock.
    Clock(ClockFault),
}

/// A clock fault: `BUMP ±ms` (adds to the offset), `STROBE a b period` (milliseconds), `RESET`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClockFault {
    Bump(i64),
    Strobe(i64, i64, u64),
    Reset,
}

const SYNTAX: &str = "syntax error: VALTHREE.FAULT token ISOLATE|REFUSE peer [peer ...] | DROP TO|FROM peer \
     [peer ...] | PACKETS name value [...] PEERS peer [peer ...] | HEAL | STATUS | LINKS | DISK WRITE|FSYNC \
     EIO|ENOSPC|OFF | CLOCK BUMP ms | CLOCK STROBE ms-a ms-b period-ms | CLOCK RESET";

impl ClockFault {
    fn parse(args: &mut Args) -> Result<Self> {
        let millis = |args: &mut Args, what: &str| -> Result<i64> {
            let text = String::from_utf8_lossy(&args.next_bytes()?).into_owned();
            text.strip_prefix('+')
                .unwrap_or(&text)
                .parse::<i64>()
                .map_err(|_| errinput!("VALTHREE.FAULT CLOCK: {what} must be whole milliseconds, not {text:?}"))
        };
        match lower(&args.next_bytes()?).as_str() {
            "bump" if args.remaining() == 1 => Ok(Self::Bump(millis(args, "the bump")?)),
            "strobe" if args.remaining() == 3 => {
                let (a, b) = (millis(args, "an offset")?, millis(args, "an offset")?);
                match u64::try_from(millis(args, "the period")?) {
                    Ok(period) if period > 0 => Ok(Self::Strobe(a, b, period)),
                    _ => Err(errinput!("VALTHREE.FAULT CLOCK STROBE: the period must be positive")),
                }
            }
            "reset" if args.remaining() == 0 => Ok(Self::Reset),
            _ => Err(errinput!("{SYNTAX}")),
        }
    }

    fn apply(self) -> clock::Skew {
        match self {
            Self::Bump(ms) => clock::bump(ms),
            Self::Strobe(a, b, period) => clock::strobe(a, b, std::time::Duration::from_millis(period)),
            Self::Reset => clock::reset(),
        }
    }
}

const BOTH: [Direction; 2] = [Direction::To, Direction::From];

fn peers(args: &mut Args) -> Vec<String> {
    args.rest().iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect()
}

/// `PACKETS name value [name value ...] PEERS peer [peer ...]`.
fn parse_packets(args: &mut Args) -> Result<Action> {
    let mut packets = Packets::default();
    let mut seed = None;
    loop {
        if args.remaining() == 0 {
            return Err(errinput!("VALTHREE.FAULT PACKETS: the peers follow PEERS"));
        }
        let name = lower(&args.next_bytes()?);
        if name == "peers" {
            break;
        }
        let value = String::from_utf8_lossy(&args.next_bytes()?).into_owned();
        let millis = || {
            value.parse::<u64>().map(std::time::Duration::from_millis).map_err(|_| {
                errinput!("VALTHREE.FAULT PACKETS: {} is a whole number of milliseconds", name.to_uppercase())
            })
        };
        let chance = || match value.parse::<f64>() {
            Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
            _ => Err(errinput!("VALTHREE.FAULT PACKETS: {} is a chance from 0 to 1", name.to_uppercase())),
        };
        match name.as_str() {
            "delay" => packets.delay = millis()?,
            "jitter" => packets.jitter = millis()?,
            "loss" => packets.loss = chance()?,
            "duplicate" => packets.duplicate = chance()?,
            "reorder" => packets.reorder = chance()?,
            "seed" => seed = Some(value.parse().map_err(|_| errinput!("VALTHREE.FAULT PACKETS: SEED is a number"))?),
            _ => {
                return Err(errinput!(
                    "VALTHREE.FAULT PACKETS: the faults are DELAY, JITTER, LOSS, DUPLICATE, REORDER and SEED"
                ));
            }
        }
    }
    let peers = peers(args);
    if peers.is_empty() {
        return Err(errinput!("VALTHREE.FAULT PACKETS: name at least one peer after PEERS"));
    }
    Ok(Action::Packets(peers, packets, seed))
}

impl Fault {
    pub fn parse(args: &mut Args) -> Result<Self> {
        let token = args.next_bytes()?;
        let action = match lower(&args.next_bytes()?).as_str() {
            "isolate" if args.remaining() > 0 => Action::Cut(peers(args), BOTH.to_vec(), Cut::Drop),
            "refuse" if args.remaining() > 0 => Action::Cut(peers(args), BOTH.to_vec(), Cut::Refuse),
            "drop" if args.remaining() > 1 => {
                let direction = match lower(&args.next_bytes()?).as_str() {
                    "to" => Direction::To,
                    "from" => Direction::From,
                    _ => return Err(errinput!("VALTHREE.FAULT DROP: the direction is TO or FROM")),
                };
                Action::Cut(peers(args), vec![direction], Cut::Drop)
            }
            "packets" => parse_packets(args)?,
            "heal" => Action::Heal,
            "status" => Action::Status,
            "links" => Action::Links,
            "disk" if args.remaining() == 2 => {
                let op = match lower(&args.next_bytes()?).as_str() {
                    "write" => DiskOp::Write,
                    "fsync" => DiskOp::Fsync,
                    _ => return Err(errinput!("VALTHREE.FAULT DISK: the operation is WRITE or FSYNC")),
                };
                let error = match lower(&args.next_bytes()?).as_str() {
                    "off" => None,
                    other => Some(
                        DiskError::parse(other)
                            .ok_or_else(|| errinput!("VALTHREE.FAULT DISK: the error is EIO, ENOSPC or OFF"))?,
                    ),
                };
                Action::Disk(op, error)
            }
            "clock" if args.remaining() > 0 => Action::Clock(ClockFault::parse(args)?),
            _ => return Err(errinput!("{SYNTAX}")),
        };
        args.finish()?;
        Ok(Self { token, action })
    }

    pub async fn apply(self, ctx: &mut Ctx<'_>) -> Result<Reply> {
        ctx.check_admin_token(&self.token).await?;
        let faults = &ctx.server.faults;
        match self.action {
            Action::Cut(peers, directions, how) => {
                tracing::warn!(?peers, ?directions, ?how, "fault injected: links to peers cut");
                faults.cut(peers, &directions, how);
            }
            Action::Packets(peers, packets, seed) => {
                tracing::warn!(?peers, packets = packets.describe(), "fault injected: packet faults");
                faults.set_packets(peers, packets, seed);
                return Ok(Reply::Array(faults.describe().into_iter().map(Reply::text).collect()));
            }
            Action::Links => return Ok(Reply::Array(faults.describe().into_iter().map(Reply::text).collect())),
            Action::Heal => {
                tracing::warn!("fault healed: all peers reachable");
                faults.heal();
            }
            Action::Status => {}
            Action::Disk(op, error) => {
                tracing::warn!(op = op.name(), error = error.map_or("off", DiskError::name), "disk fault injected");
                faults.fs().inject(op, error);
                return Ok(Reply::Array(faults.fs().injected().into_iter().map(Reply::text).collect()));
            }
            Action::Clock(fault) => {
                let skew = fault.apply().describe();
                tracing::warn!(skew, "clock fault injected");
                return Ok(Reply::Array(vec![Reply::text(skew)]));
            }
        }
        Ok(Reply::Array(faults.isolated().into_iter().map(Reply::text).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock(words: &[&str]) -> Result<ClockFault> {
        let rest: Vec<Bytes> = words.iter().map(|w| Bytes::copy_from_slice(w.as_bytes())).collect();
        ClockFault::parse(&mut Args::new("valthree.fault", rest.into_iter()))
    }

    #[test]
    fn clock_faults_take_signed_milliseconds_and_a_positive_period() {
        assert_eq!(clock(&["BUMP", "+60000"]).unwrap(), ClockFault::Bump(60_000));
        assert_eq!(clock(&["bump", "-5000"]).unwrap(), ClockFault::Bump(-5_000));
        assert_eq!(clock(&["STROBE", "-200", "200", "50"]).unwrap(), ClockFault::Strobe(-200, 200, 50));
        assert_eq!(clock(&["Reset"]).unwrap(), ClockFault::Reset);
        for bad in [&["BUMP", "1s"][..], &["BUMP"], &["STROBE", "1", "2", "0"], &["STROBE", "1", "2"], &["RESET", "x"]]
        {
            assert!(clock(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
