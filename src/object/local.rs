//! `LocalDir`: compare-and-swap objects in a local directory.
//!
//! Layout: each object `key` is the file `<root>/<key>`; `<root>/.<key>.lock` is the lock file
//! writers hold. The etag of a version is the SHA-256 of its bytes, so a reader needs no lock:
//! rename is atomic, a reader sees a whole old version or a whole new one, and the etag it
//! computes names exactly what it read. Readers still take the lock shared, so they never
//! see a version whose directory entry is not yet fsync'd (one a power cut could undo). As with S3 (whose ETag is also a content digest),
//! two versions with equal bytes share an etag; for s3 mode that is harmless, because a
//! write computed against some content is correct against any version with that content.
//!
//! A reader that holds a version asks only whether it is still current: each writer notes
//! the new etag in the lock file before its rename, and the check reads that note, then the
//! object file's identity (device, inode, size, times), against what this process last read
//! or wrote — two system calls, no lock, no read of the document.
//!
//! A conditional PUT takes the exclusive lock (`flock`, shared by every process on the
//! machine), checks the condition against the current file, writes a temporary file, fsyncs
//! it, renames it over the object and fsyncs the directory — so an acknowledged PUT survives
//! power loss, and a crash mid-PUT leaves the previous version.

use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{Etag, Fetched, Object, ObjectError, ObjectStore, PutCondition};
use crate::node::{FileIdentity, FileSystem, lock};

/// Which file a path named when it was read: a rename makes a new one.
type FileId = FileIdentity;

/// The version last read or written of each object, and the file it was in.
type KnownVersions = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<PathBuf, (Etag, FileId)>>>;

/// An object store in a local directory.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
    /// The node's file layer: every object byte goes through it.
    fs: FileSystem,
    seen: KnownVersions,
    lock_files: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<File>>>>,
}

impl LocalDir {
    /// Opens (creating if needed) the directory `root`, through the kernel.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        Self::open_with(root, FileSystem::real())
    }

    /// Opens (creating if needed) the directory `root`, through the file layer `fs`.
    pub fn open_with(root: impl Into<PathBuf>, fs: FileSystem) -> std::io::Result<Self> {
        let root = root.into();
        fs.create_dir_all(&root)?;
        Ok(Self { root, fs, seen: KnownVersions::default(), lock_files: Default::default() })
    }

    fn remember(&self, path: &Path, etag: &Etag, id: FileId) {
        lock(&self.seen).insert(path.to_path_buf(), (etag.clone(), id));
    }

    fn remembered(&self, path: &Path) -> Option<(Etag, FileId)> {
        lock(&self.seen).get(path).cloned()
    }

    /// True when `known` is still the object at `path` (the caller holds the lock shared):
    /// the version this process last read or wrote, the etag its writer noted, the same file.
    ///
    /// Sound without the lock too: a writer notes its etag before its rename, and this reads
    /// the note before the file's identity, so a write in between changes one or the other;
    /// and the version it vouches for was durable when this process read or wrote it.
    fn unchanged(&self, lock: &File, path: &Path, known: &Etag) -> bool {
        self.remembered(path).is_some_and(|(etag, id)| {
            etag == *known
                && noted_etag(lock).is_ok_and(|noted| noted == known.0.as_bytes())
                && self.fs.identity(path).is_ok_and(|now| now == id)
        })
    }

    /// The lock file of `key`, opened once (the unchanged check reads its note).
    fn lock_file(&self, key: &str) -> std::io::Result<std::sync::Arc<File>> {
        let mut open = lock(&self.lock_files);
        if let Some(file) = open.get(key) {
            return Ok(file.clone());
        }
        let file = std::sync::Arc::new(self.fs.open_lock(&self.lock_path(key))?);
        open.insert(key.to_owned(), file.clone());
        Ok(file)
    }

    /// Whether `key` can name an object here: letters, digits, `-`, `_` and `.`, not first.
    pub fn is_valid_key(key: &str) -> bool {
        !key.is_empty() && !key.starts_with('.') && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    }

    fn object_path(&self, key: &str) -> Result<PathBuf, ObjectError> {
        if !Self::is_valid_key(key) {
            return Err(ObjectError::Unavailable(format!("invalid local object key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    fn lock_path(&self, key: &str) -> PathBuf {
        self.root.join(format!(".{key}.lock"))
    }
}

/// The etag a writer noted in the lock file before its rename (empty: none noted yet).
fn noted_etag(lock: &File) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut noted = vec![0; 129];
    let n = lock.read_at(&mut noted, 0)?;
    noted.truncate(n);
    Ok(noted)
}

/// Notes `etag` in the lock file (under the exclusive lock, before the rename that makes it
/// current). Not fsync'd: only running readers use it, and a crash that loses it ends them
/// too; a note ahead of the data (a rename that failed) only costs a reader a full read.
fn note_etag(lock: &File, etag: &Etag) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    lock.write_all_at(etag.0.as_bytes(), 0)?;
    lock.set_len(etag.0.len() as u64)
}

fn etag_of(body: &[u8]) -> Etag {
    let digest = Sha256::digest(body);
    Etag(digest.iter().map(|b| format!("{b:02x}")).collect())
}

fn read_object(fs: &FileSystem, path: &Path) -> Result<Option<Object>, ObjectError> {
    Ok(read_object_id(fs, path)?.map(|(object, _)| object))
}

/// The object in `path` and the file it was read from (the caller holds the lock, so no
/// writer replaces it in between).
fn read_object_id(fs: &FileSystem, path: &Path) -> Result<Option<(Object, FileId)>, ObjectError> {
    let failed = |e: std::io::Error| ObjectError::Unavailable(format!("read {}: {e}", path.display()));
    let id = match fs.identity(path) {
        Ok(id) => id,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(e)),
    };
    let body = match fs.read(path) {
        Ok(body) => body,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(e)),
    };
    let etag = etag_of(&body);
    Ok(Some((Object { body: Bytes::from(body), etag }, id)))
}

