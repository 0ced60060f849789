//! The one file layer every durable byte of a node goes through: redb databases (through
//! [`FileSystem::open_database`], a custom `redb::StorageBackend`) and every plain file —
//! s3 mode's local-directory objects, raft's snapshot, their temporary files, renames and
//! directory fsyncs.
//!
//! By default the layer passes every call to the kernel: a `match` on the handle is all it
//! adds (measured in docs/benchmarks.md). With `--fault-fs lazy` (a hidden `serve` flag;
//! `valthree cluster up --fault-fs lazy` gives it to every node) it keeps, inside the
//! process, every write since a file's last fsync and every create, rename and unlink since
//! its directory's last fsync — the semantics of LazyFS (Ramos et al., VLDB 2024), in
//! process. Reads in the node see the overlay; the kernel sees only what was fsync'd. So a
//! SIGKILL of such a node loses exactly what a power cut would, and `valthree cluster
//! power-loss NODE` is a SIGKILL of a lazy node.
//!
//! The overlay, exactly:
//! * a file's content is its durable bytes (the kernel file, or — for a file whose name is
//!   not yet durable — bytes in memory) plus the 4 KiB pages written since its last fsync and
//!   its current length; `fsync` writes those pages to the durable bytes (and fsyncs them);
//! * a name (create, rename, unlink) changes the process's view at once and the kernel's at
//!   the fsync of its directory: a file whose name becomes durable then is written to a
//!   kernel temporary file with its *durable* bytes (not the unsynced tail), fsync'd and
//!   renamed into place; an unlink removes the kernel name then;
//! * directories are made durable when made ([`FileSystem::create_dir_all`] fsyncs their
//!   parents), and lock files ([`FileSystem::open_lock`]) pass through: they hold no data
//!   that must survive, only `flock`s and a note for running readers.
//!
//! The overlay is the process's own: another process sharing a directory (s3 mode's nodes
//! share the embedded object store) sees a lazy node's writes once fsync'd, like nodes
//! sharing a disk through their own write-back caches. The correct write paths fsync before
//! they release the lock that orders them, so they see each other's writes as before.
//!
//! Disk faults come through the same layer, at run time (`VALTHREE.FAULT token DISK WRITE|FSYNC
//! EIO|ENOSPC|OFF`): a write or an fsync fails with that error. Any failed write or fsync —
//! injected or real — fails the node's storage for good: every later write and fsync fails
//! too (after a failed fsync the kernel may have dropped the dirty pages, so retrying and
//! carrying on could acknowledge what is gone: fsyncgate), `VALTHREE.HEALTH` and `INFO` say
//! so, and `valthree serve` exits [`FAILURE_EXIT_DELAY`] later with status
//! [`STORAGE_FAILED_EXIT`], so that a supervisor restarts it from what is durable.
//!
//! `--unsafe-skip-fsync` (hidden, a planted bug for the checkers to catch) makes every fsync
//! asked of the layer — redb's commits, file and directory fsyncs — return at once without
//! syncing. Without `--fault-fs lazy` nothing shows (the page cache survives a SIGKILL);
//! with it, a power cut loses every write since the node started.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::lock;

/// How long a node whose storage failed keeps answering (HEALTH and INFO say why) before it
/// exits.
pub const FAILURE_EXIT_DELAY: Duration = Duration::from_secs(1);

/// The exit status of a node whose storage failed.
pub const STORAGE_FAILED_EXIT: i32 = 3;

/// A disk error to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskError {
    /// EIO: the device failed.
    Eio,
    /// ENOSPC: the disk is full.
    Enospc,
}

impl DiskError {
    fn errno(self) -> i32 {
        match self {
            DiskError::Eio => nix::libc::EIO,
            DiskError::Enospc => nix::libc::ENOSPC,
        }
    }

    /// `eio` or `enospc`.
    pub fn name(self) -> &'static str {
        match self {
            DiskError::Eio => "eio",
            DiskError::Enospc => "enospc",
        }
    }

    /// Parses `eio` or `enospc` (any case).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "eio" => Some(DiskError::Eio),
            "enospc" => Some(DiskError::Enospc),
            _ => None,
        }
    }

    fn code(error: Option<Self>) -> u8 {
        match error {
            None => 0,
            Some(DiskError::Eio) => 1,
            Some(DiskError::Enospc) => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(DiskError::Eio),
            2 => Some(DiskError::Enospc),
            _ => None,
        }
    }
}

/// What a disk fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskOp {
    /// Writes, truncations, creates, renames and unlinks.
    Write,
    /// File and directory fsyncs.
    Fsync,
}

impl DiskOp {
    /// `write` or `fsync`.
    pub fn name(self) -> &'static str {
        match self {
            DiskOp::Write => "write",
            DiskOp::Fsync => "fsync",
        }
    }
}

/// `--fault-fs`: where writes not yet fsync'd live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum FaultFs {
    /// In the kernel's page cache (pass-through): a SIGKILL loses none of them.
    #[default]
    Off,
    /// Inside the process until fsync: a SIGKILL loses what a power cut would.
    Lazy,
    /// As `lazy`, and the last unsynced write of each file is torn: a random prefix of it
    /// reaches the kernel at once, so a SIGKILL leaves that prefix behind (LazyFS's torn-op).
    #[value(name = "lazy-torn", hide = true)]
    LazyTorn,
}

impl FaultFs {
    /// `off`, `lazy` or `lazy-torn`, as the command line spells it.
    pub fn name(self) -> &'static str {
        match self {
            FaultFs::Off => "off",
            FaultFs::Lazy => "lazy",
            FaultFs::LazyTorn => "lazy-torn",
        }
    }
}

/// What the name of a kernel temporary file of the overlay has after the file's name,
/// before `PID-ID`: `.NAME.fault-fs-PID-ID`.
const MATERIALIZING: &str = ".fault-fs-";

/// True for a kernel temporary file of the overlay that no running process is writing: its
/// process is gone (a SIGKILL mid-copy), or it is of the older form `.NAME.fault-fs-ID`.
fn is_stale_temporary(name: &str) -> bool {
    let Some(tail) = name.strip_prefix('.').and_then(|n| n.rsplit_once(MATERIALIZING)).map(|(_, t)| t) else {
        return false;
    };
    let numbers: Vec<&str> = tail.split('-').collect();
    if numbers.is_empty()
        || numbers.len() > 2
        || !numbers.iter().all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    numbers.len() == 1 || !Path::new("/proc").join(numbers[0]).exists()
}

/// The trailer of a sealed file: this magic, the body's length (8 bytes, big-endian) and its
/// CRC-32C (4 bytes, big-endian).
const SEAL_MAGIC: &[u8; 8] = b"v3sealed";
const SEAL_LEN: usize = SEAL_MAGIC.len() + 8 + 4;

fn seal(body: &[u8]) -> [u8; SEAL_LEN] {
    let mut out = [0; SEAL_LEN];
    out[..8].copy_from_slice(SEAL_MAGIC);
    out[8..16].copy_from_slice(&(body.len() as u64).to_be_bytes());
    out[16..].copy_from_slice(&crc32c(body).to_be_bytes());
    out
}

/// The CRC-32C (Castagnoli) of `bytes`: the checksum of every plain file and document this
/// project writes (it finds every flipped byte and every burst of up to 32 flipped bits).
pub fn crc32c(bytes: &[u8]) -> u32 {
    CRC32C.checksum(bytes)
}

