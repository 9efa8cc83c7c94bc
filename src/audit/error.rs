//! The audit store's errors, sorted into "unavailable" (wait and retry) and everything else,
//! and [`Guarded`], the error of a call made under the write-ahead rule.

use std::path::PathBuf;

/// The condition reason a reconciler sets when a call was not made because its intent could
/// not be written; the object is then retried with backoff.
pub const AUDIT_UNAVAILABLE_REASON: &str = "AuditStoreUnavailable";

/// A failed audit store operation. Never carries the database URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The database could not be reached or is shutting down, starting or overloaded.
    #[error("audit store ({backend}) unavailable: {operation}: {source}")]
    Unavailable {
        backend: &'static str,
        operation: &'static str,
        source: sqlx::Error,
    },
    /// The database answered and refused the statement.
    #[error("audit store ({backend}) refused {operation}: {source}")]
    Rejected {
        backend: &'static str,
        operation: &'static str,
        source: sqlx::Error,
    },
    /// The schema migrations could not be applied.
    #[error("audit store ({backend}): migrations failed: {source}")]
    Migrate {
        backend: &'static str,
        source: sqlx::migrate::MigrateError,
    },
    /// A stored row could not be read back.
    #[error("audit store ({backend}): unreadable {what}: {message}")]
    Decode {
        backend: &'static str,
        what: &'static str,
        message: String,
    },
    /// The directory for the SQLite file does not exist (it is never created implicitly).
    #[error("audit store (sqlite): the directory {dir} for {path} does not exist; create it first")]
    MissingDirectory { path: PathBuf, dir: PathBuf },
    /// The URL names a database this store does not speak (only the scheme is shown).
    #[error(
        "audit store: unsupported database URL scheme {scheme:?} (expected postgres:// or postgresql://)"
    )]
    UnsupportedUrl { scheme: String },
}

impl AuditError {
    /// Sorts a driver error of `operation` into unavailable or rejected.
    pub(crate) fn query(backend: &'static str, operation: &'static str, source: sqlx::Error) -> Self {
        if is_unavailable(backend, &source) {
            Self::Unavailable {
                backend,
                operation,
                source,
            }
        } else {
            Self::Rejected {
                backend,
                operation,
                source,
            }
        }
    }

    /// Whether waiting for the database may help (the caller backs off and retries).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable { .. } => true,
            Self::Migrate {
                backend,
                source: sqlx::migrate::MigrateError::Execute(e),
            } => is_unavailable(backend, e),
            _ => false,
        }
    }
}

/// Whether a driver error means "the database is not there right now" rather than "it said no".
fn is_unavailable(backend: &str, e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| match backend {
            "sqlite" => sqlite_transient(&code),
            _ => postgres_transient(&code),
        }),
        _ => false,
    }
}

/// SQLSTATEs of connection loss (08), shutdown or start-up (57P0x) and exhausted resources (53).
fn postgres_transient(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("53") || matches!(code, "57P01" | "57P02" | "57P03")
}

/// SQLite's busy, locked, I/O error, full and cannot-open (primary codes of extended ones).
fn sqlite_transient(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14))
}

/// The error of a Proxmox call made with [`AuditStore::guarded`](super::AuditStore::guarded).
#[derive(Debug, thiserror::Error)]
pub enum Guarded<E> {
    /// The intent could not be written, so the call was not made.
    #[error("Proxmox call not made: {0}")]
    AuditUnavailable(#[source] AuditError),
    /// The call was made and failed (its outcome is in the trail, or queued for it).
    #[error(transparent)]
    Call(E),
}

impl<E> Guarded<E> {
    /// The call's own error, if the call was made.
    pub fn into_call_error(self) -> Option<E> {
        match self {
            Self::Call(e) => Some(e),
            Self::AuditUnavailable(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_codes_sort_into_unavailable_or_refused() {
        // Postgres: connection failure, admin shutdown, starting up, too many connections.
        for code in ["08006", "57P01", "57P03", "53300"] {
            assert!(postgres_transient(code), "{code}");
        }
        // Postgres: unique and foreign-key violations are answers, not outages.
        for code in ["23505", "23503", "42P01"] {
            assert!(!postgres_transient(code), "{code}");
        }
        // SQLite: busy, busy-snapshot (517), locked, I/O error (extended 266), full.
        for code in ["5", "517", "6", "266", "13"] {
            assert!(sqlite_transient(code), "{code}");
        }
        // SQLite: constraint (19) and its foreign-key form (787).
        for code in ["19", "787", "not-a-number"] {
            assert!(!sqlite_transient(code), "{code}");
        }
    }

    #[test]
    fn pool_and_io_failures_are_unavailable() {
        let timed_out = AuditError::query("postgres", "record intent", sqlx::Error::PoolTimedOut);
        assert!(timed_out.is_unavailable());
        let decode = AuditError::query("postgres", "query", sqlx::Error::ColumnNotFound("x".into()));
        assert!(!decode.is_unavailable());
    }
}
