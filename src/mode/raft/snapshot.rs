//! The snapshot file, `DATA/raft-snapshot.bin`: written as a stream from a copy-on-write view
//! of the state machine, read as a stream, and sent to a follower as it is on disk.
//!
//! A snapshot is as large as the data (gigabytes), so no step may hold it whole in memory or
//! keep a thread of the runtime busy for its length: the keyspace is a persistent map, so the
//! machine clones it in O(1) under its lock and lets go; the file is written from that clone
//! on a blocking thread, in frames of a few MiB, fsync'd every [`SYNC_EVERY`] bytes so the
//! kernel never has gigabytes of dirty pages to write back at once (a log append queued
//! behind them waits, and so does every heartbeat of its node). openraft sends a snapshot in
//! chunks read from the file ([`SnapshotFile`]); the receiver writes the chunks to a file of
//! its own, checks and loads it frame by frame, then renames it into place.
//!
//! **Format.** [`MAGIC`]; frames, each a length (u32, little-endian) and postcard bytes: the
//! [`Header`] (meta, sessions, the number of keys), then the keys and values in batches of
//! [`FRAME_ENTRIES`] or [`FRAME_BYTES`]; an empty frame (length 0); the CRC-32C of every byte
//! before it (u32, little-endian). A file that fails its checksum, ends early or holds more
//! or fewer keys than its header says is refused, naming it. A file of the earlier format
//! (one sealed postcard document, read whole) is still read.

use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use openraft::SnapshotMeta;
use serde::{Deserialize, Serialize};

use super::SessionId;
use super::machine::{MachineState, Session};
use super::types::{NodeId, RaftMember};
use crate::node::{File, FileSystem, codec, corrupt, crc32c_digest};
use crate::store::Keyspace;

/// The file's name in the data directory.
pub const FILE: &str = "raft-snapshot.bin";
/// The first bytes of a snapshot file of this format.
const MAGIC: &[u8; 8] = b"v3rsnap2";
/// Keys in one frame at most ...
const FRAME_ENTRIES: usize = 4096;
/// ... and about this many bytes of keys and values (a larger value is a frame alone).
const FRAME_BYTES: usize = 4 << 20;
/// Bytes written between two fsyncs of a snapshot being written.
pub const SYNC_EVERY: u64 = 64 << 20;

/// What a snapshot holds besides the keyspace.
#[derive(Serialize, Deserialize)]
struct Header {
    meta: SnapshotMeta<NodeId, RaftMember>,
    sessions: Vec<(SessionId, Session)>,
    expired: Vec<(SessionId, u64)>,
    last_sweep: u64,
    keys: u64,
}

/// The earlier format: one document, sealed by the file layer.
#[derive(Serialize, Deserialize)]
struct LegacyFile {
    meta: SnapshotMeta<NodeId, RaftMember>,
    data: Vec<u8>,
}

/// The earlier format's state machine.
#[derive(Serialize, Deserialize)]
struct LegacyBody {
    last_applied: Option<openraft::LogId<NodeId>>,
    membership: openraft::StoredMembership<NodeId, RaftMember>,
    keyspace: Keyspace,
    sessions: Vec<(SessionId, Session)>,
    expired: Vec<(SessionId, u64)>,
    last_sweep: u64,
}

impl LegacyBody {
    fn into_state(self) -> MachineState {
        MachineState {
            last_applied: self.last_applied,
            membership: self.membership,
            keyspace: self.keyspace,
            sessions: self.sessions.into_iter().collect(),
            expired: self.expired.into_iter().collect(),
            last_sweep: self.last_sweep,
        }
    }
}

/// A snapshot read back.
pub struct Loaded {
    pub meta: SnapshotMeta<NodeId, RaftMember>,
    pub state: MachineState,
}

/// A snapshot file that fails its checks: which, and why. It reads as the advice for a node
/// that finds its own snapshot damaged at start ([`corrupt`]).
#[derive(Debug)]
struct Damaged {
    path: PathBuf,
    why: String,
}

impl std::fmt::Display for Damaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&corrupt(&self.path, &self.why))
    }
}

impl std::error::Error for Damaged {}

fn invalid(path: &Path, why: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, Damaged { path: path.to_path_buf(), why: why.to_string() })
}