fn put_locked(
    store: &LocalDir,
    root: &Path,
    path: &Path,
    key: &str,
    body: &[u8],
    condition: &PutCondition,
) -> Result<(Etag, Option<FileId>), ObjectError> {
    let unavailable = |what: &str, e: std::io::Error| ObjectError::Unavailable(format!("{what}: {e}"));
    let fs = &store.fs;
    let lock = fs.open_lock(&root.join(format!(".{key}.lock"))).map_err(|e| unavailable("open lock file", e))?;
    lock.lock().map_err(|e| unavailable("lock", e))?;

    // The version this process last read or wrote, still current by the writer's note and
    // the file's identity, needs no read: the condition is checked without reading (and
    // hashing) the whole object again.
    let holds = match condition {
        PutCondition::IfMatch(want) if store.unchanged(&lock, path, want) => true,
        PutCondition::IfAbsent if !fs.exists(path) => true,
        _ => match (condition, read_object(fs, path)?) {
            (PutCondition::IfAbsent, None) => true,
            (PutCondition::IfMatch(want), Some(obj)) => *want == obj.etag,
            _ => false,
        },
    };
    if !holds {
        return Err(ObjectError::PreconditionFailed);
    }

    // Until the rename the old version stands: any failure before it is definite.
    let etag = etag_of(body);
    note_etag(&lock, &etag).map_err(|e| unavailable("note the etag in the lock file", e))?;
    let tmp = root.join(format!(".{key}.tmp"));
    let file = fs.create(&tmp).map_err(|e| unavailable("create temp file", e))?;
    file.write_at(0, body).map_err(|e| unavailable("write temp file", e))?;
    file.sync().map_err(|e| unavailable("fsync temp file", e))?;
    drop(file);
    fs.rename(&tmp, path).map_err(|e| unavailable("rename", e))?;
    // After the rename the new version is visible; a failing directory fsync leaves its
    // durability in doubt.
    fs.sync_dir(root).map_err(|e| ObjectError::Indeterminate(format!("fsync directory: {e}")))?;
    Ok((etag, fs.identity(path).ok()))
}

