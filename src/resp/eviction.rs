//! Client eviction: what Redis does when the clients' memory passes `maxmemory-clients`
//! (<https://redis.io/docs/latest/develop/reference/clients/#client-eviction>), here for the
//! one budget all connections' query and output buffers share.
//!
//! Without it, clients that ask for large replies and stop reading hold the budget for as
//! long as `--client-output-buffer-limit`'s soft seconds (60 by default): forty of them each
//! holding 60 MiB of unread replies left every other client's large request or reply refused
//! for a minute. Now when a request or reply cannot get its share, the connections holding
//! the most unsent output *that are not reading it* are closed, enough of them to make room,
//! and the one asking waits (at most [`EVICTION_WAIT`]) for their memory to come back.
//!
//! * A connection counts as not reading once its client has received less than
//!   [`READING_PROGRESS`] (64 KiB) of its output in [`STALLED_AFTER`] (2 s) while the
//!   connection waited to write, or less than the share of what waits that would send it
//!   all within [`DRAIN_WITHIN`] (a minute: a thirtieth of it per 2 s), whichever is more
//!   ([`progress_needed`]). Without that share, a client with a 16 KiB receive buffer
//!   reading 40 KiB/s counted as reading while it held 8.7 MB of unsent output for as long
//!   as it liked, and a few of them kept every large reply refused. What the client received is what its TCP stack acknowledged
//!   (TCP_INFO's `tcpi_bytes_acked`, beneath TLS too): a client that never reads lets its
//!   kernel take a receive buffer's worth and then nothing. Not what drains from the node's
//!   own buffer: the kernel takes that in bursts (its send buffer grows to 4 MB and wakes the
//!   writer only once a third of it is free), so a client reading 300 KiB/s drained nothing
//!   for 4.6 s at a time, and honest readers of a 12 MB reply were evicted. Acknowledgements
//!   come in bursts too (with default buffers a receiver reopens its window 93 KiB at a time
//!   on loopback): 0.73 s apart at 128 KiB/s, which leaves a loaded client a second's pause
//!   within the 2 s, so a client that reads steadily at 128 KiB/s or more, fast enough to
//!   receive what waits for it within half a minute (the same room against the minute's
//!   share), is never evicted. (A
//!   1 s window evicted readers at 64 KiB/s every time, and readers at 150 to 300 KiB/s whose
//!   process paused 0.9 s under load.) Where the platform shows no acknowledgements (not
//!   Linux), the drain of the node's buffer is all there is: 64 KiB (or the share of what
//!   waits) per [`DRAINED_STALLED_AFTER`] (250 ms), and a slow reader of a large reply can
//!   look idle.
//! * The connection asking is never its own victim, and nothing is closed when the idle
//!   writers together hold too little to make room: the request or reply is refused as before.
//! * Every eviction is counted (INFO's `evicted_clients`, as Redis names it) and logged, with
//!   what the client took in the window and by which measure.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::codec::BufferBudget;

/// How long a connection's client must have received less than [`READING_PROGRESS`] of its
/// output before it may be evicted: longer than the gaps between a slow reader's
/// acknowledgements (see the module doc).
pub const STALLED_AFTER: Duration = Duration::from_secs(2);
/// The same where only the drain of the node's buffer shows (no TCP_INFO).
pub const DRAINED_STALLED_AFTER: Duration = Duration::from_millis(250);
/// What a client must take of its output within the window to count as reading. A client
/// that never reads still lets the kernel's buffers take a trickle now and then.
pub const READING_PROGRESS: u64 = 64 << 10;
/// A client that would take longer than this to receive what waits for it, at the rate it
/// takes it, is not reading it: it holds memory it is not using.
pub const DRAIN_WITHIN: Duration = Duration::from_secs(60);
/// The longest a request or reply waits for the memory of the connections it evicted.
pub const EVICTION_WAIT: Duration = Duration::from_secs(2);

/// Every connection's unsent output, for choosing whom to evict.
#[derive(Debug, Default)]
pub struct Evictor {
    table: Mutex<HashMap<u64, Arc<Holding>>>,
    evicted: AtomicU64,
}