/// Writes into a file of the layer through a buffer, checksumming what it writes.
struct Writer<'a> {
    file: &'a File,
    buffer: Vec<u8>,
    written: u64,
    synced: u64,
    digest: crc::Digest<'static, u32, crc::Table<16>>,
}

impl<'a> Writer<'a> {
    fn new(file: &'a File) -> Self {
        Self { file, buffer: Vec::with_capacity(FRAME_BYTES * 2), written: 0, synced: 0, digest: crc32c_digest() }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.digest.update(bytes);
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= FRAME_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn frame(&mut self, body: &[u8]) -> io::Result<()> {
        let len = u32::try_from(body.len()).map_err(|_| io::Error::other("a snapshot frame over 4 GiB"))?;
        self.put(&len.to_le_bytes())?;
        self.put(body)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.write_at(self.written, &self.buffer)?;
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        if self.written - self.synced >= SYNC_EVERY {
            self.file.sync()?;
            self.synced = self.written;
        }
        Ok(())
    }

    /// Writes the end marker and the checksum, and fsyncs.
    fn finish(mut self) -> io::Result<u64> {
        self.put(&0u32.to_le_bytes())?;
        let sum = self.digest.clone().finalize();
        self.buffer.extend_from_slice(&sum.to_le_bytes());
        self.flush()?;
        self.file.sync()?;
        Ok(self.written)
    }
}

/// Writes a snapshot of `state` (a clone: the live machine goes on meanwhile) to `path`
/// atomically (a temporary file, fsync'd, renamed over it, the directory fsync'd). Returns
/// the file's size.
pub fn write(
    fs: &FileSystem,
    path: &Path,
    meta: &SnapshotMeta<NodeId, RaftMember>,
    state: &MachineState,
) -> io::Result<u64> {
    let tmp = sibling(path, "tmp");
    let file = fs.create(&tmp)?;
    let mut out = Writer::new(&file);
    out.put(MAGIC)?;
    let header = Header {
        meta: meta.clone(),
        sessions: state.sessions.iter().map(|(id, s)| (*id, s.clone())).collect(),
        expired: state.expired.iter().map(|(id, at)| (*id, *at)).collect(),
        last_sweep: state.last_sweep,
        keys: state.keyspace.len() as u64,
    };
    out.frame(&codec::encode(&header).map_err(io::Error::other)?)?;
    drop(header);
    let mut batch: Vec<(&Bytes, &Bytes)> = Vec::with_capacity(FRAME_ENTRIES);
    let mut bytes = 0;
    for (key, value) in state.keyspace.iter() {
        batch.push((key, value));
        bytes += key.len() + value.len();
        if batch.len() >= FRAME_ENTRIES || bytes >= FRAME_BYTES {
            out.frame(&codec::encode(&batch).map_err(io::Error::other)?)?;
            batch.clear();
            bytes = 0;
        }
    }
    if !batch.is_empty() {
        out.frame(&codec::encode(&batch).map_err(io::Error::other)?)?;
    }
    let size = out.finish()?;
    drop(file);
    fs.rename(&tmp, path)?;
    fs.sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    Ok(size)
}

/// A file beside `path`, `.NAME.what`: where a snapshot is written or received before it is
/// renamed into place.
pub fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path.file_name().map_or_else(|| FILE.into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.{what}"))
}

/// Reads a file of the layer from the start, checksumming what it reads.
struct Reader<'a> {
    path: &'a Path,
    file: File,
    len: u64,
    at: u64,
    digest: crc::Digest<'static, u32, crc::Table<16>>,
}

impl Reader<'_> {
    fn take(&mut self, n: u64) -> io::Result<Vec<u8>> {
        if self.len - self.at < n {
            return Err(invalid(self.path, "it ends early"));
        }
        let mut out = vec![0; n as usize];
        self.file.read_at(self.at, &mut out)?;
        self.at += n;
        self.digest.update(&out);
        Ok(out)
    }

    fn frame(&mut self) -> io::Result<Vec<u8>> {
        let len = self.take(4)?;
        let len = u32::from_le_bytes(len.try_into().expect("four bytes"));
        self.take(u64::from(len))
    }
}

