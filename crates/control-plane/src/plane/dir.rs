//! The lab directory: what the lab keeps in it, and the rule that it deletes only what it made.
//!
//! A lab directory carries a marker file ([`MARKER`]) written before anything else. `lab up`
//! uses a directory only if it is new, empty, or already marked; anything else (a project, a home
//! directory, a file) is refused before a byte is written. `lab down` and [`ControlPlane::stop`]
//! remove only the entries the lab makes ([`OWNED`]) and the directory itself only if the lab
//! created it and nothing else was put in it.
//!
//! [`ControlPlane::stop`]: super::ControlPlane::stop

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::LabState;
use crate::error::{Error, Result};

/// The marker file that makes a directory a lab directory.
pub const MARKER: &str = ".fleetwatch-lab";
/// Every entry the lab creates in its directory, besides the marker; nothing else is deleted.
const OWNED: [&str; 8] = [
    "state.json",
    "pki",
    "etcd",
    "logs",
    "users",
    "kubeconfig",
    "audit",
    "kwok",
];

/// What the marker records.
#[derive(Debug, Serialize, Deserialize)]
struct Marker {
    /// Whether `lab up` created the directory (then `lab down` removes it once it is empty).
    created_dir: bool,
}

/// A lab directory's layout.
#[derive(Debug, Clone)]
pub(crate) struct LabDir {
    pub(crate) root: PathBuf,
}

impl LabDir {
    pub(crate) fn new(root: &Path) -> Self {
        LabDir {
            root: root.to_path_buf(),
        }
    }

    pub(crate) fn state(&self) -> PathBuf {
        self.root.join("state.json")
    }
    pub(crate) fn pki(&self) -> PathBuf {
        self.root.join("pki")
    }
    pub(crate) fn etcd_data(&self) -> PathBuf {
        self.root.join("etcd")
    }
    pub(crate) fn log(&self, process: &str) -> PathBuf {
        self.root.join("logs").join(format!("{process}.log"))
    }
    /// The admin kubeconfig.
    pub(crate) fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }
    /// Kubeconfigs and client certificates of other users.
    pub(crate) fn users(&self) -> PathBuf {
        self.root.join("users")
    }
    /// The audit policy and webhook kubeconfig, when the API server audits to a webhook.
    pub(crate) fn audit(&self) -> PathBuf {
        self.root.join("audit")
    }
    /// kwok's Stage files, when the lab runs kwok.
    pub(crate) fn kwok(&self) -> PathBuf {
        self.root.join("kwok")
    }
    fn marker(&self) -> PathBuf {
        self.root.join(MARKER)
    }

    /// Makes `root` ready for a new lab: refuses a directory the lab may not use, leaves a marked
    /// directory with nothing of an earlier lab in it, creates the subdirectories. A lab that is
    /// still running there is an error; one left by a crashed run is stopped first (`stop_dead`).
    pub(crate) async fn prepare(
        root: &Path,
        stop_dead: impl AsyncFnOnce(&LabState),
    ) -> Result<Self> {
        refuse_protected(root)?;
        let dir = LabDir::new(root);
        let created_dir = if !root.exists() {
            fs::create_dir_all(root).map_err(Error::io("creating the lab directory", root))?;
            true
        } else if let Some(marker) = dir.read_marker()? {
            if let Some(state) = dir.read_state()? {
                refuse_live(root, &state)?;
                tracing::info!(dir = %root.display(), "cleaning up a lab left by an earlier run");
                stop_dead(&state).await;
            }
            dir.remove_owned()?;
            marker.created_dir
        } else if is_empty(root)? {
            false
        } else {
            return Err(unsafe_dir(
                root,
                &format!(
                    "the directory holds files and is not a fleetwatch lab (it has no {MARKER} \
                     marker); nothing was changed. Choose a new or empty directory"
                ),
            ));
        };
        dir.write_marker(&Marker { created_dir })?;
        for sub in [dir.pki(), dir.root.join("logs"), dir.users()] {
            fs::create_dir_all(&sub).map_err(Error::io("creating the lab directory", &sub))?;
        }
        Ok(dir)
    }

    /// Checks `root` holds a lab before anything in it is touched.
    pub(crate) fn existing(root: &Path) -> Result<Self> {
        refuse_protected(root)?;
        let dir = LabDir::new(root);
        match dir.read_marker()? {
            Some(_) => Ok(dir),
            None => Err(Error::NoLab {
                dir: root.to_path_buf(),
            }),
        }
    }

    /// Removes what the lab made: its entries, the marker, and the directory itself if the lab
    /// created it and it is empty now. Anything else stays.
    pub(crate) fn remove(&self) -> Result<()> {
        let Some(marker) = self.read_marker()? else {
            return Ok(()); // Already removed: stopping twice is fine.
        };
        self.remove_owned()?;
        let path = self.marker();
        fs::remove_file(&path).map_err(Error::io("removing the lab marker", &path))?;
        if marker.created_dir && is_empty(&self.root)? {
            fs::remove_dir(&self.root)
                .map_err(Error::io("removing the lab directory", &self.root))?;
        }
        Ok(())
    }

    fn remove_owned(&self) -> Result<()> {
        for name in OWNED {
            let path = self.root.join(name);
            let removed = match fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => fs::remove_dir_all(&path),
                Ok(_) => fs::remove_file(&path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => Err(e),
            };
            removed.map_err(Error::io("removing a lab file", &path))?;
        }
        Ok(())
    }

    fn read_marker(&self) -> Result<Option<Marker>> {
        read_json(&self.marker(), "reading the lab marker")
    }

    fn write_marker(&self, marker: &Marker) -> Result<()> {
        write_json(&self.marker(), marker, "writing the lab marker")
    }

    /// The recorded state, if the lab got as far as starting a process.
    pub(crate) fn read_state(&self) -> Result<Option<LabState>> {
        read_json(&self.state(), "reading the lab state")
    }

    pub(crate) fn write_state(&self, state: &LabState) -> Result<()> {
        write_json(&self.state(), state, "writing the lab state")
    }
}

