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
//! A conditional PUT takes the exclusive lock (`flock`, shared by every process on the
//! machine), checks the condition against the current file, writes a temporary file, fsyncs
//! it, renames it over the object and fsyncs the directory — so an acknowledged PUT survives
//! power loss, and a crash mid-PUT leaves the previous version.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{Etag, Object, ObjectError, ObjectStore, PutCondition};

/// An object store in a local directory.
#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// Opens (creating if needed) the directory `root`.
    pub fn open(root: impl Into<PathBuf>) -> std::io::Result<Self> {
        let root = root.into();
        fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    fn object_path(&self, key: &str) -> Result<PathBuf, ObjectError> {
        let valid = !key.is_empty()
            && !key.starts_with('.')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !valid {
            return Err(ObjectError::Unavailable(format!("invalid local object key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    fn lock_path(&self, key: &str) -> PathBuf {
        self.root.join(format!(".{key}.lock"))
    }
}

fn open_lock(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).truncate(false).write(true).open(path)
}

fn etag_of(body: &[u8]) -> Etag {
    let digest = Sha256::digest(body);
    Etag(digest.iter().map(|b| format!("{b:02x}")).collect())
}

fn read_object(path: &Path) -> Result<Option<Object>, ObjectError> {
    match fs::read(path) {
        Ok(body) => {
            let etag = etag_of(&body);
            Ok(Some(Object { body: Bytes::from(body), etag }))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ObjectError::Unavailable(format!("read {}: {e}", path.display()))),
    }
}

fn put_locked(root: &Path, path: &Path, key: &str, body: &[u8], condition: &PutCondition) -> Result<Etag, ObjectError> {
    let unavailable = |what: &str, e: std::io::Error| ObjectError::Unavailable(format!("{what}: {e}"));
    let lock = open_lock(&root.join(format!(".{key}.lock"))).map_err(|e| unavailable("open lock file", e))?;
    lock.lock().map_err(|e| unavailable("lock", e))?;

    let current = read_object(path)?;
    let holds = match (condition, &current) {
        (PutCondition::IfAbsent, None) => true,
        (PutCondition::IfMatch(want), Some(obj)) => *want == obj.etag,
        _ => false,
    };
    if !holds {
        return Err(ObjectError::PreconditionFailed);
    }

    // Until the rename the old version stands: any failure before it is definite.
    let tmp = root.join(format!(".{key}.tmp"));
    let mut file = File::create(&tmp).map_err(|e| unavailable("create temp file", e))?;
    file.write_all(body).map_err(|e| unavailable("write temp file", e))?;
    file.sync_all().map_err(|e| unavailable("fsync temp file", e))?;
    fs::rename(&tmp, path).map_err(|e| unavailable("rename", e))?;
    // After the rename the new version is visible; a failing directory fsync leaves its
    // durability in doubt.
    File::open(root)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| ObjectError::Indeterminate(format!("fsync directory: {e}")))?;
    Ok(etag_of(body))
}

#[async_trait]
impl ObjectStore for LocalDir {
    async fn get(&self, key: &str) -> Result<Option<Object>, ObjectError> {
        let path = self.object_path(key)?;
        let lock_path = self.lock_path(key);
        tokio::task::spawn_blocking(move || {
            let lock = open_lock(&lock_path).map_err(|e| ObjectError::Unavailable(format!("open lock file: {e}")))?;
            lock.lock_shared().map_err(|e| ObjectError::Unavailable(format!("lock: {e}")))?;
            read_object(&path)
        })
        .await
        .map_err(|e| ObjectError::Unavailable(e.to_string()))?
    }

    async fn put(&self, key: &str, body: Bytes, condition: PutCondition) -> Result<Etag, ObjectError> {
        let path = self.object_path(key)?;
        let root = self.root.clone();
        let key = key.to_owned();
        tokio::task::spawn_blocking(move || put_locked(&root, &path, &key, &body, &condition))
            .await
            .map_err(|e| ObjectError::Indeterminate(e.to_string()))?
    }

    fn describe(&self) -> String {
        format!("local:{}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