/// Reads the snapshot at `path`, or `None` when there is none. With `meta_only`, reads only
/// its meta (the state is then empty): what a leader needs to offer it to a follower.
fn read_file(fs: &FileSystem, path: &Path, meta_only: bool) -> io::Result<Option<Loaded>> {
    let file = match fs.open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.len()?;
    let mut reader = Reader { path, file, len, at: 0, digest: crc32c_digest() };
    if len < MAGIC.len() as u64 || reader.take(MAGIC.len() as u64)? != MAGIC {
        drop(reader);
        return read_legacy(fs, path).map(Some);
    }
    let header: Header = codec::decode(&reader.frame()?).map_err(|e| invalid(path, e))?;
    let mut state = MachineState {
        last_applied: header.meta.last_log_id,
        membership: header.meta.last_membership.clone(),
        sessions: header.sessions.into_iter().collect(),
        expired: header.expired.into_iter().collect(),
        last_sweep: header.last_sweep,
        ..MachineState::default()
    };
    if meta_only {
        return Ok(Some(Loaded { meta: header.meta, state }));
    }
    loop {
        let frame = reader.frame()?;
        if frame.is_empty() {
            break;
        }
        let batch: Vec<(Bytes, Bytes)> = codec::decode(&frame).map_err(|e| invalid(path, e))?;
        for (key, value) in batch {
            state.keyspace.insert(key, value);
        }
    }
    let sum = reader.digest.clone().finalize();
    let stored = reader.take(4)?;
    if stored != sum.to_le_bytes() {
        return Err(invalid(path, "its checksum does not match its bytes"));
    }
    if reader.at != reader.len {
        return Err(invalid(path, format!("{} bytes follow its end", reader.len - reader.at)));
    }
    if state.keyspace.len() as u64 != header.keys {
        return Err(invalid(path, format!("it holds {} keys, its header says {}", state.keyspace.len(), header.keys)));
    }
    Ok(Some(Loaded { meta: header.meta, state }))
}

/// Reads the snapshot at `path`, or `None` when there is none.
pub fn read(fs: &FileSystem, path: &Path) -> io::Result<Option<Loaded>> {
    read_file(fs, path, false)
}

/// The meta of the snapshot at `path`, or `None` when there is none.
pub fn read_meta(fs: &FileSystem, path: &Path) -> io::Result<Option<SnapshotMeta<NodeId, RaftMember>>> {
    Ok(read_file(fs, path, true)?.map(|loaded| loaded.meta))
}

fn read_legacy(fs: &FileSystem, path: &Path) -> io::Result<Loaded> {
    let bytes = fs.read_sealed(path)?;
    let stored: LegacyFile = codec::decode(&bytes).map_err(|e| invalid(path, e))?;
    drop(bytes);
    let body: LegacyBody = codec::decode(&stored.data).map_err(|e| invalid(path, e))?;
    Ok(Loaded { meta: stored.meta, state: body.into_state() })
}

/// A snapshot as a leader of the earlier version sends it: the encoded state alone, with no
/// header or checksum (the transfer carries its meta, `meta`). Read whole: a node meets one
/// only while a cluster is upgraded from that version.
pub fn read_sent_by_earlier_version(
    fs: &FileSystem,
    path: &Path,
    meta: &SnapshotMeta<NodeId, RaftMember>,
) -> io::Result<Loaded> {
    let bytes = fs.read(path)?;
    let body: LegacyBody = codec::decode(&bytes).map_err(|e| invalid(path, e))?;
    drop(bytes);
    if body.last_applied != meta.last_log_id {
        return Err(invalid(
            path,
            format!("it covers {:?}, not {:?} as announced", body.last_applied, meta.last_log_id),
        ));
    }
    Ok(Loaded { meta: meta.clone(), state: body.into_state() })
}

/// A snapshot file as openraft reads (to send it) and writes (to receive it): positional reads
/// and writes on a file of the layer. A chunk is at most `snapshot_max_chunk_size` (1 MiB),
/// which the page cache serves in well under a millisecond, so each call runs in place.
///
/// A received file is [checked](SnapshotFile::check) — fsync'd, read back whole, its checksum
/// and its meta compared — before openraft is handed it: openraft takes a snapshot as
/// installed (its committed index, its log purge) before the state machine loads it, and
/// treats any failure of the load as fatal. So the load itself happens in the check, and the
/// install only puts in place what the check loaded.
pub struct SnapshotFile {
    file: File,
    path: PathBuf,
    fs: FileSystem,
    at: u64,
    /// What [`SnapshotFile::check`] loaded, until the install takes it.
    checked: Option<Checked>,
}

