//! One writer per store: [`StoreLock`], an exclusive OS lock (`flock` on unix,
//! `LockFileEx` on Windows, through `std::fs::File::try_lock`) on a lock file
//! beside the database (`<db>.lock`). The lock belongs to the open file, so it
//! dies with the process that holds it, however that process ends (a SIGKILL
//! included): there is never a stale lock to clear by hand. The file itself
//! stays; what it says (host, pid, since when) is only read to name the holder
//! when the lock is taken.
//!
//! Readers do not take it: `links`, `ledger list|export|verify` and the
//! dashboard open the database read-only beside the daemon.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::model::Timestamp;

/// The store's write lock, held until dropped.
#[derive(Debug)]
pub struct StoreLock {
    /// Kept open: closing it releases the lock.
    _file: File,
    path: PathBuf,
}

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it; `holder` says who, as its lock file does.
    #[error(
        "the store {} is already in use by another itsm-bridge ({holder}); one store \
         has one writer: stop that one first, or give this one another [store] path",
        db.display()
    )]
    Held {
        db: PathBuf,
        lock_file: PathBuf,
        holder: String,
    },
    /// The lock file could not be created, read or locked.
    #[error(
        "cannot lock the store through {}: {error}; check that its folder is writable",
        lock_file.display()
    )]
    Io {
        lock_file: PathBuf,
        #[source]
        error: std::io::Error,
    },
}

impl StoreLock {
    /// The lock file of the database at `db`: `<db>.lock`.
    pub fn path_for(db: &Path) -> PathBuf {
        let mut name = db.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    }

    /// Takes the write lock of the database at `db` at once, or says who holds
    /// it. Missing folders are created owner-only; the lock file is 0600. On
    /// success the file says this process's host, pid and `now`.
    pub fn acquire(db: &Path, now: Timestamp) -> Result<StoreLock, LockError> {
        let lock_file = StoreLock::path_for(db);
        let io = |error: std::io::Error| LockError::Io {
            lock_file: lock_file.clone(),
            error,
        };
        if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
            super::sqlite::create_private_dir(parent).map_err(io)?;
        }
        let mut options = OpenOptions::new();
        // Never truncate before the lock is ours: the holder's words are in it.
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&lock_file).map_err(io)?;
        // `File::try_lock` is stable since Rust 1.89 (the toolchain here is 1.95).
        // The workspace's `rust-version` still says 1.85: raising it turns on
        // clippy's let-chain rewrites across the code, a change of its own.
        #[allow(clippy::incompatible_msrv)]
        let locked = file.try_lock();
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                // The holder writes right after locking: an empty file is a holder
                // that has just started, so it gets a moment (half a second at most).
                let mut said = String::new();
                for _ in 0..10 {
                    said.clear();
                    let _ = file.seek(SeekFrom::Start(0));
                    let _ = file.read_to_string(&mut said);
                    if !said.trim().is_empty() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                return Err(LockError::Held {
                    db: db.to_path_buf(),
                    lock_file,
                    holder: describe_holder(&said),
                });
            }
            Err(TryLockError::Error(error)) => return Err(io(error)),
        }
        let holder = format!(
            "host={}\npid={}\nsince={}\n",
            host_name(),
            std::process::id(),
            crate::ledger::canonical_time(&now)
        );
        file.set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(holder.as_bytes()))
            .and_then(|()| file.flush())
            .map_err(io)?;
        Ok(StoreLock {
            _file: file,
            path: lock_file,
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// `host h, pid p, since t` from a lock file's `key=value` lines; what is not
/// there is left out (control characters are dropped: the file is not trusted).
fn describe_holder(text: &str) -> String {
    let value = |key: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
            .map(|v| {
                v.chars()
                    .filter(|c| !c.is_control())
                    .take(128)
                    .collect::<String>()
            })
            .filter(|v| !v.is_empty())
    };
    let parts: Vec<String> = [("host", "host"), ("pid", "pid"), ("since", "since")]
        .iter()
        .filter_map(|(key, label)| value(key).map(|v| format!("{label} {v}")))
        .collect();
    if parts.is_empty() {
        "a process that is starting up".to_owned()
    } else {
        parts.join(", ")
    }
}

/// This machine's name, as the kernel has it (unix), or the environment says.
pub(super) fn host_name() -> String {
    let from_kernel = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty());
    from_kernel
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|n| !n.is_empty()))
        .or_else(|| std::env::var("COMPUTERNAME").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(|| "unknown host".to_owned())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> Timestamp {
        chrono::Utc.with_ymd_and_hms(2026, 12, 6, 20, 0, 0).unwrap()
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state").join("bridge.db");
        let first = StoreLock::acquire(&db, now()).unwrap();
        assert_eq!(
            first.path(),
            dir.path().join("state").join("bridge.db.lock")
        );

        // flock belongs to the open file, so a second open in this process
        // conflicts exactly as another process would.
        let error = StoreLock::acquire(&db, now()).unwrap_err();
        let LockError::Held { holder, .. } = &error else {
            panic!("expected Held, got {error:?}")
        };
        assert_eq!(
            holder,
            &format!(
                "host {}, pid {}, since 2026-12-06T20:00:00.000000Z",
                host_name(),
                std::process::id()
            )
        );
        assert!(
            error
                .to_string()
                .contains("already in use by another itsm-bridge")
        );

        drop(first);
        StoreLock::acquire(&db, now()).expect("free again once the holder is gone");
    }

    #[cfg(unix)]
    #[test]
    fn the_lock_and_its_folders_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a").join("b").join("bridge.db");
        let lock = StoreLock::acquire(&db, now()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(lock.path()), 0o600);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&dir.path().join("a").join("b")), 0o700);
    }

    #[test]
    fn holders_are_described_from_untrusted_text() {
        assert_eq!(describe_holder(""), "a process that is starting up");
        assert_eq!(
            describe_holder("pid=7\nhost=box\u{1b}[2J\n"),
            "host box[2J, pid 7"
        );
    }
}