/// The CRC-32C of `parts`, one after another.
pub fn crc32c_of<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u32 {
    let mut digest = CRC32C.digest();
    parts.into_iter().for_each(|part| digest.update(part));
    digest.finalize()
}

/// A CRC-32C computed piece by piece, for a file written or read as a stream.
pub fn crc32c_digest() -> crc::Digest<'static, u32, crc::Table<16>> {
    CRC32C.digest()
}

static CRC32C: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// redb's page cache for a database, by default (redb's own default).
pub const DATABASE_CACHE: usize = 1 << 30;

/// The unit of the overlay's unsynced data.
const PAGE: u64 = 4096;

/// The file layer of one node. Cloning shares it.
#[derive(Clone, Default)]
pub struct FileSystem {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The unsynced writes and names, with `--fault-fs lazy`.
    lazy: Option<Mutex<Overlay>>,
    /// `--unsafe-skip-fsync`.
    skip_fsync: bool,
    /// The error injected into writes, and into fsyncs (`DiskError::code`).
    inject_write: AtomicU8,
    inject_fsync: AtomicU8,
    /// The first storage error: every later write and fsync fails with it.
    failed: OnceLock<String>,
    /// Exit the process after a storage failure (`valthree serve`).
    exit_on_failure: AtomicBool,
}

impl fmt::Debug for FileSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSystem")
            .field("lazy", &self.inner.lazy.is_some())
            .field("skip_fsync", &self.inner.skip_fsync)
            .finish()
    }
}

/// Which file a path names, as far as a reader can tell: a rename makes a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileIdentity {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i128,
    pub ctime_ns: i128,
}

impl FileIdentity {
    fn of(meta: &std::fs::Metadata) -> Self {
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: ns(meta.mtime(), meta.mtime_nsec()),
            ctime_ns: ns(meta.ctime(), meta.ctime_nsec()),
        }
    }
}

impl FileSystem {
    /// The pass-through layer: every call goes to the kernel.
    pub fn real() -> Self {
        Self::default()
    }

    /// The layer `--fault-fs` and `--unsafe-skip-fsync` ask for.
    pub fn new(fault: FaultFs, skip_fsync: bool) -> Self {
        let lazy = (fault != FaultFs::Off).then(|| {
            let torn = (fault == FaultFs::LazyTorn).then(fastrand::Rng::new);
            Mutex::new(Overlay { torn, ..Overlay::default() })
        });
        Self { inner: Arc::new(Inner { lazy, skip_fsync, ..Inner::default() }) }
    }

    /// Makes a storage failure stop the process [`FAILURE_EXIT_DELAY`] later (`valthree
    /// serve` asks for it); otherwise the layer only refuses every later write.
    pub fn exit_on_failure(&self) {
        self.inner.exit_on_failure.store(true, Ordering::Relaxed);
    }

    /// Injects `error` into every later `op` (`None`: clears it).
    pub fn inject(&self, op: DiskOp, error: Option<DiskError>) {
        let slot = match op {
            DiskOp::Write => &self.inner.inject_write,
            DiskOp::Fsync => &self.inner.inject_fsync,
        };
        slot.store(DiskError::code(error), Ordering::Relaxed);
    }

    /// The faults injected now, as `write eio`, `fsync enospc`.
    pub fn injected(&self) -> Vec<String> {
        [(DiskOp::Write, &self.inner.inject_write), (DiskOp::Fsync, &self.inner.inject_fsync)]
            .into_iter()
            .filter_map(|(op, slot)| {
                DiskError::from_code(slot.load(Ordering::Relaxed)).map(|e| format!("{} {}", op.name(), e.name()))
            })
            .collect()
    }

    /// Why the node's storage failed, once it has.
    pub fn failure(&self) -> Option<&str> {
        self.inner.failed.get().map(String::as_str)
    }

    /// Runs the `op` `f`: refused once the storage has failed or while a fault is injected;
    /// a failure of `f` (other than a name not found) fails the storage.
    fn guard<T>(&self, op: DiskOp, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        if let Some(why) = self.inner.failed.get() {
            return Err(io::Error::other(format!("the node's storage failed earlier ({why})")));
        }
        let injected = match op {
            DiskOp::Write => &self.inner.inject_write,
            DiskOp::Fsync => &self.inner.inject_fsync,
        };
        let result = match DiskError::from_code(injected.load(Ordering::Relaxed)) {
            Some(error) => Err(io::Error::from_raw_os_error(error.errno())),
            None => f(),
        };
        result.inspect_err(|e| self.fail(op, e))
    }

    /// Records the first storage failure; with `exit_on_failure`, stops the process soon.
    fn fail(&self, op: DiskOp, e: &io::Error) {
        if e.kind() == io::ErrorKind::NotFound {
            // An answer (unlink or rename of a name that is not there), not a failing disk.
            return;
        }
        let why = format!("{} failed: {e}", op.name());
        if self.inner.failed.set(why.clone()).is_err() {
            return;
        }
        if !self.inner.exit_on_failure.load(Ordering::Relaxed) {
            tracing::error!("storage failed ({why}): every later write is refused");
            return;
        }
        tracing::error!(
            "storage failed ({why}): every later write is refused, and the node exits in {FAILURE_EXIT_DELAY:?} \
             (status {STORAGE_FAILED_EXIT}) so that it restarts from what is durable"
        );
        let spawned = std::thread::Builder::new().name("storage-failed".into()).spawn(|| {
            std::thread::sleep(FAILURE_EXIT_DELAY);
            std::process::exit(STORAGE_FAILED_EXIT);
        });
        if spawned.is_err() {
            std::process::exit(STORAGE_FAILED_EXIT);
        }
    }

    /// True with `--fault-fs lazy` (or `lazy-torn`).
    pub fn is_lazy(&self) -> bool {
        self.inner.lazy.is_some()
    }