/// `/`, the home directory or a directory that contains it, and files are never lab directories.
fn refuse_protected(root: &Path) -> Result<()> {
    if root.exists() && !root.is_dir() {
        return Err(unsafe_dir(root, "is not a directory"));
    }
    let resolved = resolve(root)?;
    if resolved.parent().is_none() {
        return Err(unsafe_dir(root, "is the root directory"));
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    if let Some(home) = home.and_then(|h| h.canonicalize().ok())
        && home.starts_with(&resolved)
    {
        return Err(unsafe_dir(
            root,
            "is your home directory or contains it; use a directory of its own, such as \
             ~/.cache/fleetwatch/lab (the default)",
        ));
    }
    Ok(())
}

/// `path` with symlinks and `..` resolved as far as it exists, so `--dir /tmp/..` is seen as `/`.
fn resolve(path: &Path) -> Result<PathBuf> {
    let absolute =
        std::path::absolute(path).map_err(Error::io("resolving the lab directory", path))?;
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(resolved) = existing.canonicalize() {
            return Ok(rest.iter().rev().fold(resolved, |p, part| p.join(part)));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return Ok(absolute),
        }
    }
}

fn refuse_live(root: &Path, state: &LabState) -> Result<()> {
    let live: Vec<u32> = state
        .processes
        .iter()
        .filter(|p| p.is_running())
        .map(|p| p.pid)
        .collect();
    if state.processes.iter().any(|p| p.name == "kube-apiserver")
        && live.len() == state.processes.len()
    {
        return Err(Error::AlreadyRunning {
            dir: root.to_path_buf(),
            pids: live,
        });
    }
    Ok(())
}

fn is_empty(dir: &Path) -> Result<bool> {
    let mut entries = fs::read_dir(dir).map_err(Error::io("reading the lab directory", dir))?;
    Ok(entries.next().is_none())
}

fn unsafe_dir(dir: &Path, reason: &str) -> Error {
    Error::UnsafeDir {
        dir: dir.to_path_buf(),
        reason: reason.to_owned(),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &'static str) -> Result<Option<T>> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(what, path)(e)),
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|source| Error::State {
            path: path.to_path_buf(),
            source,
        })
}

fn write_json<T: Serialize>(path: &Path, value: &T, what: &'static str) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(|source| Error::State {
        path: path.to_path_buf(),
        source,
    })?;
    fs::write(path, json).map_err(Error::io(what, path))
}

