//! The run's journal on local disk: each state replaces the last atomically and durably, so
//! after a crash (kill -9, power loss) the file holds either the old state or the new one,
//! whole — never a mix, never nothing.
//!
//! How: write a temporary file beside the journal, fsync it, rename it over the journal, fsync
//! the directory (the rename itself is only durable once the directory is).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
#[error("journal {path}: {action}: {source}")]
pub struct JournalError {
    pub path: PathBuf,
    pub action: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// Replaces `path`'s contents with `bytes`, atomically and durably.
///
/// # Errors
/// [`JournalError`] naming the journal and the step that failed; the journal then still
/// holds its previous contents.
pub fn replace(path: &Path, bytes: &[u8]) -> Result<(), JournalError> {
    let error = |action| {
        move |source| JournalError {
            path: path.to_owned(),
            action,
            source,
        }
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let temporary = temporary_path(path);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temporary)
        .map_err(error("creating the temporary file"))?;
    file.write_all(bytes).map_err(error("writing"))?;
    file.sync_all()
        .map_err(error("syncing the temporary file"))?;
    drop(file);
    fs::rename(&temporary, path).map_err(error("renaming the temporary file over it"))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(error("syncing its directory"))
}

/// Reads the journal, or `None` if there is none yet.
///
/// # Errors
/// [`JournalError`] if it exists but cannot be read.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>, JournalError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(JournalError {
            path: path.to_owned(),
            action: "reading",
            source,
        }),
    }
}

/// `<journal>.tmp`, beside it (a rename is atomic only within one file system).
fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_replaces_the_last_whole_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("rollout.json");
        assert!(read(&path).expect("read").is_none());
        replace(&path, b"{\"wave\": 0}").expect("first state");
        replace(&path, b"{\"wave\": 1}").expect("second state");
        assert_eq!(
            read(&path).expect("read").as_deref(),
            Some(&b"{\"wave\": 1}"[..])
        );
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["rollout.json"]);
    }

    #[test]
    fn a_failed_write_names_the_journal_and_keeps_the_old_state() {
        let dir = tempfile::tempdir().expect("a directory");
        let path = dir.path().join("rollout.json");
        replace(&path, b"old").expect("first state");
        // A directory where the temporary file should go makes its creation fail.
        fs::create_dir(temporary_path(&path)).expect("block the temporary path");
        let error = replace(&path, b"new").expect_err("the write must fail");
        assert!(error.to_string().contains("rollout.json"), "{error}");
        assert_eq!(error.action, "creating the temporary file");
        assert_eq!(read(&path).expect("read").as_deref(), Some(&b"old"[..]));
    }
}