    fn overlay(&self) -> Option<std::sync::MutexGuard<'_, Overlay>> {
        self.inner.lazy.as_ref().map(lock)
    }

    /// Creates `dir` and its missing parents, each made durable (its parent fsync'd).
    pub fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut missing = Vec::new();
        let mut at = Some(dir);
        while let Some(d) = at.filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
            missing.push(d.to_path_buf());
            at = d.parent();
        }
        std::fs::create_dir_all(dir)?;
        for made in missing.iter().rev() {
            if let Some(parent) = made.parent().filter(|p| !p.as_os_str().is_empty()) {
                self.sync_kernel_dir(parent)?;
            }
        }
        self.remove_stale_temporaries(dir)
    }

    /// Removes what a lazy node killed while copying a file into the kernel left in `dir`
    /// (`.NAME.fault-fs-PID-ID`, never renamed into place, so no name reaches it).
    fn remove_stale_temporaries(&self, dir: &Path) -> io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_name().to_str().is_some_and(is_stale_temporary) {
                match std::fs::remove_file(entry.path()) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => tracing::info!("removed {}, left by a node that stopped mid-copy", entry.path().display()),
                }
            }
        }
        Ok(())
    }

    /// Opens (creating if missing) a lock file. Lock files pass through to the kernel in every
    /// mode of the layer: they carry `flock`s between processes and notes for running
    /// readers, nothing that must survive a crash.
    pub fn open_lock(&self, path: &Path) -> io::Result<std::fs::File> {
        std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(path)
    }

    /// Creates `path` empty, or truncates it (the name is durable at its directory's fsync).
    pub fn create(&self, path: &Path) -> io::Result<File> {
        let handle = self.guard(DiskOp::Write, || match self.overlay() {
            None => Ok(Handle::Real(std::fs::File::create(path)?)),
            Some(mut overlay) => Ok(Handle::Lazy(overlay.create(path)?)),
        })?;
        Ok(File { fs: self.clone(), handle })
    }

    /// Opens the existing file `path` for reading and writing.
    pub fn open(&self, path: &Path) -> io::Result<File> {
        let handle = match self.overlay() {
            None => Handle::Real(std::fs::OpenOptions::new().read(true).write(true).open(path)?),
            Some(mut overlay) => Handle::Lazy(overlay.open(path)?),
        };
        Ok(File { fs: self.clone(), handle })
    }

    /// The whole content of `path`.
    pub fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self.overlay() {
            None => std::fs::read(path),
            Some(overlay) => overlay.read(path),
        }
    }

    /// True when `path` names a file (or directory).
    pub fn exists(&self, path: &Path) -> bool {
        match self.overlay() {
            None => path.exists(),
            Some(overlay) => overlay.exists(path),
        }
    }

    /// Which file `path` names now.
    pub fn identity(&self, path: &Path) -> io::Result<FileIdentity> {
        match self.overlay() {
            None => std::fs::metadata(path).map(|m| FileIdentity::of(&m)),
            Some(overlay) => overlay.identity(path),
        }
    }

    /// Renames `from` to `to`, replacing `to` (durable at both directories' fsyncs).
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.guard(DiskOp::Write, || match self.overlay() {
            None => std::fs::rename(from, to),
            Some(mut overlay) => overlay.rename(from, to),
        })
    }

    /// Removes the name `path` (durable at its directory's fsync).
    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.guard(DiskOp::Write, || match self.overlay() {
            None => std::fs::remove_file(path),
            Some(mut overlay) => overlay.remove(path),
        })
    }

    /// fsyncs the directory `dir`: every create, rename and unlink in it so far is durable.
    pub fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        if self.inner.skip_fsync {
            return Ok(());
        }
        self.guard(DiskOp::Fsync, || {
            if let Some(mut overlay) = self.overlay() {
                overlay.apply_names(dir)?;
            }
            self.sync_kernel_dir(dir)
        })
    }

    fn sync_kernel_dir(&self, dir: &Path) -> io::Result<()> {
        if self.inner.skip_fsync {
            return Ok(());
        }
        std::fs::File::open(dir)?.sync_all()
    }

    /// Writes `bytes` to `path` so that a crash leaves the old content or the new, never a
    /// mix: a temporary file beside it, fsync'd, renamed over it, the directory fsync'd.
    pub fn write_atomically(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let name = path.file_name().ok_or_else(|| io::Error::other(format!("{}: not a file", path.display())))?;
        let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
        let file = self.create(&tmp)?;
        file.write_at(0, bytes)?;
        file.sync()?;
        drop(file);
        self.rename(&tmp, path)?;
        self.sync_dir(path.parent().unwrap_or(Path::new(".")))
    }

    /// [`FileSystem::write_atomically`] with a checksum: `bytes`, then a trailer that
    /// [`FileSystem::read_sealed`] checks, so a flipped byte or a lost tail is found.
    pub fn write_sealed(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut sealed = Vec::with_capacity(bytes.len() + SEAL_LEN);
        sealed.extend_from_slice(bytes);
        sealed.extend_from_slice(&seal(bytes));
        self.write_atomically(path, &sealed)
    }

    /// The content of a file [`FileSystem::write_sealed`] wrote, checked: a file whose trailer
    /// does not match its bytes is an `InvalidData` error naming it. A file without a
    /// trailer (written by an older release) is returned whole, for its decoder to judge.
    pub fn read_sealed(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut bytes = self.read(path)?;
        let Some(body_len) = bytes.len().checked_sub(SEAL_LEN) else { return Ok(bytes) };
        if !bytes[body_len..].starts_with(SEAL_MAGIC) {
            return Ok(bytes);
        }
        if bytes[body_len..] != seal(&bytes[..body_len]) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                corrupt(path, &"its checksum does not match its bytes"),
            ));
        }
        bytes.truncate(body_len);
        Ok(bytes)
    }

    /// Opens (or creates) the redb database `path` on this layer. A new database file's name
    /// is made durable before redb writes to it.
    ///
    /// Every page's checksum is checked first (redb checks them only after a crash): a
    /// database with a flipped byte or a lost tail is refused, naming the file, so that a
    /// node never serves what its disk corrupted. A database redb repaired on the check (its
    /// free-page map, or its last commit when that failed its checksums) is served, with an
    /// ERROR line: redb does not say which it was. A `.corrupt` note beside the file (left by
    /// an older version of this check) still refuses it: rebuild the node.
    pub fn open_database(&self, path: &Path) -> Result<redb::Database, String> {
        self.open_database_cached(path, DATABASE_CACHE)
    }

    /// [`FileSystem::open_database`] with redb's page cache at most `cache` bytes (a log
    /// written once and read back soon needs little; redb's default is 1 GiB).
    pub fn open_database_cached(&self, path: &Path, cache: usize) -> Result<redb::Database, String> {
        let failed = |e: &dyn fmt::Display| format!("cannot open {}: {e}", path.display());
        let note = path.with_extension("corrupt");
        if self.exists(&note) {
            return Err(corrupt(path, &"an earlier start found it corrupt (see the note beside it)"));
        }
        if !self.exists(path) {
            let file = self.create(path).map_err(|e| failed(&e))?;
            file.sync().map_err(|e| failed(&e))?;
            drop(file);
            self.sync_dir(path.parent().unwrap_or(Path::new("."))).map_err(|e| failed(&e))?;
        }
        let file = self.open(path).map_err(|e| failed(&e))?;
        file.try_lock().map_err(|e| failed(&e))?;
        // redb asserts on some damage (a file shorter than its header says): a refusal too.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            redb::Builder::new().set_cache_size(cache).create_with_backend(DatabaseFile(file))
        }));
        let mut db = match opened {
            Ok(Ok(db)) => db,
            Ok(Err(e)) if is_corruption(&e) => return Err(corrupt(path, &e)),
            Ok(Err(e)) => return Err(failed(&e)),
            Err(panic) => return Err(corrupt(path, &format!("redb could not read it: {}", panic_text(&*panic)))),
        };
        let started = std::time::Instant::now();
        let checked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| db.check_integrity()));
        match checked {
            Ok(Ok(true)) => {
                let bytes = self.open(path).and_then(|f| f.len()).unwrap_or(0);
                tracing::info!(
                    path = %path.display(),
                    "checked every page of {:.1} MB in {:.2}s",
                    bytes as f64 / 1e6,
                    started.elapsed().as_secs_f64()
                );
                Ok(db)
            }
            Ok(Ok(false)) => {
                // redb rebuilt something: its free-page map (benign: redb's own reopen after a
                // clean close can differ from what a full walk finds, seen after a large
                // rewrite by `paxos-compact-ballots`), or its last commit, when that failed
                // its checksums (a rollback, which may lose a write this node acknowledged).
                // redb does not say which, so the node serves on, and says so loudly.
                tracing::error!(
                    path = %path.display(),
                    "redb repaired this database when it was checked at start: its free-page map, or \
                     its last commit if that failed its checksums (then writes acknowledged in that \
                     commit may be lost); compare it with its peers"
                );
                Ok(db)
            }
            failed_check => {
                // redb cannot close a database whose check failed (its drop would commit over
                // pages it knows are bad, and asserts instead): the process that refuses to
                // start lets it go unclosed.
                std::mem::forget(db);
                match failed_check {
                    Ok(Err(e)) if is_corruption(&e) => Err(corrupt(path, &e)),
                    Ok(Err(e)) => Err(failed(&e)),
                    Err(panic) => Err(corrupt(path, &format!("redb could not check it: {}", panic_text(&*panic)))),
                    Ok(Ok(_)) => unreachable!("matched above"),
                }
            }
        }
    }

    /// Drops every unsynced write and name, as a power cut would (the kernel keeps what was
    /// fsync'd). For tests in one process; `cluster power-loss` does it with a SIGKILL.
    /// Open handles of lazy files fail from then on.
    pub fn lose_unsynced(&self) {
        if let Some(mut overlay) = self.overlay() {
            let torn = overlay.torn.take();
            *overlay = Overlay { torn, ..Overlay::default() };
        }
    }
}

