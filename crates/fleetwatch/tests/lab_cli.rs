//! `fleetwatch lab up` / `lab down` as a user runs them: real processes, stopped completely.

use std::path::Path;
use std::process::{Command, Output};

fn fleetwatch(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fleetwatch"))
        .args(args)
        .output()
        .expect("run fleetwatch")
}

fn succeed(args: &[&str]) -> String {
    let out = fleetwatch(args);
    assert!(
        out.status.success(),
        "fleetwatch {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Pids of live processes whose command line mentions `dir`: the lab's own processes.
fn processes_using(dir: &Path) -> Vec<u32> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
        })
        .collect()
}

fn recorded_pids(dir: &Path) -> Vec<(String, u32)> {
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).expect("state.json"))
            .expect("state json");
    state["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .map(|p| {
            let pid = p["pid"]
                .as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .expect("pid");
            (p["name"].as_str().expect("name").to_owned(), pid)
        })
        .collect()
}

#[test]
fn lab_up_then_down_leaves_no_process_of_ours() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("lab");
    let dir_arg = dir.to_str().expect("utf-8 path");
    let stdout = succeed(&[
        "lab",
        "up",
        "--dir",
        dir_arg,
        "--nodes",
        "4",
        "--pods-per-node",
        "3",
    ]);
    let kubeconfig = dir.join("kubeconfig");
    assert!(
        stdout.contains(&format!("export KUBECONFIG={}", kubeconfig.display())),
        "{stdout}"
    );
    assert!(kubeconfig.is_file());

    let recorded = recorded_pids(&dir);
    let names: Vec<&str> = recorded.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["etcd", "kube-apiserver"]);
    let mut running = processes_using(&dir);
    running.sort_unstable();
    let mut pids: Vec<u32> = recorded.iter().map(|(_, p)| *p).collect();
    pids.sort_unstable();
    assert_eq!(running, pids, "exactly the recorded processes run");

    let status = succeed(&["lab", "status", "--dir", dir_arg]);
    assert_eq!(status.matches(" running").count(), 2, "{status}");

    succeed(&["lab", "down", "--dir", dir_arg]);
    assert_eq!(processes_using(&dir), Vec::<u32>::new());
    assert!(
        !dir.exists(),
        "lab down removes the directory lab up created"
    );
}

#[test]
fn leftovers_of_a_crashed_lab_are_cleaned_up() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("lab");
    let dir_arg = dir.to_str().expect("utf-8 path");
    succeed(&["lab", "up", "--dir", dir_arg]);

    // A second `up` on a live lab refuses and says how to stop it.
    let again = fleetwatch(&["lab", "up", "--dir", dir_arg]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("lab down"));

    // Crash: the API server dies, etcd is left behind.
    let (_, apiserver) = recorded_pids(&dir)
        .into_iter()
        .find(|(n, _)| n == "kube-apiserver")
        .expect("pid");
    Command::new("kill")
        .args(["-9", &apiserver.to_string()])
        .status()
        .expect("kill");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(
        processes_using(&dir).len(),
        1,
        "etcd outlives the crashed API server"
    );

    // `lab up` in the same place cleans up and starts afresh; `lab down` then stops everything.
    succeed(&["lab", "up", "--dir", dir_arg]);
    assert_eq!(processes_using(&dir).len(), 2);
    succeed(&["lab", "down", "--dir", dir_arg]);
    assert_eq!(processes_using(&dir), Vec::<u32>::new());
}

#[test]
fn building_without_go_says_so() {
    let cache = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_fleetwatch"))
        .args(["lab", "build"])
        .env("FLEETWATCH_CACHE", cache.path())
        .env("PATH", "/nonexistent")
        .output()
        .expect("run fleetwatch");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no Go toolchain"), "{stderr}");
}