/// What one connection holds, as the evictor sees it.
#[derive(Debug, Default)]
pub struct Holding {
    /// Bytes of replies queued and not yet taken by the client.
    unsent: AtomicUsize,
    /// Its client has taken less than [`READING_PROGRESS`] of them for its measure's window.
    stalled: AtomicBool,
    /// What the client took in the window so far, and over how long, and what it had to
    /// take (for the log line).
    taken: AtomicU64,
    needed: AtomicU64,
    over_ms: AtomicU64,
    /// Measured by the socket's acknowledgements ([`Measure::Acknowledged`]), not the drain.
    acknowledged: AtomicBool,
    /// Cancelled when the connection is evicted: it closes at once.
    evict: CancellationToken,
}

impl Holding {
    pub fn set_unsent(&self, bytes: usize) {
        self.unsent.store(bytes, Ordering::Relaxed);
    }

    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::Relaxed);
    }

    /// What a [`ReadMeter`] saw last.
    pub fn set_reading(&self, reading: Reading) {
        self.taken.store(reading.taken, Ordering::Relaxed);
        self.needed.store(reading.needed, Ordering::Relaxed);
        self.over_ms.store(reading.over.as_millis() as u64, Ordering::Relaxed);
        self.acknowledged.store(reading.measure == Measure::Acknowledged, Ordering::Relaxed);
        self.stalled.store(reading.stalled, Ordering::Relaxed);
    }

    /// Resolves once the connection is evicted.
    pub async fn evicted(&self) {
        self.evict.cancelled().await
    }

    pub fn is_evicted(&self) -> bool {
        self.evict.is_cancelled()
    }
}

/// A connection's entry, removed when dropped.
#[derive(Debug)]
pub struct Registration {
    evictor: Arc<Evictor>,
    id: u64,
    pub holding: Arc<Holding>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        crate::node::lock(&self.evictor.table).remove(&self.id);
    }
}

impl Evictor {
    /// Enters connection `id`.
    pub fn register(self: &Arc<Self>, id: u64) -> Registration {
        let holding = Arc::new(Holding::default());
        crate::node::lock(&self.table).insert(id, holding.clone());
        Registration { evictor: self.clone(), id, holding }
    }

    /// Connections evicted since start.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Evicts the stalled connections holding the most unsent output, other than `asking`,
    /// until they hold at least `needed` bytes together. Nothing when they cannot: false.
    pub fn evict(&self, needed: usize, asking: u64) -> bool {
        // The table stays locked until the victims are cancelled, so that two requests making
        // room at once cannot both count the same victims.
        let table = crate::node::lock(&self.table);
        let mut idle: Vec<(u64, usize, Arc<Holding>)> = table
            .iter()
            .filter(|(id, h)| **id != asking && h.stalled.load(Ordering::Relaxed) && !h.is_evicted())
            .map(|(id, h)| (*id, h.unsent.load(Ordering::Relaxed), h.clone()))
            .filter(|(_, unsent, _)| *unsent > 0)
            .collect();
        idle.sort_by_key(|(_, unsent, _)| std::cmp::Reverse(*unsent));
        let mut freed = 0usize;
        let victims: Vec<_> = idle
            .into_iter()
            .take_while(|(_, unsent, _)| {
                let take = freed < needed;
                freed = freed.saturating_add(*unsent);
                take
            })
            .collect();
        if freed < needed {
            return false;
        }
        for (id, unsent, holding) in victims {
            holding.evict.cancel();
            self.evicted.fetch_add(1, Ordering::Relaxed);
            let taken = holding.taken.load(Ordering::Relaxed);
            let needed = holding.needed.load(Ordering::Relaxed);
            let over_ms = holding.over_ms.load(Ordering::Relaxed);
            if holding.acknowledged.load(Ordering::Relaxed) {
                tracing::warn!(
                    client = id,
                    unsent,
                    asking,
                    received = taken,
                    needed,
                    over_ms,
                    "client evicted: --maxmemory-clients is full and its client received {taken} bytes of its output \
                     in {over_ms} ms (acknowledged by its TCP stack; reading is, per {} ms, 64 KiB or a thirtieth \
                     of what waits, whichever is more: here {needed} bytes)",
                    STALLED_AFTER.as_millis()
                );
            } else {
                tracing::warn!(
                    client = id,
                    unsent,
                    asking,
                    drained = taken,
                    needed,
                    over_ms,
                    "client evicted: --maxmemory-clients is full and {taken} bytes of its output drained from the \
                     node's buffer into its socket in {over_ms} ms (what the client received is not known on this \
                     socket; reading is {needed} bytes per {} ms)",
                    DRAINED_STALLED_AFTER.as_millis()
                );
            }
        }
        true
    }