/// An open file of the layer.
pub struct File {
    fs: FileSystem,
    handle: Handle,
}

enum Handle {
    Real(std::fs::File),
    /// A node of the overlay.
    Lazy(u64),
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.handle {
            Handle::Real(file) => f.debug_tuple("File").field(file).finish(),
            Handle::Lazy(id) => f.debug_tuple("LazyFile").field(id).finish(),
        }
    }
}

impl Drop for File {
    fn drop(&mut self) {
        if let (Handle::Lazy(id), Some(mut overlay)) = (&self.handle, self.fs.overlay()) {
            overlay.release(*id);
        }
    }
}

impl File {
    /// Runs `f` on this file's overlay node.
    fn node<T>(&self, id: u64, f: impl FnOnce(&mut Node) -> io::Result<T>) -> io::Result<T> {
        let mut overlay = self.fs.overlay().expect("a lazy handle comes from a lazy layer");
        let node = overlay.nodes.get_mut(&id).ok_or_else(lost)?;
        f(node)
    }

    /// The file's length.
    pub fn len(&self) -> io::Result<u64> {
        match &self.handle {
            Handle::Real(file) => Ok(file.metadata()?.len()),
            Handle::Lazy(id) => self.node(*id, |n| Ok(n.len)),
        }
    }

    /// True when the file is empty.
    pub fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// Fills `out` from `offset`; past the end is an error.
    pub fn read_at(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        match &self.handle {
            Handle::Real(file) => file.read_exact_at(out, offset),
            Handle::Lazy(id) => self.node(*id, |n| n.read(offset, out)),
        }
    }

    /// Writes all of `data` at `offset`.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.fs.guard(DiskOp::Write, || match &self.handle {
            Handle::Real(file) => file.write_all_at(data, offset),
            Handle::Lazy(id) => {
                let mut overlay = self.fs.overlay().expect("a lazy handle comes from a lazy layer");
                let Overlay { nodes, torn, .. } = &mut *overlay;
                let node = nodes.get_mut(id).ok_or_else(lost)?;
                let Some(rng) = torn else { return node.write(offset, data) };
                node.mend()?;
                node.write(offset, data)?;
                node.tear(offset, data, rng)
            }
        })
    }

    /// Truncates or extends (with zeros) the file to `len` bytes.
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        self.fs.guard(DiskOp::Write, || match &self.handle {
            Handle::Real(file) => file.set_len(len),
            Handle::Lazy(id) => self.node(*id, |n| {
                n.mend()?;
                n.set_len(len);
                Ok(())
            }),
        })
    }

    /// fsync (of the data: `fdatasync`): every write so far is durable.
    pub fn sync(&self) -> io::Result<()> {
        if self.fs.inner.skip_fsync {
            return Ok(());
        }
        self.fs.guard(DiskOp::Fsync, || match &self.handle {
            Handle::Real(file) => file.sync_data(),
            Handle::Lazy(id) => self.node(*id, Node::flush),
        })
    }

    /// Takes the file's exclusive `flock` without waiting (a redb database is opened by one
    /// process at a time). A lazy file not yet in the kernel has nothing to lock.
    fn try_lock(&self) -> io::Result<()> {
        let result = match &self.handle {
            Handle::Real(file) => file.try_lock(),
            Handle::Lazy(id) => {
                return self.node(*id, |n| match &n.backing {
                    Backing::Kernel(file) => file.try_lock().map_err(locked),
                    Backing::Memory(_) => Ok(()),
                });
            }
        };
        result.map_err(locked)
    }
}

fn locked(e: std::fs::TryLockError) -> io::Error {
    match e {
        std::fs::TryLockError::WouldBlock => io::Error::other("the database is open in another process"),
        std::fs::TryLockError::Error(e) => e,
    }
}

/// The error of a handle whose unsynced state a simulated power cut dropped.
fn lost() -> io::Error {
    io::Error::other("the file's unsynced state was lost (simulated power cut)")
}

/// A redb database on the layer.
#[derive(Debug)]
struct DatabaseFile(File);

impl redb::StorageBackend for DatabaseFile {
    fn len(&self) -> io::Result<u64> {
        self.0.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        self.0.read_at(offset, out)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.write_at(offset, data)
    }
}

/// What `--fault-fs lazy` keeps in the process.
#[derive(Default)]
struct Overlay {
    /// Names whose meaning differs from the kernel's, or whose file is open: the file now
    /// behind the name, or `None` for a name removed here and not yet in the kernel.
    names: HashMap<PathBuf, Option<u64>>,
    nodes: HashMap<u64, Node>,
    next_id: u64,
    /// With `--fault-fs lazy-torn`: where each torn write is cut.
    torn: Option<fastrand::Rng>,
}

/// A file of the overlay.
struct Node {
    /// Its durable bytes.
    backing: Backing,
    /// The kernel name that durably reaches `backing` (a kernel file), if any.
    durable_name: Option<PathBuf>,
    /// The name it has in this process, if any.
    name: Option<PathBuf>,
    /// The length of the durable bytes.
    durable_len: u64,
    /// How much of the durable bytes reads through: less than `durable_len` after a
    /// truncation not yet synced.
    through: u64,
    /// Pages written since the last fsync (each `PAGE` bytes; past `len` they hold zeros).
    pages: BTreeMap<u64, Box<[u8]>>,
    /// The current length.
    len: u64,
    /// Counts changes: what a reader's identity check sees as the modification time.
    version: u64,
    /// Open handles.
    handles: usize,
    /// The torn prefix of the last unsynced write, in the kernel file now (`lazy-torn`).
    torn: Option<Torn>,
}

/// A prefix of an unsynced write put into the kernel file, and what it replaced there.
struct Torn {
    offset: u64,
    /// The kernel file's bytes the prefix overwrote.
    replaced: Vec<u8>,
    /// The kernel file's length before.
    kernel_len: u64,
}

enum Backing {
    Kernel(std::fs::File),
    /// The durable bytes of a file no durable name reaches yet: a power cut loses them with
    /// the name, so they need no kernel file until the name is durable.
    Memory(Vec<u8>),
}

impl Node {
    fn in_memory(name: &Path) -> Self {
        Self::new(Backing::Memory(Vec::new()), 0, None, name)
    }