/// A received snapshot that passed its checks.
pub struct Checked {
    /// The state machine it holds.
    pub state: MachineState,
    /// Sent by a leader of the earlier version (the encoded state alone): it is written in this
    /// version's format rather than renamed into place.
    pub earlier: bool,
}

impl std::fmt::Debug for SnapshotFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotFile")
            .field("path", &self.path)
            .field("at", &self.at)
            .field("checked", &self.checked.is_some())
            .finish()
    }
}

impl SnapshotFile {
    /// Opens `path` to read it from the start.
    pub fn open(fs: &FileSystem, path: &Path) -> io::Result<Self> {
        Ok(Self { file: fs.open(path)?, path: path.to_path_buf(), fs: fs.clone(), at: 0, checked: None })
    }

    /// Creates (or truncates) `path` to write it.
    pub fn create(fs: &FileSystem, path: &Path) -> io::Result<Self> {
        Ok(Self { file: fs.create(path)?, path: path.to_path_buf(), fs: fs.clone(), at: 0, checked: None })
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes what was received durable and loads it, refusing a file that fails its checksum,
    /// ends early, or covers another log id than `meta` announces — naming what is wrong,
    /// as a fault of the transfer (the leader sends it again), not of this node's disk. Runs
    /// for as long as the snapshot is large: call it on a blocking thread.
    pub fn check(&mut self, meta: &SnapshotMeta<NodeId, RaftMember>) -> io::Result<()> {
        if self.checked.is_some() {
            return Ok(());
        }
        self.file.sync()?;
        let received = |e: io::Error| match e.get_ref().and_then(|e| e.downcast_ref::<Damaged>()) {
            Some(damaged) => io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the snapshot received ({}) is damaged: {}", damaged.path.display(), damaged.why),
            ),
            None => e,
        };
        let (loaded, earlier) = match read(&self.fs, &self.path) {
            Ok(Some(loaded)) => (loaded, false),
            Ok(None) => return Err(io::Error::new(io::ErrorKind::NotFound, "no snapshot arrived")),
            Err(e) => match read_sent_by_earlier_version(&self.fs, &self.path, meta) {
                Ok(loaded) => (loaded, true),
                Err(_) => return Err(received(e)),
            },
        };
        if loaded.meta.last_log_id != meta.last_log_id {
            return Err(received(invalid(
                &self.path,
                format!("it covers {:?}, not {:?} as announced", loaded.meta.last_log_id, meta.last_log_id),
            )));
        }
        self.checked = Some(Checked { state: loaded.state, earlier });
        Ok(())
    }

    /// What [`SnapshotFile::check`] loaded, taken out.
    pub fn take_checked(&mut self) -> Option<Checked> {
        self.checked.take()
    }
}

impl tokio::io::AsyncRead for SnapshotFile {
    fn poll_read(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut tokio::io::ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = (|| {
            let left = this.file.len()?.saturating_sub(this.at);
            let n = (buf.remaining() as u64).min(left) as usize;
            if n > 0 {
                this.file.read_at(this.at, buf.initialize_unfilled_to(n))?;
                buf.advance(n);
                this.at += n as u64;
            }
            Ok(())
        })();
        Poll::Ready(result)
    }
}