    /// Makes room for `bytes` more in `budget` for connection `asking`: evicts what it must
    /// and waits (at most [`EVICTION_WAIT`]) until they fit. False when they do not.
    pub async fn make_room(&self, budget: &BufferBudget, bytes: usize, asking: u64) -> bool {
        let short = budget.shortfall(bytes);
        if short == 0 {
            return true;
        }
        if budget.limit() != 0 && bytes > budget.limit() {
            return false; // it would not fit in an empty budget either
        }
        if !self.evict(short, asking) {
            return false;
        }
        let deadline = Instant::now() + EVICTION_WAIT;
        while budget.shortfall(bytes) > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

/// What a client must take of its output within `window` to count as reading, with `unsent`
/// bytes waiting for it: [`READING_PROGRESS`], or the share of them that would send them all
/// within [`DRAIN_WITHIN`] at that pace, whichever is more.
pub fn progress_needed(window: Duration, unsent: usize) -> u64 {
    let share = unsent as u128 * window.as_millis() / DRAIN_WITHIN.as_millis();
    READING_PROGRESS.max(u64::try_from(share).unwrap_or(u64::MAX))
}

/// How a connection's reading is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Bytes of its output the client's TCP stack acknowledged: what the client received.
    Acknowledged,
    /// Bytes drained from the node's buffer into the socket, where nothing better shows.
    Drained,
}

impl Measure {
    /// How long a client may take less than [`progress_needed`] by this measure and still
    /// count as reading.
    pub fn window(self) -> Duration {
        match self {
            Measure::Acknowledged => STALLED_AFTER,
            Measure::Drained => DRAINED_STALLED_AFTER,
        }
    }
}

/// What a [`ReadMeter`] saw at one look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Output waits, and the client took less than [`progress_needed`] of it for the window.
    pub stalled: bool,
    /// What it took since it last took what was needed (or since the wait began)...
    pub taken: u64,
    /// ...of what it needed to take, with what waits now...
    pub needed: u64,
    /// ...over this long.
    pub over: Duration,
    pub measure: Measure,
}

/// Whether the client of a connection waiting to write is reading, looked at now and then
/// while the write waits: by the socket's acknowledgements where it shows them, else by the
/// drain of the node's buffer.
#[derive(Debug)]
pub struct ReadMeter {
    measure: Measure,
    /// Since when the client took less than [`progress_needed`]...
    since: Instant,
    /// ...and where it stood then: bytes acknowledged, or the node's unsent bytes.
    mark: u64,
}

impl ReadMeter {
    /// Starts measuring when a write begins to wait: `acked` is what the socket's peer has
    /// acknowledged so far (`None` where that does not show), `unsent` the node's buffer.
    pub fn start(now: Instant, acked: Option<u64>, unsent: usize) -> Self {
        match acked {
            Some(acked) => ReadMeter { measure: Measure::Acknowledged, since: now, mark: acked },
            None => ReadMeter { measure: Measure::Drained, since: now, mark: unsent as u64 },
        }
    }

    /// Looks again.
    pub fn observe(&mut self, now: Instant, acked: Option<u64>, unsent: usize) -> Reading {
        let taken = match (self.measure, acked) {
            (Measure::Acknowledged, Some(acked)) => acked.checked_sub(self.mark),
            // None when the buffer grew: output was queued.
            (Measure::Drained, None) => self.mark.checked_sub(unsent as u64),
            // The socket stopped showing acknowledgements.
            _ => None,
        };
        let needed = progress_needed(self.measure.window(), unsent);
        let taken = match taken {
            Some(taken) if taken < needed => taken,
            // It reads, or its measure starts again.
            _ => {
                *self = ReadMeter::start(now, acked, unsent);
                0
            }
        };
        let over = now.saturating_duration_since(self.since);
        Reading { stalled: unsent > 0 && over >= self.measure.window(), taken, needed, over, measure: self.measure }
    }
}