    fn new(backing: Backing, len: u64, durable_name: Option<PathBuf>, name: &Path) -> Self {
        Self {
            backing,
            durable_name,
            name: Some(name.to_path_buf()),
            durable_len: len,
            through: len,
            pages: BTreeMap::new(),
            len,
            version: 0,
            handles: 0,
            torn: None,
        }
    }

    /// True when the kernel holds all of it under `name`.
    fn is_clean(&self) -> bool {
        self.pages.is_empty()
            && self.through == self.durable_len
            && self.len == self.durable_len
            && self.durable_name.is_some()
            && self.durable_name == self.name
    }

    /// Reads durable bytes (all below `through`).
    fn read_durable(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        if out.is_empty() {
            return Ok(());
        }
        match &self.backing {
            Backing::Kernel(file) => file.read_exact_at(out, offset),
            Backing::Memory(bytes) => {
                let start = offset as usize;
                out.copy_from_slice(&bytes[start..start + out.len()]);
                Ok(())
            }
        }
    }

    /// Fills `out` with the bytes of page `index` from `skip` on, as they are now.
    fn read_page(&self, index: u64, skip: usize, out: &mut [u8]) -> io::Result<()> {
        if let Some(page) = self.pages.get(&index) {
            out.copy_from_slice(&page[skip..skip + out.len()]);
            return Ok(());
        }
        let start = index * PAGE + skip as u64;
        let durable = self.through.saturating_sub(start).min(out.len() as u64) as usize;
        self.read_durable(start, &mut out[..durable])?;
        out[durable..].fill(0);
        Ok(())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let end = offset.checked_add(out.len() as u64).filter(|end| *end <= self.len);
        if end.is_none() {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the file"));
        }
        let mut done = 0;
        while done < out.len() {
            let at = offset + done as u64;
            let skip = (at % PAGE) as usize;
            let n = (PAGE as usize - skip).min(out.len() - done);
            self.read_page(at / PAGE, skip, &mut out[done..done + n])?;
            done += n;
        }
        Ok(())
    }

    fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut done = 0;
        while done < data.len() {
            let at = offset + done as u64;
            let (index, skip) = (at / PAGE, (at % PAGE) as usize);
            let n = (PAGE as usize - skip).min(data.len() - done);
            if !self.pages.contains_key(&index) {
                let mut page = vec![0; PAGE as usize].into_boxed_slice();
                if index * PAGE < self.len {
                    self.read_page(index, 0, &mut page)?;
                }
                self.pages.insert(index, page);
            }
            let page = self.pages.get_mut(&index).expect("inserted above");
            page[skip..skip + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        self.len = self.len.max(offset + data.len() as u64);
        self.version += 1;
        Ok(())
    }

    fn set_len(&mut self, len: u64) {
        if len < self.len {
            let first_gone = len.div_ceil(PAGE);
            self.pages.retain(|index, _| *index < first_gone);
            if let Some(page) = self.pages.get_mut(&(len / PAGE)) {
                page[(len % PAGE) as usize..].fill(0);
            }
            self.through = self.through.min(len);
        }
        self.len = len;
        self.version += 1;
    }

    /// `lazy-torn`: puts a random prefix of the write of `data` at `offset` (just made, not
    /// yet synced) into the kernel file, after taking back the previous torn prefix — so the
    /// kernel holds the durable bytes plus a prefix of the file's last unsynced write, which
    /// is what a power cut now would leave. A file whose name is not durable has nothing a
    /// power cut could leave, so nothing is torn.
    fn tear(&mut self, offset: u64, data: &[u8], rng: &mut fastrand::Rng) -> io::Result<()> {
        self.mend()?;
        let Backing::Kernel(file) = &self.backing else { return Ok(()) };
        let kept = rng.usize(0..=data.len());
        if kept == 0 {
            return Ok(());
        }
        let kernel_len = file.metadata()?.len();
        let mut replaced = vec![0; kernel_len.saturating_sub(offset).min(kept as u64) as usize];
        file.read_exact_at(&mut replaced, offset)?;
        file.write_all_at(&data[..kept], offset)?;
        self.torn = Some(Torn { offset, replaced, kernel_len });
        Ok(())
    }

    /// Takes the torn prefix back out of the kernel file: before anything else reads or
    /// writes the durable bytes.
    fn mend(&mut self) -> io::Result<()> {
        let (Some(torn), Backing::Kernel(file)) = (self.torn.take(), &self.backing) else { return Ok(()) };
        file.write_all_at(&torn.replaced, torn.offset)?;
        if file.metadata()?.len() > torn.kernel_len {
            file.set_len(torn.kernel_len)?;
        }
        Ok(())
    }

    /// fsync: the pages and length become the durable bytes.
    fn flush(&mut self) -> io::Result<()> {
        self.mend()?;
        match &mut self.backing {
            Backing::Kernel(file) => {
                if self.through < self.durable_len {
                    file.set_len(self.through)?;
                }
                for (index, page) in &self.pages {
                    let start = index * PAGE;
                    let n = self.len.saturating_sub(start).min(PAGE) as usize;
                    file.write_all_at(&page[..n], start)?;
                }
                file.set_len(self.len)?;
                file.sync_data()?;
            }
            Backing::Memory(bytes) => {
                bytes.truncate(self.through as usize);
                bytes.resize(self.len as usize, 0);
                for (index, page) in &self.pages {
                    let start = (index * PAGE) as usize;
                    let n = (self.len as usize).saturating_sub(start).min(PAGE as usize);
                    bytes[start..start + n].copy_from_slice(&page[..n]);
                }
            }
        }
        self.pages.clear();
        self.durable_len = self.len;
        self.through = self.len;
        Ok(())
    }

    /// The durable bytes.
    fn durable_bytes(&self) -> io::Result<Vec<u8>> {
        let mut bytes = vec![0; self.durable_len as usize];
        self.read_durable(0, &mut bytes)?;
        Ok(bytes)
    }

    /// The bytes as they are now.
    fn current_bytes(&self) -> io::Result<Vec<u8>> {
        let mut bytes = vec![0; self.len as usize];
        self.read(0, &mut bytes)?;
        Ok(bytes)
    }
}

/// True for an error of redb's that says the file is damaged: a checksum or a structure that
/// does not hold, or a read past the end of a file cut short.
fn is_corruption(e: &redb::DatabaseError) -> bool {
    match e {
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(_)) => true,
        redb::DatabaseError::Storage(redb::StorageError::Io(e)) => e.kind() == io::ErrorKind::UnexpectedEof,
        _ => false,
    }
}

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(text), _) => (*text).to_string(),
        (_, Some(text)) => text.clone(),
        _ => "a panic".to_string(),
    }
}

