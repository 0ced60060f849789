//! Taking a lock, one way everywhere: a lock whose holder panicked is taken anyway. A panic
//! while holding one of the server's locks is a bug that is reported where it happens (the
//! writer thread stops the process, a task's panic is logged); refusing every later request
//! because the lock is poisoned would only turn one failed request into a dead node. What
//! these locks guard is kept consistent at every step (whole values are swapped in), so the
//! data behind a poisoned lock is still whole.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `mutex`, whatever a panicking holder left.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Locks `lock` for reading, whatever a panicking holder left.
pub fn read_lock<T: ?Sized>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

/// Locks `lock` for writing, whatever a panicking holder left.
pub fn write_lock<T: ?Sized>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
