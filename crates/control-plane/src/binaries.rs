//! The pinned control-plane binaries, built from Go modules into a per-version cache outside the
//! repo (`$FLEETWATCH_CACHE`, default `~/.cache/fleetwatch`) and reused while present.
//!
//! The Go wrapper modules live in `tools/control-plane/`, `tools/kube-state-metrics/`,
//! `tools/helm/` and `tools/kwok/` and are compiled into this crate, so the `fleetwatch` binary can build them from any directory. Why
//! wrappers at all: `go install k8s.io/kubernetes/cmd/kube-apiserver@v1.37.2` is refused because
//! k8s.io/kubernetes replaces its staging modules with local paths; the wrapper points each at its
//! release. `go install k8s.io/kube-state-metrics/v2@v2.20.0` is refused too (the proxy does not
//! list its versions); a wrapper requiring the exact version resolves.
//!
//! kube-state-metrics, Helm and kwok are not part of the control plane: they are [`Tool`]s, built
//! only when asked for. kube-scheduler is part of a release but built for a lab only when the lab
//! runs it (see [`Binaries::ensure`]).

use std::fs::{self, File};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::error::{Error, Result};
use crate::process::log_tail;

/// The Kubernetes release the lab runs unless told otherwise (matches `k8s-openapi`'s `v1_37`).
pub const KUBERNETES_VERSION: &str = DEFAULT_RELEASE.kubernetes;
/// The etcd release the default lab runs.
pub const ETCD_VERSION: &str = DEFAULT_RELEASE.etcd;
/// The kube-state-metrics release whose families the collector matches exactly.
pub const KUBE_STATE_METRICS_VERSION: &str = "v2.20.0";
/// The Helm release that lints and renders the chart.
pub const HELM_VERSION: &str = "v4.3.2";
/// The kwok release that plays kubelet for the lab's fake nodes.
pub const KWOK_VERSION: &str = "v0.8.0";

/// A Kubernetes release the lab can run: its kube-apiserver, kube-controller-manager and
/// kube-scheduler, and the etcd it was released with (kubeadm's `DefaultEtcdVersion` in that release's source).
#[derive(Debug)]
pub struct Release {
    /// `v1.37.2`.
    pub kubernetes: &'static str,
    /// `v3.6.16`.
    pub etcd: &'static str,
    kubernetes_module: GoModule,
    etcd_module: GoModule,
}

/// A file of a wrapper module under `tools/control-plane/`, e.g. `("etcd-", "v3.6.16", "/go.mod")`.
macro_rules! wrapper_file {
    ($($part:literal),+) => {
        include_str!(concat!("../../../tools/control-plane/", $($part),+))
    };
}

/// A [`Release`] of Kubernetes `$kubernetes` (minor version `$minor`) with etcd `$etcd`, from
/// the wrapper modules `tools/control-plane/{kubernetes,etcd}-<version>/`.
macro_rules! release {
    ($kubernetes:literal, $minor:literal, $etcd:literal) => {
        Release {
            kubernetes: $kubernetes,
            etcd: $etcd,
            kubernetes_module: GoModule {
                name: "kubernetes",
                version: $kubernetes,
                go_mod: wrapper_file!("kubernetes-", $kubernetes, "/go.mod"),
                go_sum: wrapper_file!("kubernetes-", $kubernetes, "/go.sum"),
                commands: KUBERNETES_COMMANDS,
                // Without these the servers report `v0.0.0-master`.
                ldflags: concat!(
                    "-s -w -X k8s.io/component-base/version.gitVersion=",
                    $kubernetes,
                    " -X k8s.io/component-base/version.gitMajor=1",
                    " -X k8s.io/component-base/version.gitMinor=",
                    $minor
                ),
            },
            etcd_module: GoModule {
                name: "etcd",
                version: $etcd,
                go_mod: wrapper_file!("etcd-", $etcd, "/go.mod"),
                go_sum: wrapper_file!("etcd-", $etcd, "/go.sum"),
                commands: ETCD_COMMANDS,
                ldflags: "-s -w",
            },
        }
    };
}