/// Why a node refuses a corrupt file (a database, a snapshot): what to say when it will not
/// start. The advice is to replace the node, never to empty or roll back its files and start
/// it under its old name: its peers count on everything it promised and stored (a paxos
/// acceptor that forgot its promises lets two values be chosen; a raft voter that forgot its
/// vote votes twice), so that would lose acknowledged writes.
pub fn corrupt(path: &Path, why: &dyn fmt::Display) -> String {
    format!(
        "{} is corrupt ({why}): refusing to start rather than serve wrong data. Replace this node: remove it \
         from the cluster (`valthree cluster remove-node`, or VALTHREE.MEMBERS on a deployed cluster) and add a \
         new node with an empty data directory (`valthree cluster add-node`); its peers hold the data. Do not start \
         it again under its old name with this file emptied or put back from an older copy: its peers count on \
         what it promised, and acknowledged writes would be lost. A single-node database is rebuilt with \
         `valthree restore` from a backup",
        path.display()
    )
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file", path.display()))
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

impl Overlay {
    fn add(&mut self, node: Node) -> u64 {
        self.next_id += 1;
        self.nodes.insert(self.next_id, node);
        self.next_id
    }

    /// The node now named `path`, opened from the kernel when the overlay does not know the
    /// name; `None` when nothing is named so.
    fn lookup(&mut self, path: &Path) -> io::Result<Option<u64>> {
        match self.names.get(path) {
            Some(known) => Ok(*known),
            None => {
                let file = match std::fs::OpenOptions::new().read(true).write(true).open(path) {
                    Ok(file) => file,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e),
                };
                let len = file.metadata()?.len();
                let id = self.add(Node::new(Backing::Kernel(file), len, Some(path.to_path_buf()), path));
                self.names.insert(path.to_path_buf(), Some(id));
                Ok(Some(id))
            }
        }
    }

    fn open(&mut self, path: &Path) -> io::Result<u64> {
        let id = self.lookup(path)?.ok_or_else(|| not_found(path))?;
        self.nodes.get_mut(&id).expect("named nodes exist").handles += 1;
        Ok(id)
    }

    fn create(&mut self, path: &Path) -> io::Result<u64> {
        let id = match self.lookup(path)? {
            Some(id) => {
                self.nodes.get_mut(&id).expect("named nodes exist").set_len(0);
                id
            }
            None => {
                let id = self.add(Node::in_memory(path));
                self.names.insert(path.to_path_buf(), Some(id));
                id
            }
        };
        self.nodes.get_mut(&id).expect("just made").handles += 1;
        Ok(id)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self.names.get(path) {
            Some(Some(id)) => self.nodes[id].current_bytes(),
            Some(None) => Err(not_found(path)),
            None => std::fs::read(path),
        }
    }

    fn exists(&self, path: &Path) -> bool {
        match self.names.get(path) {
            Some(known) => known.is_some(),
            None => path.exists(),
        }
    }

    fn identity(&self, path: &Path) -> io::Result<FileIdentity> {
        match self.names.get(path) {
            Some(Some(id)) => {
                let node = &self.nodes[id];
                // Not a kernel identity: its own device number, the node's id, its version.
                Ok(FileIdentity {
                    dev: u64::MAX,
                    ino: *id,
                    size: node.len,
                    mtime_ns: i128::from(node.version),
                    ctime_ns: 0,
                })
            }
            Some(None) => Err(not_found(path)),
            None => std::fs::metadata(path).map(|m| FileIdentity::of(&m)),
        }
    }

    /// Takes the name `path` from whatever file has it.
    fn unname(&mut self, path: &Path) {
        if let Some(Some(old)) = self.names.get(path).copied() {
            let node = self.nodes.get_mut(&old).expect("named nodes exist");
            node.name = None;
            if node.handles == 0 {
                self.nodes.remove(&old);
            }
        }
    }

    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        let id = self.lookup(from)?.ok_or_else(|| not_found(from))?;
        if from == to {
            return Ok(());
        }
        self.unname(to);
        self.nodes.get_mut(&id).expect("named nodes exist").name = Some(to.to_path_buf());
        self.names.insert(to.to_path_buf(), Some(id));
        self.names.insert(from.to_path_buf(), None);
        Ok(())
    }

    fn remove(&mut self, path: &Path) -> io::Result<()> {
        if !self.exists(path) {
            return Err(not_found(path));
        }
        self.unname(path);
        self.names.insert(path.to_path_buf(), None);
        Ok(())
    }

    fn release(&mut self, id: u64) {
        let Some(node) = self.nodes.get_mut(&id) else { return };
        node.handles = node.handles.saturating_sub(1);
        if node.handles == 0 && (node.is_clean() || node.name.is_none()) {
            // Clean: the kernel has it all; unnamed: nothing can reach it any more.
            if let Some(name) = node.name.take() {
                self.names.remove(&name);
            }
            self.nodes.remove(&id);
        }
    }

    /// The directory fsync of `dir`: the names in it reach the kernel.
    fn apply_names(&mut self, dir: &Path) -> io::Result<()> {
        let mut here: Vec<(PathBuf, Option<u64>)> =
            self.names.iter().filter(|(p, _)| parent(p) == dir).map(|(p, id)| (p.clone(), *id)).collect();
        // Files first: a file renamed away from a kernel name is copied before that name goes.
        here.sort_by_key(|(_, id)| id.is_none());
        for (path, id) in here {
            match id {
                Some(id) if self.nodes[&id].durable_name.as_deref() != Some(&path) => self.materialize(&path, id)?,
                Some(_) => {}
                None => {
                    match std::fs::remove_file(&path) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                        _ => {}
                    }
                    for node in self.nodes.values_mut().filter(|n| n.durable_name.as_deref() == Some(&path)) {
                        node.durable_name = None;
                    }
                    self.names.remove(&path);
                }
            }
        }
        let clean: Vec<u64> =
            self.nodes.iter().filter(|(_, n)| n.handles == 0 && n.is_clean()).map(|(id, _)| *id).collect();
        for id in clean {
            if let Some(name) = self.nodes.remove(&id).and_then(|n| n.name) {
                self.names.remove(&name);
            }
        }
        Ok(())
    }

    /// Gives the file `id` the durable name `path`, with its durable bytes: a kernel
    /// temporary file, fsync'd, renamed into place (the caller fsyncs the directory).
    fn materialize(&mut self, path: &Path, id: u64) -> io::Result<()> {
        self.nodes.get_mut(&id).expect("named nodes exist").mend()?;
        let bytes = self.nodes[&id].durable_bytes()?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}{MATERIALIZING}{}-{id}", std::process::id()));
        {
            let mut file = std::fs::File::create(&tmp)?;
            io::Write::write_all(&mut file, &bytes)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        let file = std::fs::OpenOptions::new().read(true).write(true).open(path)?;
        for node in self.nodes.values_mut().filter(|n| n.durable_name.as_deref() == Some(path)) {
            node.durable_name = None;
        }
        let node = self.nodes.get_mut(&id).expect("named nodes exist");
        node.backing = Backing::Kernel(file);
        node.durable_name = Some(path.to_path_buf());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lazy() -> FileSystem {
        FileSystem::new(FaultFs::Lazy, false)
    }

    #[test]
    fn unsynced_writes_are_read_back_but_lost_at_a_power_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"durable!").unwrap();
        let fs = lazy();
        let file = fs.open(&path).unwrap();
        file.write_at(4, b"DATA and more").unwrap();
        let mut out = vec![0; 17];
        file.read_at(0, &mut out).unwrap();
        assert_eq!(out, b"duraDATA and more", "the process reads its own writes");
        assert_eq!(std::fs::read(&path).unwrap(), b"durable!", "the kernel has only what was fsync'd");
        drop(file);
        fs.lose_unsynced();
        assert_eq!(fs.read(&path).unwrap(), b"durable!");
    }

    #[test]
    fn fsync_makes_writes_and_truncations_durable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 10_000]).unwrap();
        let fs = lazy();
        let file = fs.open(&path).unwrap();
        file.set_len(100).unwrap();
        file.set_len(5000).unwrap();
        file.write_at(4096, b"x").unwrap();
        let mut want = vec![7u8; 100];
        want.resize(5000, 0);
        want[4096] = b'x';
        assert_eq!(fs.read(&path).unwrap(), want, "a truncation then growth reads zeros");
        file.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), want);
        fs.lose_unsynced();
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }

    #[test]
    fn a_name_is_durable_only_at_its_directory_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, path) = (dir.path().join(".f.tmp"), dir.path().join("f"));
        std::fs::write(&path, b"old").unwrap();
        let fs = lazy();
        // The write-then-rename dance, without the directory fsync.
        let file = fs.create(&tmp).unwrap();
        file.write_at(0, b"new").unwrap();
        file.sync().unwrap();
        drop(file);
        fs.rename(&tmp, &path).unwrap();
        assert_eq!(fs.read(&path).unwrap(), b"new");
        assert!(!fs.exists(&tmp));
        assert_eq!(std::fs::read(&path).unwrap(), b"old", "the kernel still names the old file");
        assert!(!tmp.exists(), "a name never fsync'd never reached the kernel");
        fs.lose_unsynced();
        assert_eq!(fs.read(&path).unwrap(), b"old");

        // With it: the new content, durably.
        fs.write_atomically(&path, b"newer").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"newer");
        fs.lose_unsynced();
        assert_eq!(fs.read(&path).unwrap(), b"newer");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("f")], "no temporary file is left behind");
    }

    #[test]
    fn a_renamed_file_takes_only_its_synced_bytes_to_its_new_name() {
        let dir = tempfile::tempdir().unwrap();
        let (tmp, path) = (dir.path().join("t"), dir.path().join("f"));
        let fs = lazy();
        let file = fs.create(&tmp).unwrap();
        file.write_at(0, b"synced").unwrap();
        file.sync().unwrap();
        file.write_at(6, b" and not").unwrap();
        fs.rename(&tmp, &path).unwrap();
        fs.sync_dir(dir.path()).unwrap();
        assert_eq!(fs.read(&path).unwrap(), b"synced and not");
        assert_eq!(std::fs::read(&path).unwrap(), b"synced");
        file.sync().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"synced and not", "later fsyncs reach the new name");
    }

    #[test]
    fn an_unlink_is_undone_by_a_power_cut_unless_its_directory_was_fsynced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"here").unwrap();
        let fs = lazy();
        fs.remove_file(&path).unwrap();
        assert!(!fs.exists(&path));
        fs.lose_unsynced();
        assert!(fs.exists(&path));
        fs.remove_file(&path).unwrap();
        fs.sync_dir(dir.path()).unwrap();
        fs.lose_unsynced();
        assert!(!fs.exists(&path));
    }

    #[test]
    fn a_redb_database_keeps_exactly_its_durable_commits() {
        use redb::{ReadableDatabase, TableDefinition};
        const T: TableDefinition<u64, u64> = TableDefinition::new("t");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        let fs = lazy();
        let db = fs.open_database(&path).unwrap();
        let commit = |db: &redb::Database, k: u64, durable: bool| {
            let mut txn = db.begin_write().unwrap();
            if !durable {
                txn.set_durability(redb::Durability::None).unwrap();
            }
            txn.open_table(T).unwrap().insert(k, k).unwrap();
            txn.commit().unwrap();
        };
        commit(&db, 1, true);
        commit(&db, 2, false);
        // The power goes: no clean close (which would make the last commit durable).
        std::mem::forget(db);
        fs.lose_unsynced();
        let db = fs.open_database(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let table = txn.open_table(T).unwrap();
        assert_eq!(table.get(1).unwrap().map(|v| v.value()), Some(1));
        assert!(table.get(2).unwrap().is_none(), "a commit never fsync'd is lost with the power");
    }

    #[test]
    fn a_file_never_synced_reads_and_grows_from_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FileSystem::new(FaultFs::Lazy, true);
        let file = fs.create(&dir.path().join("f")).unwrap();
        file.set_len(3 * PAGE).unwrap();
        file.write_at(2 * PAGE + 1, b"x").unwrap();
        let mut out = vec![1; PAGE as usize];
        file.read_at(PAGE, &mut out).unwrap();
        assert!(out.iter().all(|b| *b == 0), "never written: zeros");
        file.sync().unwrap();
        file.read_at(2 * PAGE, &mut out[..2]).unwrap();
        assert_eq!(&out[..2], b"\0x");
    }

    #[test]
    fn a_copy_left_by_a_killed_lazy_node_is_removed_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let live = format!(".f.fault-fs-{}-3", std::process::id());
        for name in [".f.fault-fs-7", ".f.fault-fs-4294967-3", live.as_str(), "f", ".f.tmp", ".g.fault-fs-x"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        lazy().create_dir_all(dir.path()).unwrap();
        let mut left: Vec<String> =
            std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        left.sort();
        assert_eq!(left, vec![live, ".f.tmp".to_string(), ".g.fault-fs-x".into(), "f".into()]);
    }

    /// A database written through `lazy-torn`, with a power cut after durable commits and
    /// then non-durable ones (whose writes are torn): it opens, with every durable commit.
    #[test]
    fn a_redb_database_recovers_from_a_torn_tail() {
        use redb::{ReadableDatabase, TableDefinition};
        const T: TableDefinition<u64, &[u8]> = TableDefinition::new("t");
        for round in 0..12u64 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db.redb");
            let fs = FileSystem::new(FaultFs::LazyTorn, false);
            let db = fs.open_database(&path).unwrap();
            let value = vec![round as u8; 3000];
            let commit = |db: &redb::Database, k: u64, durable: bool| {
                let mut txn = db.begin_write().unwrap();
                if !durable {
                    txn.set_durability(redb::Durability::None).unwrap();
                }
                txn.open_table(T).unwrap().insert(k, &value[..]).unwrap();
                txn.commit().unwrap();
            };
            let durable = 5 + round % 4;
            for k in 0..durable {
                commit(&db, k, true);
            }
            for k in 100..100 + round * 3 {
                commit(&db, k, false);
            }
            std::mem::forget(db);
            fs.lose_unsynced();
            let db = FileSystem::real().open_database(&path).unwrap();
            let txn = db.begin_read().unwrap();
            let table = txn.open_table(T).unwrap();
            for k in 0..durable {
                assert_eq!(table.get(k).unwrap().map(|v| v.value().to_vec()), Some(value.clone()), "round {round}");
            }
        }
    }

    #[test]
    fn a_torn_write_leaves_a_prefix_in_the_kernel_until_the_next_write_or_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut torn_midway = false;
        for _ in 0..40 {
            std::fs::write(&path, vec![b'o'; 100]).unwrap();
            let fs = FileSystem::new(FaultFs::LazyTorn, false);
            let file = fs.open(&path).unwrap();
            file.write_at(50, &[b'n'; 100]).unwrap();
            assert_eq!(fs.read(&path).unwrap().len(), 150, "the process sees the whole write");
            let kernel = std::fs::read(&path).unwrap();
            assert!(kernel[..50].iter().all(|b| *b == b'o'), "before the write: untouched");
            let prefix = kernel[50..].iter().take_while(|b| **b == b'n').count();
            assert!(kernel[50 + prefix..].iter().all(|b| *b == b'o'), "a prefix of the write, then the old bytes");
            assert_eq!(kernel.len(), 100.max(50 + prefix));
            torn_midway |= prefix > 0 && prefix < 100;
            // The next write takes the torn prefix back before it tears itself.
            file.write_at(0, b"x").unwrap();
            file.write_at(200, b"y").unwrap();
            let kernel = std::fs::read(&path).unwrap();
            assert_eq!(&kernel[1..100], &[b'o'; 99][..], "only the last write is torn");
            file.sync().unwrap();
            let mut want = vec![b'o'; 50];
            want[0] = b'x';
            want.extend([b'n'; 100]);
            want.resize(201, 0);
            want[200] = b'y';
            assert_eq!(std::fs::read(&path).unwrap(), want, "an fsync leaves exactly the writes");
        }
        assert!(torn_midway, "some write was torn mid-way");
    }

    #[test]
    fn an_atomic_write_cut_by_a_power_loss_leaves_the_old_content() {
        let dir = tempfile::tempdir().unwrap();
        let (path, tmp) = (dir.path().join("g"), dir.path().join(".g.tmp"));
        for _ in 0..20 {
            let fs = FileSystem::new(FaultFs::LazyTorn, false);
            fs.write_atomically(&path, b"first").unwrap();
            // A temporary file left by an earlier crash, then a write into it cut short.
            std::fs::write(&tmp, b"stale temporary").unwrap();
            let file = fs.create(&tmp).unwrap();
            file.write_at(0, b"second, not yet synced").unwrap();
            drop(file);
            fs.lose_unsynced();
            assert_eq!(FileSystem::real().read(&path).unwrap(), b"first");
        }
    }

    #[test]
    fn a_sealed_file_reads_back_and_any_flipped_byte_or_lost_tail_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let fs = FileSystem::real();
        fs.write_sealed(&path, b"the snapshot").unwrap();
        assert_eq!(fs.read_sealed(&path).unwrap(), b"the snapshot");
        let good = std::fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            std::fs::write(&path, &bad).unwrap();
            match fs.read_sealed(&path) {
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
                }
                // A flip in the magic: an unsealed file, the whole of it, for the decoder.
                Ok(bytes) => assert_eq!(bytes, bad, "byte {at}"),
            }
        }
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert_ne!(fs.read_sealed(&path).unwrap(), b"the snapshot", "a lost tail is never the snapshot");
        std::fs::write(&path, b"older").unwrap();
        assert_eq!(fs.read_sealed(&path).unwrap(), b"older", "an unsealed file reads whole");
    }

    #[test]
    fn a_database_with_a_flipped_byte_or_a_lost_tail_is_refused_by_name() {
        use redb::{ReadableDatabase, TableDefinition};
        const T: TableDefinition<u64, &[u8]> = TableDefinition::new("t");
        let dir = tempfile::tempdir().unwrap();
        let fs = FileSystem::real();
        let good_path = dir.path().join("good.redb");
        {
            let db = fs.open_database(&good_path).unwrap();
            for k in 0..50u64 {
                let txn = db.begin_write().unwrap();
                txn.open_table(T).unwrap().insert(k, &vec![b'v'; 2000][..]).unwrap();
                txn.commit().unwrap();
            }
        }
        let good = std::fs::read(&good_path).unwrap();
        let value_at = good.windows(2000).position(|w| w.iter().all(|b| *b == b'v')).unwrap();
        let mut flipped = good.clone();
        flipped[value_at + 1000] = b'w';
        let truncated = good[..good.len() / 2].to_vec();
        // Each on its own file: a database refused is left unclosed (and locked) by design.
        for (name, bad) in [("flipped.redb", flipped), ("truncated.redb", truncated)] {
            let path = dir.path().join(name);
            std::fs::write(&path, &bad).unwrap();
            let refused = match fs.open_database(&path) {
                Err(e) => e,
                Ok(db) => {
                    // Opened (redb rolled the damaged commit back): every value it serves must
                    // be the one written.
                    let txn = db.begin_read().unwrap();
                    let table = txn.open_table(T).unwrap();
                    for k in 0..50u64 {
                        if let Some(v) = table.get(k).unwrap() {
                            assert_eq!(v.value(), &vec![b'v'; 2000][..], "a value served wrong");
                        }
                    }
                    assert_eq!(name, "flipped.redb", "a truncated database opened");
                    continue;
                }
            };
            assert!(refused.contains(&path.display().to_string()) && refused.contains("corrupt"), "{refused}");
        }
        fs.open_database(&good_path).unwrap();
    }

    #[test]
    fn skipping_fsync_leaves_everything_to_the_power_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let fs = FileSystem::new(FaultFs::Lazy, true);
        fs.write_atomically(&path, b"acknowledged").unwrap();
        assert_eq!(fs.read(&path).unwrap(), b"acknowledged");
        fs.lose_unsynced();
        assert!(!fs.exists(&path));
    }

    #[test]
    fn a_failed_fsync_fails_the_storage_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for fs in [FileSystem::real(), lazy()] {
            fs.write_atomically(&path, b"one").unwrap();
            fs.inject(DiskOp::Fsync, Some(DiskError::Eio));
            assert_eq!(fs.injected(), vec!["fsync eio".to_string()]);
            let e = fs.write_atomically(&path, b"two").unwrap_err();
            assert_eq!(e.raw_os_error(), Some(nix::libc::EIO), "{e}");
            assert!(fs.failure().unwrap().contains("fsync failed"), "{:?}", fs.failure());
            // Clearing the fault does not bring the storage back: the failed fsync may have
            // lost pages the process still believes written (fsyncgate).
            fs.inject(DiskOp::Fsync, None);
            let e = fs.write_atomically(&path, b"three").unwrap_err();
            assert!(e.to_string().contains("failed earlier"), "{e}");
            assert_eq!(fs.read(&path).unwrap(), b"one", "reads still work");
        }
    }

    #[test]
    fn a_full_disk_fails_writes_with_enospc() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FileSystem::real();
        fs.inject(DiskOp::Write, Some(DiskError::Enospc));
        let e = fs.write_atomically(&dir.path().join("f"), b"x").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(nix::libc::ENOSPC), "{e}");
        assert!(fs.failure().is_some());
    }

    /// The same commits on redb's own file backend or on the pass-through layer: 4,000 small
    /// write transactions, every 20th fsync'd. Timed whole-process, in pairs (docs/benchmarks.md):
    /// `cargo test --lib node::fs::tests::commits_through -- --ignored --exact NAME`.
    fn commits(db: redb::Database) {
        const T: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("t");
        let value = [7u8; 100];
        for i in 0..4000u64 {
            let mut txn = db.begin_write().unwrap();
            if i % 20 != 0 {
                txn.set_durability(redb::Durability::None).unwrap();
            }
            txn.open_table(T).unwrap().insert(i % 500, &value[..]).unwrap();
            txn.commit().unwrap();
        }
    }

    #[test]
    #[ignore = "a benchmark"]
    fn commits_through_redb_file_backend() {
        let dir = tempfile::tempdir().unwrap();
        commits(redb::Database::create(dir.path().join("db.redb")).unwrap());
    }

    #[test]
    #[ignore = "a benchmark"]
    fn commits_through_the_pass_through_layer() {
        let dir = tempfile::tempdir().unwrap();
        commits(FileSystem::real().open_database(&dir.path().join("db.redb")).unwrap());
    }

    #[test]
    fn the_pass_through_layer_is_the_kernel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let fs = FileSystem::real();
        fs.write_atomically(&path, b"bytes").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"bytes");
        let file = fs.open(&path).unwrap();
        file.write_at(5, b"!").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"bytes!");
        assert_eq!(fs.identity(&path).unwrap().size, 6);
    }
}