#[async_trait]
impl ObjectStore for LocalDir {
    async fn get(&self, key: &str) -> Result<Option<Object>, ObjectError> {
        let path = self.object_path(key)?;
        if !self.fs.exists(&path) {
            // Missing (not yet written, or deleted): no lock file is made for it.
            return Ok(None);
        }
        let lock_path = self.lock_path(key);
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let lock =
                this.fs.open_lock(&lock_path).map_err(|e| ObjectError::Unavailable(format!("open lock file: {e}")))?;
            lock.lock_shared().map_err(|e| ObjectError::Unavailable(format!("lock: {e}")))?;
            let Some((object, id)) = read_object_id(&this.fs, &path)? else { return Ok(None) };
            this.remember(&path, &object.etag, id);
            Ok(Some(object))
        })
        .await
        .map_err(|e| ObjectError::Unavailable(e.to_string()))?
    }

    /// While `known` is current, reads only the etag the last writer noted in the lock file
    /// and the file's identity (device, inode, size, times: a rename makes a new file), so an
    /// unchanged document is neither read nor hashed again. Either one changed — a write by
    /// this or another process, or by a release that notes no etag — and it reads it all.
    async fn get_if_changed(&self, key: &str, known: &Etag) -> Result<Fetched, ObjectError> {
        let path = self.object_path(key)?;
        let lock_path = self.lock_path(key);
        if self.is_current_now(key, known) == Some(true) {
            return Ok(Fetched::Unchanged);
        }
        let known = known.clone();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let lock =
                this.fs.open_lock(&lock_path).map_err(|e| ObjectError::Unavailable(format!("open lock file: {e}")))?;
            lock.lock_shared().map_err(|e| ObjectError::Unavailable(format!("lock: {e}")))?;
            if this.unchanged(&lock, &path, &known) {
                return Ok(Fetched::Unchanged);
            }
            let Some((object, id)) = read_object_id(&this.fs, &path)? else { return Ok(Fetched::Current(None)) };
            this.remember(&path, &object.etag, id);
            Ok(if object.etag == known { Fetched::Unchanged } else { Fetched::Current(Some(object)) })
        })
        .await
        .map_err(|e| ObjectError::Unavailable(e.to_string()))?
    }

    /// The check is two system calls on cached inodes (a read of the lock file's note, a
    /// stat of the object), done in place: no lock to wait for, no thread to wake.
    fn is_current_now(&self, key: &str, known: &Etag) -> Option<bool> {
        let path = self.object_path(key).ok()?;
        let lock = self.lock_file(key).ok()?;
        Some(self.unchanged(&lock, &path, known))
    }

    async fn put(&self, key: &str, body: Bytes, condition: PutCondition) -> Result<Etag, ObjectError> {
        let path = self.object_path(key)?;
        let root = self.root.clone();
        let key = key.to_owned();
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let (etag, id) = put_locked(&this, &root, &path, &key, &body, &condition)?;
            if let Some(id) = id {
                this.remember(&path, &etag, id);
            }
            Ok(etag)
        })
        .await
        .map_err(|e| ObjectError::Indeterminate(e.to_string()))?
    }

    async fn delete(&self, key: &str) -> Result<(), ObjectError> {
        let path = self.object_path(key)?;
        let lock_path = self.lock_path(key);
        lock(&self.lock_files).remove(key);
        lock(&self.seen).remove(&path);
        let (fs, root) = (self.fs.clone(), self.root.clone());
        tokio::task::spawn_blocking(move || {
            let gone = |r: std::io::Result<()>| match r {
                Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
            gone(fs.remove_file(&path))
                .and_then(|()| gone(std::fs::remove_file(&lock_path)))
                .map_err(|e| ObjectError::Unavailable(format!("delete {}: {e}", path.display())))?;
            // Until the directory is fsync'd a power cut can bring the object back.
            fs.sync_dir(&root).map_err(|e| ObjectError::Indeterminate(format!("fsync directory: {e}")))
        })
        .await
        .map_err(|e| ObjectError::Unavailable(e.to_string()))?
    }

    fn describe(&self) -> String {
        format!("local:{}", self.root.display())
    }

    fn locate(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unchanged_object_is_not_read_again_and_any_change_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (LocalDir::open(dir.path()).unwrap(), LocalDir::open(dir.path()).unwrap());
        let e1 = a.put("db.json", Bytes::from_static(b"v1"), PutCondition::IfAbsent).await.unwrap();
        assert!(matches!(a.get_if_changed("db.json", &e1).await.unwrap(), Fetched::Unchanged));
        assert!(matches!(b.get_if_changed("db.json", &e1).await.unwrap(), Fetched::Unchanged), "b reads it once");
        assert!(matches!(b.get_if_changed("db.json", &e1).await.unwrap(), Fetched::Unchanged));
        // Another process's write is seen.
        let e2 = b.put("db.json", Bytes::from_static(b"v2"), PutCondition::IfMatch(e1.clone())).await.unwrap();
        match a.get_if_changed("db.json", &e1).await.unwrap() {
            Fetched::Current(Some(o)) => assert_eq!((&o.body[..], &o.etag), (&b"v2"[..], &e2)),
            other => panic!("{other:?}"),
        }
        // So is a replacement that notes no etag (a writer of an older release): same size,
        // and the lock file still names the old version, but it is another file.
        let path = dir.path().join("db.json");
        std::fs::write(dir.path().join("other"), b"v3").unwrap();
        std::fs::rename(dir.path().join("other"), &path).unwrap();
        match a.get_if_changed("db.json", &e2).await.unwrap() {
            Fetched::Current(Some(o)) => assert_eq!(&o.body[..], b"v3"),
            other => panic!("{other:?}"),
        }
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(a.get_if_changed("db.json", &e2).await.unwrap(), Fetched::Current(None)));
    }

    #[tokio::test]
    async fn a_delete_survives_a_power_cut() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FileSystem::new(crate::node::FaultFs::Lazy, false);
        let store = LocalDir::open_with(dir.path(), fs.clone()).unwrap();
        store.put("db.json", Bytes::from_static(b"one"), PutCondition::IfAbsent).await.unwrap();
        store.delete("db.json").await.unwrap();
        fs.lose_unsynced();
        assert!(store.get("db.json").await.unwrap().is_none(), "an acknowledged delete is durable");
    }

    #[tokio::test]
    async fn conditional_puts_behave_like_s3() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::open(dir.path()).unwrap();
        assert!(store.get("db.json").await.unwrap().is_none());

        let v1 = store.put("db.json", Bytes::from_static(b"one"), PutCondition::IfAbsent).await.unwrap();
        let again = store.put("db.json", Bytes::from_static(b"x"), PutCondition::IfAbsent).await;
        assert_eq!(again, Err(ObjectError::PreconditionFailed));

        let v2 = store.put("db.json", Bytes::from_static(b"two"), PutCondition::IfMatch(v1.clone())).await.unwrap();
        let stale = store.put("db.json", Bytes::from_static(b"x"), PutCondition::IfMatch(v1)).await;
        assert_eq!(stale, Err(ObjectError::PreconditionFailed));

        let read = store.get("db.json").await.unwrap().unwrap();
        assert_eq!((read.body.as_ref(), read.etag), (&b"two"[..], v2));
    }

    #[tokio::test]
    async fn if_match_on_a_missing_object_fails() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::open(dir.path()).unwrap();
        let put = store.put("db.json", Bytes::from_static(b"x"), PutCondition::IfMatch(Etag("abc".into()))).await;
        assert_eq!(put, Err(ObjectError::PreconditionFailed));
    }

    #[tokio::test]
    async fn racing_writers_on_one_version_have_exactly_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalDir::open(dir.path()).unwrap();
        let base = store.put("db.json", Bytes::from_static(b"0"), PutCondition::IfAbsent).await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (store, base) = (store.clone(), base.clone());
            tasks.push(tokio::spawn(async move {
                store.put("db.json", Bytes::from(format!("writer-{i}")), PutCondition::IfMatch(base)).await
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += t.await.unwrap().is_ok() as usize;
        }
        assert_eq!(winners, 1);
    }
}