/// Today's API server: consistent LISTs served from the watch cache (KEP-2340, GA in 1.34) and
/// streamed LIST responses.
pub const V1_37: Release = release!("v1.37.2", "37", "v3.6.16");

/// The incident's era (December 2024): a LIST without resourceVersion is a quorum read from
/// etcd, and the API server builds the whole response in memory before sending it.
pub const V1_30: Release = release!("v1.30.14", "30", "v3.5.15");

/// Every release the lab can build, newest first.
pub const RELEASES: [&Release; 2] = [&V1_37, &V1_30];
/// What the lab runs unless told otherwise.
pub const DEFAULT_RELEASE: &Release = &V1_37;

impl Release {
    /// The release `version` names: `v1.30.14`, `1.30.14`, or a minor (`1.30`, `v1.30`).
    pub fn find(version: &str) -> std::result::Result<&'static Release, String> {
        let wanted = version.trim().trim_start_matches('v');
        RELEASES
            .into_iter()
            .find(|r| {
                let full = r.kubernetes.trim_start_matches('v');
                full == wanted || r.minor() == wanted
            })
            .ok_or_else(|| {
                let known: Vec<_> = RELEASES.iter().map(|r| r.kubernetes).collect();
                format!(
                    "no pinned Kubernetes release `{version}`; expected one of {} (or its minor, e.g. 1.30)",
                    known.join(", ")
                )
            })
    }

    /// `1.30` for `v1.30.14`.
    pub fn minor(&self) -> &'static str {
        let full = self.kubernetes.trim_start_matches('v');
        full.rfind('.').map_or(full, |dot| &full[..dot])
    }
}

const KUBERNETES_COMMANDS: &[(&str, &str)] = &[
    ("kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver"),
    (
        "kube-controller-manager",
        "k8s.io/kubernetes/cmd/kube-controller-manager",
    ),
    (KUBE_SCHEDULER, "k8s.io/kubernetes/cmd/kube-scheduler"),
];

/// Built only for labs that run it (or by `lab build`): a lab without it never waits for it.
const KUBE_SCHEDULER: &str = "kube-scheduler";

const ETCD_COMMANDS: &[(&str, &str)] = &[("etcd", "go.etcd.io/etcd/server/v3")];

/// A Go wrapper module and the commands built from it.
#[derive(Debug)]
struct GoModule {
    name: &'static str,
    version: &'static str,
    go_mod: &'static str,
    go_sum: &'static str,
    /// (output file name, Go package path)
    commands: &'static [(&'static str, &'static str)],
    ldflags: &'static str,
}

const KUBE_STATE_METRICS: GoModule = GoModule {
    name: "kube-state-metrics",
    version: KUBE_STATE_METRICS_VERSION,
    go_mod: include_str!("../../../tools/kube-state-metrics/go.mod"),
    go_sum: include_str!("../../../tools/kube-state-metrics/go.sum"),
    // The module root is its `package main`.
    commands: &[("kube-state-metrics", "k8s.io/kube-state-metrics/v2")],
    // What its Makefile sets, so `kube-state-metrics version` and its build-info metric say what
    // it is (client-go is the version its go.mod requires).
    ldflags: "-s -w -X github.com/prometheus/common/version.Version=v2.20.0 \
              -X k8s.io/kube-state-metrics/v2/pkg/app.ClientGoVersion=v0.36.3",
};

const HELM: GoModule = GoModule {
    name: "helm",
    version: HELM_VERSION,
    go_mod: include_str!("../../../tools/helm/go.mod"),
    go_sum: include_str!("../../../tools/helm/go.sum"),
    commands: &[("helm", "helm.sh/helm/v4/cmd/helm")],
    // What its Makefile sets, so `helm version` says what it is (and `helm lint` checks a chart's
    // `kubeVersion` against a real version, not `v0.0.0`).
    ldflags: "-s -w -X helm.sh/helm/v4/internal/version.version=v4.3.2 \
              -X helm.sh/helm/v4/internal/version.metadata=",
};