/// A client connection's transport, as client eviction sees beneath it (and beneath TLS).
pub trait Acknowledged {
    /// Bytes of the connection's output the client's TCP stack has acknowledged so far, where
    /// the platform shows it.
    fn acknowledged(&self) -> Option<u64>;
}

impl Acknowledged for tokio::net::TcpStream {
    fn acknowledged(&self) -> Option<u64> {
        bytes_acked(self)
    }
}

impl<S: Acknowledged> Acknowledged for tokio_rustls::server::TlsStream<S> {
    fn acknowledged(&self) -> Option<u64> {
        self.get_ref().0.acknowledged()
    }
}

/// TCP_INFO's `tcpi_bytes_acked` (Linux 4.1 and later).
#[cfg(all(target_os = "linux", any(target_env = "gnu", target_env = "musl")))]
fn bytes_acked(socket: &tokio::net::TcpStream) -> Option<u64> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain integers, valid when zeroed.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info`, which has that many, and
    // the descriptor is open for as long as `socket` is borrowed.
    let rc = unsafe {
        libc::getsockopt(socket.as_raw_fd(), libc::IPPROTO_TCP, libc::TCP_INFO, (&raw mut info).cast(), &mut len)
    };
    // An older kernel fills less of the structure than this field's end.
    let end = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_acked) + std::mem::size_of::<u64>();
    (rc == 0 && len as usize >= end).then_some(info.tcpi_bytes_acked)
}

#[cfg(not(all(target_os = "linux", any(target_env = "gnu", target_env = "musl"))))]
fn bytes_acked(_socket: &tokio::net::TcpStream) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holding(evictor: &Arc<Evictor>, id: u64, unsent: usize, stalled: bool) -> Registration {
        let r = evictor.register(id);
        r.holding.set_unsent(unsent);
        r.holding.set_stalled(stalled);
        r
    }

    #[test]
    fn the_largest_stalled_holders_are_evicted_just_enough_and_never_a_reader_or_the_asker() {
        let evictor = Arc::new(Evictor::default());
        let small = holding(&evictor, 1, 10, true);
        let large = holding(&evictor, 2, 100, true);
        let larger = holding(&evictor, 3, 200, true);
        let reading = holding(&evictor, 4, 1000, false);
        let asker = holding(&evictor, 5, 500, true);
        assert!(!evictor.evict(400, 5), "the idle ones besides the asker hold 310");
        assert_eq!(evictor.evicted(), 0);
        assert!(evictor.evict(250, 5));
        assert!(larger.holding.is_evicted() && large.holding.is_evicted());
        assert!(!small.holding.is_evicted() && !reading.holding.is_evicted() && !asker.holding.is_evicted());
        assert_eq!(evictor.evicted(), 2);
        assert!(evictor.evict(5, 5) && small.holding.is_evicted(), "the evicted are not counted twice");
        assert_eq!(evictor.evicted(), 3);
        drop(small);
        assert_eq!(crate::node::lock(&evictor.table).len(), 4);
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_client_whose_acknowledgements_come_in_bursts_reads_and_one_whose_stop_does_not() {
        let t0 = Instant::now();
        // What loopback showed for a client reading 300 KiB/s: 93 KiB acknowledged every 0.3 s,
        // while the node's buffer (8 MB unsent) drained nothing for seconds.
        let unsent = 8 << 20;
        let mut reader = ReadMeter::start(t0, Some(0), unsent);
        let mut acked = 0;
        for step in 1..=40u32 {
            if step % 6 == 0 {
                acked += 93 << 10;
            }
            let seen = reader.observe(t0 + 50 * MS * step, Some(acked), unsent);
            assert!(!seen.stalled, "step {step}: {seen:?}");
            assert_eq!(seen.measure, Measure::Acknowledged);
        }
        // A client that never reads: its kernel takes a receive buffer's worth, then nothing.
        let unsent = 1 << 20;
        let mut idle = ReadMeter::start(t0, Some(0), unsent);
        assert!(!idle.observe(t0 + 250 * MS, Some(128 << 10), unsent).stalled);
        let seen = idle.observe(t0 + 2000 * MS, Some((128 << 10) + 100), unsent);
        assert!(!seen.stalled, "not before two seconds without 64 KiB");
        let seen = idle.observe(t0 + 2250 * MS, Some((128 << 10) + 100), unsent);
        assert_eq!(
            seen,
            Reading {
                stalled: true,
                taken: 100,
                needed: progress_needed(STALLED_AFTER, unsent),
                over: 2000 * MS,
                measure: Measure::Acknowledged
            }
        );
        // Nothing waits to be written: not stalled, whatever the client does.
        assert!(!idle.observe(t0 + 5000 * MS, Some((128 << 10) + 100), 0).stalled);
    }

    /// A trickle of acknowledgements: 40 KiB/s from a client with a 16 KiB receive buffer is
    /// more than 64 KiB per 2 s, and was reading while it held 8.7 MB. Measured against what
    /// waits, it is not; a reader of the same that would finish within a minute is.
    #[test]
    fn a_trickle_against_megabytes_waiting_is_not_reading() {
        let t0 = Instant::now();
        let unsent = 8_700_000;
        assert_eq!(progress_needed(STALLED_AFTER, unsent), unsent as u64 / 30);
        assert_eq!(progress_needed(STALLED_AFTER, 1 << 20), READING_PROGRESS, "the floor");
        let pace = |rate: u64| {
            let mut meter = ReadMeter::start(t0, Some(0), unsent);
            (1..=50u32)
                .any(|step| meter.observe(t0 + 100 * MS * step, Some(rate * u64::from(step) / 10), unsent).stalled)
        };
        assert!(pace(40 << 10), "a 40 KiB/s trickle holding 8.7 MB is stalled");
        assert!(!pace(200 << 10), "a reader that would drain 8.7 MB in 45 s reads");
        // What waits shrinks as it is read, and so does the share.
        assert!(progress_needed(STALLED_AFTER, unsent / 4) < progress_needed(STALLED_AFTER, unsent));
    }

    #[test]
    fn without_acknowledgements_the_drain_of_the_nodes_buffer_is_measured_as_before() {
        let t0 = Instant::now();
        let mut drained = ReadMeter::start(t0, None, 1 << 20);
        assert!(!drained.observe(t0 + 200 * MS, None, (1 << 20) - 1000).stalled);
        let seen = drained.observe(t0 + 250 * MS, None, (1 << 20) - 1000);
        assert_eq!(
            seen,
            Reading { stalled: true, taken: 1000, needed: READING_PROGRESS, over: 250 * MS, measure: Measure::Drained }
        );
        assert!(!drained.observe(t0 + 300 * MS, None, (1 << 20) - (70 << 10)).stalled, "64 KiB drained");
        assert!(!drained.observe(t0 + 600 * MS, None, 2 << 20).stalled, "output was queued: its wait starts again");
        assert!(drained.observe(t0 + 850 * MS, None, 2 << 20).stalled);
        // A socket that stops showing acknowledgements starts again by the drain.
        let mut socket = ReadMeter::start(t0, Some(0), 1 << 20);
        let seen = socket.observe(t0 + 3000 * MS, None, 1 << 20);
        assert_eq!(
            seen,
            Reading {
                stalled: false,
                taken: 0,
                needed: READING_PROGRESS,
                over: Duration::ZERO,
                measure: Measure::Drained
            }
        );
    }

    #[test]
    fn a_loopback_socket_shows_what_its_peer_acknowledged() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let mut client = tokio::net::TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            let before = server.acknowledged();
            if !cfg!(all(target_os = "linux", any(target_env = "gnu", target_env = "musl"))) {
                assert_eq!(before, None);
                return;
            }
            server.write_all(&[7; 100_000]).await.unwrap();
            let mut got = vec![0; 100_000];
            client.read_exact(&mut got).await.unwrap();
            let deadline = Instant::now() + Duration::from_secs(5);
            while server.acknowledged() != Some(before.unwrap() + 100_000) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(server.acknowledged(), Some(before.unwrap() + 100_000));
        });
    }
}