#[test]
fn a_users_files_survive_lab_up_and_down() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("project");
    std::fs::create_dir_all(dir.join("src")).expect("mkdir");
    std::fs::write(dir.join("notes.txt"), "mine").expect("write");
    std::fs::write(dir.join("src").join("main.rs"), "fn main() {}").expect("write");
    let dir_arg = dir.to_str().expect("utf-8 path");

    // Not empty and not a lab: refused before anything is touched.
    let refused = fleetwatch(&["lab", "up", "--dir", dir_arg]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("not a fleetwatch lab"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(&dir).expect("dir").count(),
        2,
        "nothing added"
    );
    let down = fleetwatch(&["lab", "down", "--dir", dir_arg]);
    assert!(!down.status.success(), "there is no lab to stop");

    // A lab in an empty directory the user made; the user adds files while it runs.
    let lab = dir.join("lab");
    std::fs::create_dir(&lab).expect("mkdir");
    let lab_arg = lab.to_str().expect("utf-8 path");
    succeed(&["lab", "up", "--dir", lab_arg]);
    std::fs::write(lab.join("my-notes.txt"), "mine").expect("write");
    std::fs::write(lab.join("logs").join("mine.txt"), "mine").expect("write");
    succeed(&["lab", "down", "--dir", lab_arg]);
    assert_eq!(processes_using(&lab), Vec::<u32>::new());
    assert_eq!(
        std::fs::read_to_string(lab.join("my-notes.txt")).expect("kept"),
        "mine"
    );
    assert!(!lab.join("kubeconfig").exists() && !lab.join("pki").exists());
    // Inside an entry the lab made, the lab's rule is the entry: `logs/` goes as a whole.
    assert!(!lab.join("logs").exists());
    assert_eq!(
        std::fs::read_to_string(dir.join("notes.txt")).expect("kept"),
        "mine"
    );
    assert!(dir.join("src").join("main.rs").exists());
}

#[test]
fn root_home_and_a_file_are_refused_as_lab_directories() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("file");
    std::fs::write(&file, "mine").expect("write");
    let home = std::env::var("HOME").expect("HOME");
    for (dir, expected) in [
        ("/", "root directory"),
        (home.as_str(), "home directory"),
        (file.to_str().expect("utf-8"), "not a directory"),
    ] {
        for command in ["up", "down"] {
            let out = fleetwatch(&["lab", command, "--dir", dir]);
            assert!(!out.status.success(), "lab {command} --dir {dir}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(expected),
                "lab {command} --dir {dir}: {stderr}"
            );
        }
    }
    assert_eq!(std::fs::read_to_string(&file).expect("kept"), "mine");
}

#[test]
fn load_settings_out_of_range_name_the_flag() {
    for (flag, value) in [
        ("--list-interval", "0s"),
        ("--churn", "nan"),
        ("--churn", "inf"),
        ("--churn", "1e10"),
        ("--churn", "-1"),
        ("--max-duration", "99999999999999999999m"),
        ("--max-duration", "307445734561825861m"),
        ("--max-duration", "601s"),
        ("--probe-interval", "0ms"),
    ] {
        // `--flag=value`, so that clap reads `-1` as a value.
        let out = fleetwatch(&[
            "lab",
            "load",
            "--dir",
            "/nonexistent",
            &format!("{flag}={value}"),
        ]);
        assert!(!out.status.success(), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(flag) && stderr.contains(value),
            "{flag} {value}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{flag} {value}: {stderr}");
    }
}

#[test]
fn an_unknown_kubernetes_release_is_refused_with_the_known_ones() {
    for args in [
        &["lab", "build", "--kube-version", "1.29"][..],
        &["lab", "up", "--kube-version", "v1.31.0"][..],
        &["replay", "--kube-version", "1.29"][..],
    ] {
        let out = fleetwatch(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("1.37") && stderr.contains("1.30"),
            "{args:?}: {stderr}"
        );
    }
    // A calibration file and a built-in one cannot both be asked for.
    let out = fleetwatch(&[
        "replay",
        "--kube-version",
        "1.37",
        "--calibration",
        "c.toml",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot be used with"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