const KWOK: GoModule = GoModule {
    name: "kwok",
    version: KWOK_VERSION,
    go_mod: include_str!("../../../tools/kwok/go.mod"),
    go_sum: include_str!("../../../tools/kwok/go.sum"),
    commands: &[("kwok", "sigs.k8s.io/kwok/cmd/kwok")],
    // What its Makefile sets (`VERSION` from the git tag, `KubeVersion` from the first line of its
    // supported_releases.txt), so `kwok --version` and its User-Agent say what it is.
    ldflags: "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v0.8.0 \
              -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=v1.36.1",
};

/// A tool built from Go modules only when asked for, so starting a lab never waits for it:
/// kube-state-metrics, the compatibility oracle for the collector's object-state families;
/// Helm, which lints and renders the chart under `deploy/helm/`; and kwok, which a lab runs
/// with [`LabOptions::kwok`](crate::LabOptions::kwok) to play kubelet for fake nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    KubeStateMetrics,
    Helm,
    Kwok,
}

impl Tool {
    /// Every tool, in the order `lab build` builds them.
    pub const ALL: [Tool; 3] = [Tool::KubeStateMetrics, Tool::Helm, Tool::Kwok];

    fn module(self) -> &'static GoModule {
        match self {
            Tool::KubeStateMetrics => &KUBE_STATE_METRICS,
            Tool::Helm => &HELM,
            Tool::Kwok => &KWOK,
        }
    }

    /// The pinned release, e.g. `v4.3.2`.
    pub fn version(self) -> &'static str {
        self.module().version
    }

    /// Where the tool's binary lives in `cache`, whether or not it is built yet.
    pub fn in_cache(self, cache: &Path) -> PathBuf {
        let module = self.module();
        module.bin_dir(cache).join(module.commands[0].0)
    }

    /// The cached binary, built from Go modules first if missing (a few minutes the first time);
    /// `on_step` hears each step. Waits on the same lock file as [`Binaries::ensure`].
    pub fn ensure(self, cache: &Path, on_step: &mut dyn FnMut(&str)) -> Result<PathBuf> {
        let wanted = self.in_cache(cache);
        if wanted.is_file() {
            return Ok(wanted);
        }
        fs::create_dir_all(cache).map_err(Error::io("creating the cache directory", cache))?;
        let _lock = lock(&cache.join(".build.lock"))?;
        self.module().build_missing(cache, &[], on_step)?;
        Ok(wanted)
    }
}

/// Paths of the built control-plane binaries.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub etcd: PathBuf,
    pub kube_apiserver: PathBuf,
    pub kube_controller_manager: PathBuf,
    /// Present only once a lab that runs it, or `lab build`, has built it.
    pub kube_scheduler: PathBuf,
}

/// `$FLEETWATCH_CACHE`, else `~/.cache/fleetwatch`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FLEETWATCH_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache").join("fleetwatch")
}

impl Binaries {
    /// Where `release`'s binaries live in `cache`, whether or not they are built yet.
    pub fn in_cache(cache: &Path, release: &Release) -> Self {
        let k8s = release.kubernetes_module.bin_dir(cache);
        Binaries {
            etcd: release.etcd_module.bin_dir(cache).join("etcd"),
            kube_apiserver: k8s.join("kube-apiserver"),
            kube_controller_manager: k8s.join("kube-controller-manager"),
            kube_scheduler: k8s.join(KUBE_SCHEDULER),
        }
    }

