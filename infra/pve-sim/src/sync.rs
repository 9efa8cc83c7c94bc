//! Locking that survives a panic.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, recovering from a poisoned one (a panicking handler must not wedge the sim).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
