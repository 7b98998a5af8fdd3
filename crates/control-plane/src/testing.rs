//! Test support: one real control plane per test binary, shared by its tests, stopped when the
//! binary exits — also when tests panic (the harness still exits normally, and an `atexit` hook
//! stops the processes). A binary killed outright leaves a directory whose owner pid is dead; the
//! next test binary to start cleans those up.
//!
//! Tests isolate themselves by namespace. A test that needs the control plane and cannot get one
//! panics with the reason: it never skips.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::plane::{ControlPlane, LabOptions};

static SHARED: OnceLock<ControlPlane> = OnceLock::new();

/// The shared control plane of this test binary (with kube-controller-manager), started on first
/// use. Panics, with the build or start-up error, if it cannot be had.
pub fn shared() -> &'static ControlPlane {
    start_shared(false)
}

/// [`shared`], with every request written to [`ControlPlane::audit_log`]. A test binary uses
/// one or the other: the first call starts the plane.
pub fn shared_with_audit_log() -> &'static ControlPlane {
    let plane = start_shared(true);
    assert!(
        plane.audit_log().exists(),
        "the shared control plane was started without an audit log: call shared_with_audit_log \
         first in this test binary"
    );
    plane
}

fn start_shared(audit_log: bool) -> &'static ControlPlane {
    SHARED.get_or_init(|| {
        let base = tests_dir();
        let mut options = LabOptions::new(base.join(format!("pid-{}", std::process::id())));
        options.controllers = true;
        options.audit_log = audit_log;
        // Start on a thread of its own with its own runtime: callers may be inside any runtime.
        let plane = std::thread::spawn(move || {
            runtime().block_on(async {
                clean_dead_test_labs(&base).await;
                ControlPlane::start(options).await
            })
        })
        .join()
        .expect("the control-plane start-up thread panicked")
        .unwrap_or_else(|e| panic!("cannot start the test control plane: {e}"));
        // SAFETY: registers a plain `extern "C" fn` with no captured state.
        unsafe {
            libc::atexit(stop_shared);
        }
        plane
    })
}

extern "C" fn stop_shared() {
    if let Some(plane) = SHARED.get()
        && let Err(e) = runtime().block_on(plane.stop())
    {
        eprintln!("stopping the test control plane: {e}");
    }
}

/// A runtime of its own: start-up and the exit hook run outside any test's runtime.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the test control plane")
}

/// Where test labs live: `$FLEETWATCH_TEST_DIR`, else `<tmp>/fleetwatch-test`.
fn tests_dir() -> PathBuf {
    std::env::var_os("FLEETWATCH_TEST_DIR").map_or_else(
        || std::env::temp_dir().join("fleetwatch-test"),
        PathBuf::from,
    )
}

/// Stops and removes labs of test binaries that died without cleaning up.
async fn clean_dead_test_labs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("pid-"))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let owner_alive = Path::new(&format!("/proc/{pid}")).exists();
        if !owner_alive && let Err(e) = crate::plane::down(&entry.path()).await {
            tracing::warn!("cleaning up {}: {e}", entry.path().display());
        }
    }
}

/// A control plane of one test's own, for tests that restart, freeze or reconfigure it: stopped
/// when dropped, also when the test fails.
#[derive(Debug)]
pub struct Dedicated(Option<ControlPlane>);

impl Dedicated {
    /// Starts a control plane with `options` (see [`ControlPlane::start`]).
    pub async fn start(options: LabOptions) -> crate::error::Result<Dedicated> {
        ControlPlane::start(options)
            .await
            .map(|plane| Dedicated(Some(plane)))
    }
}

impl std::ops::Deref for Dedicated {
    type Target = ControlPlane;

    fn deref(&self) -> &ControlPlane {
        // Taken only in `drop`.
        self.0.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for Dedicated {
    fn drop(&mut self) {
        let Some(plane) = self.0.take() else { return };
        // Its own thread and runtime: this may run inside the test's runtime, or unwinding.
        let stopped = std::thread::spawn(move || runtime().block_on(plane.stop())).join();
        if !matches!(stopped, Ok(Ok(()))) {
            eprintln!("stopping a test's own control plane failed: {stopped:?}");
        }
    }
}