impl tokio::io::AsyncWrite for SnapshotFile {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        Poll::Ready(this.file.write_at(this.at, data).map(|()| {
            this.at += data.len() as u64;
            data.len()
        }))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl tokio::io::AsyncSeek for SnapshotFile {
    fn start_seek(self: Pin<&mut Self>, to: io::SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let at = match to {
            io::SeekFrom::Start(at) => Some(at),
            io::SeekFrom::End(delta) => this.file.len()?.checked_add_signed(delta),
            io::SeekFrom::Current(delta) => this.at.checked_add_signed(delta),
        };
        this.at = at.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state_of(keys: usize, value: usize) -> MachineState {
        let mut state = MachineState::default();
        for i in 0..keys {
            state.keyspace.insert(Bytes::from(format!("k{i:06}")), Bytes::from(vec![i as u8; value]));
        }
        state
    }

    /// The earlier version's encoded state of `state` at `index`.
    fn legacy_body(state: &MachineState, index: u64) -> LegacyBody {
        LegacyBody {
            last_applied: meta(index).last_log_id,
            membership: Default::default(),
            keyspace: state.keyspace.clone(),
            sessions: Vec::new(),
            expired: Vec::new(),
            last_sweep: 0,
        }
    }

    fn meta(index: u64) -> SnapshotMeta<NodeId, RaftMember> {
        SnapshotMeta {
            last_log_id: Some(openraft::LogId::new(openraft::CommittedLeaderId::new(1, 1), index)),
            last_membership: Default::default(),
            snapshot_id: format!("{index}"),
        }
    }

    #[test]
    fn a_snapshot_is_read_back_as_written_in_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let fs = FileSystem::real();
        // More keys than one frame holds, and values larger than a frame.
        let mut state = state_of(3 * FRAME_ENTRIES + 5, 10);
        state.keyspace.insert(Bytes::from_static(b"big"), Bytes::from(vec![7; FRAME_BYTES + 1]));
        let size = write(&fs, &path, &meta(42), &state).unwrap();
        assert_eq!(size, std::fs::metadata(&path).unwrap().len());
        assert!(!sibling(&path, "tmp").exists());
        let loaded = read(&fs, &path).unwrap().unwrap();
        assert_eq!(loaded.meta.last_log_id.unwrap().index, 42);
        assert_eq!(loaded.state.last_applied.unwrap().index, 42);
        assert!(loaded.state.keyspace.iter().eq(state.keyspace.iter()));
        assert_eq!(read_meta(&fs, &path).unwrap().unwrap().snapshot_id, "42");
        assert!(read(&fs, &dir.path().join("none")).unwrap().is_none());
    }

    #[test]
    fn a_damaged_snapshot_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let fs = FileSystem::real();
        write(&fs, &path, &meta(7), &state_of(100, 100)).unwrap();
        let good = std::fs::read(&path).unwrap();
        let mut flipped = good.clone();
        flipped[good.len() / 2] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        let e = read(&fs, &path).err().expect("a flipped byte is found");
        assert!(e.to_string().contains(FILE), "{e}");
        std::fs::write(&path, &good[..good.len() - 10]).unwrap();
        assert!(read(&fs, &path).is_err(), "a lost tail is found");
    }

    #[test]
    fn a_snapshot_of_the_earlier_format_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let fs = FileSystem::real();
        let state = state_of(10, 10);
        let body = legacy_body(&state, 9);
        let file = LegacyFile { meta: meta(9), data: codec::encode(&body).unwrap() };
        fs.write_sealed(&path, &codec::encode(&file).unwrap()).unwrap();
        let loaded = read(&fs, &path).unwrap().unwrap();
        assert_eq!(loaded.meta.last_log_id.unwrap().index, 9);
        assert!(loaded.state.keyspace.iter().eq(state.keyspace.iter()));
    }

    /// A leader of the earlier version sends the encoded state alone: not this version's
    /// format, nor the earlier file's, but installable with the meta the transfer carries.
    #[test]
    fn a_snapshot_sent_by_a_leader_of_the_earlier_version_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("incoming");
        let fs = FileSystem::real();
        let state = state_of(10, 10);
        let body = legacy_body(&state, 9);
        std::fs::write(&path, codec::encode(&body).unwrap()).unwrap();
        assert!(read(&fs, &path).is_err(), "neither format");
        let loaded = read_sent_by_earlier_version(&fs, &path, &meta(9)).unwrap();
        assert_eq!(loaded.meta.snapshot_id, "9");
        assert!(loaded.state.keyspace.iter().eq(state.keyspace.iter()));
        let e = read_sent_by_earlier_version(&fs, &path, &meta(10)).err().expect("announced otherwise");
        assert!(e.to_string().contains("not"), "{e}");
        std::fs::write(&path, b"junk").unwrap();
        assert!(read_sent_by_earlier_version(&fs, &path, &meta(9)).is_err());
    }
}