    /// Returns `release`'s cached binaries, building whichever are missing first (kube-scheduler
    /// only `with_scheduler`). Building takes many minutes and a few GiB of memory on two cores
    /// the first time; `on_step` hears each step. Concurrent callers (several test binaries,
    /// `lab up`) wait for one another on a lock file.
    pub fn ensure(
        cache: &Path,
        release: &Release,
        with_scheduler: bool,
        on_step: &mut dyn FnMut(&str),
    ) -> Result<Self> {
        let wanted = Self::in_cache(cache, release);
        let mut needed = vec![
            &wanted.etcd,
            &wanted.kube_apiserver,
            &wanted.kube_controller_manager,
        ];
        if with_scheduler {
            needed.push(&wanted.kube_scheduler);
        }
        if needed.iter().all(|p| p.is_file()) {
            return Ok(wanted);
        }
        fs::create_dir_all(cache).map_err(Error::io("creating the cache directory", cache))?;
        let _lock = lock(&cache.join(".build.lock"))?;
        let skip: &[&str] = if with_scheduler {
            &[]
        } else {
            &[KUBE_SCHEDULER]
        };
        release.etcd_module.build_missing(cache, &[], on_step)?;
        release
            .kubernetes_module
            .build_missing(cache, skip, on_step)?;
        Ok(wanted)
    }
}

impl GoModule {
    fn bin_dir(&self, cache: &Path) -> PathBuf {
        cache
            .join("bin")
            .join(format!("{}-{}", self.name, self.version))
    }

    /// Builds the commands whose binaries are missing, except those named in `skip`.
    fn build_missing(
        &self,
        cache: &Path,
        skip: &[&str],
        on_step: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let bin_dir = self.bin_dir(cache);
        let missing: Vec<_> = self
            .commands
            .iter()
            .filter(|(file, _)| !skip.contains(file) && !bin_dir.join(file).is_file())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        go_version()?;
        let src = cache
            .join("src")
            .join(format!("{}-{}", self.name, self.version));
        let logs = cache.join("logs");
        for dir in [&src, &logs, &bin_dir] {
            fs::create_dir_all(dir).map_err(Error::io("creating a cache directory", dir))?;
        }
        for (file, text) in [("go.mod", self.go_mod), ("go.sum", self.go_sum)] {
            let path = src.join(file);
            fs::write(&path, text).map_err(Error::io("writing the Go wrapper module", &path))?;
        }

        on_step(&format!(
            "downloading Go modules for {} {}",
            self.name, self.version
        ));
        let log = logs.join(format!("{}-{}-download.log", self.name, self.version));
        run_logged(
            self.name,
            "go mod download",
            go(&src).arg("mod").arg("download"),
            &log,
        )?;

        for (file, package) in missing {
            on_step(&format!(
                "building {file} {} (several minutes on first use)",
                self.version
            ));
            let partial = bin_dir.join(format!(".{file}.partial-{}", std::process::id()));
            let log = logs.join(format!("{file}-{}-build.log", self.version));
            let mut cmd = go(&src);
            cmd.args(["build", "-trimpath", "-ldflags", self.ldflags, "-o"])
                .arg(&partial)
                .arg(package);
            run_logged(self.name, &format!("go build {package}"), &mut cmd, &log)?;
            let target = bin_dir.join(file);
            fs::rename(&partial, &target)
                .map_err(Error::io("installing a built binary", &target))?;
        }
        Ok(())
    }
}

fn go(module_dir: &Path) -> Command {
    let mut cmd = Command::new("go");
    cmd.current_dir(module_dir)
        .env("CGO_ENABLED", "0")
        .env("GOFLAGS", "-mod=readonly");
    cmd
}

fn go_version() -> Result<()> {
    match Command::new("go")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) if status.success() => Ok(()),
        _ => Err(Error::NoGo),
    }
}

/// Runs `cmd` with its output in `log`; on failure the error names the step and the log.
fn run_logged(component: &'static str, step: &str, cmd: &mut Command, log: &Path) -> Result<()> {
    let out = File::create(log).map_err(Error::io("creating a build log", log))?;
    let err = out
        .try_clone()
        .map_err(Error::io("creating a build log", log))?;
    let status = cmd.stdout(out).stderr(err).status();
    let failed = match status {
        Ok(s) if s.success() => return Ok(()),
        Ok(s) => s.to_string(),
        Err(e) => e.to_string(),
    };
    Err(Error::Build {
        component,
        step: format!("{step} ({failed})"),
        log: log.to_path_buf(),
        tail: log_tail(log, 15),
    })
}