/// Writes each file readable by its owner only (keys and certificates among them).
pub(crate) fn write_private(files: &[(PathBuf, String)]) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    for (path, text) in files {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(Error::io("writing a lab file", path))?;
        file.write_all(text.as_bytes())
            .map_err(Error::io("writing a lab file", path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn nothing_running(_: &LabState) {}

    fn write(path: &Path, text: &str) {
        fs::write(path, text).expect("write a user file");
    }

    #[tokio::test]
    async fn a_users_files_survive_up_and_down_and_an_existing_directory_stays() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("lab");
        fs::create_dir(&root).expect("mkdir");
        // A non-empty directory that is not a lab is refused, untouched.
        write(&root.join("notes.txt"), "mine");
        let refused = LabDir::prepare(&root, nothing_running).await;
        assert!(
            matches!(&refused, Err(Error::UnsafeDir { reason, .. }) if reason.contains(MARKER)),
            "{refused:?}"
        );
        assert_eq!(
            fs::read_to_string(root.join("notes.txt")).expect("kept"),
            "mine"
        );
        assert!(!root.join(MARKER).exists());

        // An empty directory the user made is used, and kept on removal.
        fs::remove_file(root.join("notes.txt")).expect("rm");
        let dir = LabDir::prepare(&root, nothing_running)
            .await
            .expect("empty dir");
        write(&dir.kubeconfig(), "lab's");
        // Files the user adds later, beside and inside the lab's own entries, survive.
        write(&root.join("notes.txt"), "mine");
        fs::create_dir(root.join("mine")).expect("mkdir");
        write(&root.join("mine").join("deep.txt"), "mine");
        dir.remove().expect("remove");
        assert!(!dir.kubeconfig().exists() && !dir.pki().exists() && !root.join(MARKER).exists());
        assert_eq!(
            fs::read_to_string(root.join("notes.txt")).expect("kept"),
            "mine"
        );
        assert_eq!(
            fs::read_to_string(root.join("mine/deep.txt")).expect("kept"),
            "mine"
        );
        assert!(LabDir::existing(&root).is_err(), "no lab is left to stop");
    }

    #[tokio::test]
    async fn a_directory_the_lab_created_goes_only_when_it_is_empty() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("new");
        let dir = LabDir::prepare(&root, nothing_running)
            .await
            .expect("new dir");
        dir.remove().expect("remove");
        assert!(!root.exists(), "the lab made it, and it was empty");

        let dir = LabDir::prepare(&root, nothing_running)
            .await
            .expect("new dir");
        write(&root.join("notes.txt"), "mine");
        dir.remove().expect("remove");
        assert_eq!(
            fs::read_to_string(root.join("notes.txt")).expect("kept"),
            "mine"
        );
    }

    #[tokio::test]
    async fn a_marked_directory_is_reused_and_its_old_entries_cleared() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("lab");
        let dir = LabDir::prepare(&root, nothing_running)
            .await
            .expect("first");
        write(&dir.log("etcd"), "old log");
        write(&root.join("notes.txt"), "mine");
        let again = LabDir::prepare(&root, nothing_running)
            .await
            .expect("second");
        assert!(!again.log("etcd").exists(), "the old lab's log is cleared");
        assert!(root.join("notes.txt").exists());
        again.remove().expect("remove");
        assert!(root.join("notes.txt").exists());
    }

    #[tokio::test]
    async fn root_home_and_files_are_refused() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("file");
        write(&file, "mine");
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .expect("HOME is set");
        let dotdot = tmp
            .path()
            .join("..")
            .join("..")
            .join("..")
            .join("..")
            .join("..");
        for (path, expected) in [
            (PathBuf::from("/"), "root directory"),
            (dotdot, "root directory"),
            (home.clone(), "home directory"),
            (
                home.parent().map(Path::to_path_buf).unwrap_or_default(),
                "directory",
            ),
            (file.clone(), "not a directory"),
        ] {
            for attempt in [
                LabDir::prepare(&path, nothing_running).await.map(|_| ()),
                LabDir::existing(&path).map(|_| ()),
            ] {
                match attempt {
                    Err(Error::UnsafeDir { reason, .. }) => {
                        assert!(reason.contains(expected), "{}: {reason}", path.display());
                    }
                    other => panic!("{}: expected a refusal, got {other:?}", path.display()),
                }
            }
        }
        assert_eq!(fs::read_to_string(&file).expect("kept"), "mine");
    }
}