/// An exclusive `flock` held until dropped (the file closes with it).
fn lock(path: &Path) -> Result<File> {
    let file = File::create(path).map_err(Error::io("creating the build lock", path))?;
    // SAFETY: flock on a file descriptor we own; it stays open for as long as the lock is held.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
    if rc != 0 {
        return Err(Error::io("locking the build cache", path)(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_release_is_found_by_its_version_or_minor_and_an_unknown_one_is_refused() {
        for name in ["v1.30.14", "1.30.14", "1.30", "v1.30", " 1.30 "] {
            assert_eq!(
                Release::find(name).map(|r| r.kubernetes),
                Ok("v1.30.14"),
                "{name}"
            );
        }
        assert_eq!(Release::find("1.37").map(|r| r.etcd), Ok("v3.6.16"));
        for name in ["1.3", "1.30.1", "1.31", "", "v"] {
            let message = Release::find(name).expect_err(name);
            assert!(message.contains("v1.37.2, v1.30.14"), "{message}");
        }
        assert_eq!(DEFAULT_RELEASE.kubernetes, KUBERNETES_VERSION);
    }

    #[test]
    fn each_release_has_its_own_cache_directories() {
        let cache = Path::new("/cache");
        let (new, old) = (
            Binaries::in_cache(cache, &V1_37),
            Binaries::in_cache(cache, &V1_30),
        );
        assert_eq!(new.etcd, Path::new("/cache/bin/etcd-v3.6.16/etcd"));
        assert_eq!(
            old.kube_apiserver,
            Path::new("/cache/bin/kubernetes-v1.30.14/kube-apiserver")
        );
        // kube-scheduler comes from the same wrapper module as the API server.
        assert_eq!(
            new.kube_scheduler,
            Path::new("/cache/bin/kubernetes-v1.37.2/kube-scheduler")
        );
        // The version each build stamps into its binaries is its own.
        for release in RELEASES {
            let ldflags = release.kubernetes_module.ldflags;
            assert!(
                ldflags.contains(&format!("gitVersion={}", release.kubernetes)),
                "{ldflags}"
            );
            // Each release builds from its own pinned wrapper modules.
            let pins = |go_mod: &str, module: &str, version: &str| {
                go_mod.contains(&format!("{module} {version}"))
            };
            let k8s = &release.kubernetes_module;
            assert!(
                pins(k8s.go_mod, "k8s.io/kubernetes", release.kubernetes),
                "{}",
                k8s.version
            );
            let etcd = &release.etcd_module;
            assert!(
                pins(etcd.go_mod, "go.etcd.io/etcd/server/v3", release.etcd),
                "{}",
                etcd.version
            );
            let minor = release.minor().rsplit('.').next().unwrap_or_default();
            assert!(ldflags.contains(&format!("gitMinor={minor}")), "{ldflags}");
        }
    }

    #[test]
    fn each_tool_pins_and_stamps_its_own_release() {
        for (tool, module) in [
            (Tool::KubeStateMetrics, "k8s.io/kube-state-metrics/v2"),
            (Tool::Helm, "helm.sh/helm/v4"),
            (Tool::Kwok, "sigs.k8s.io/kwok"),
        ] {
            let built = tool.module();
            let version = tool.version();
            assert!(
                built.go_mod.contains(&format!("{module} {version}")),
                "{module} {version}"
            );
            assert!(
                built.ldflags.contains(&format!("={version}")),
                "{}",
                built.ldflags
            );
        }
        assert_eq!(
            Tool::Helm.in_cache(Path::new("/cache")),
            Path::new("/cache/bin/helm-v4.3.2/helm")
        );
        assert_eq!(
            Tool::Kwok.in_cache(Path::new("/cache")),
            Path::new("/cache/bin/kwok-v0.8.0/kwok")
        );
    }
}
