//! A lab process that dies during a run (the incident-era API server OOM-killed in a sweep) is
//! named in the run's error, instead of the "connection refused" its clients saw.

use std::time::Duration;

use fleetwatch_control_plane::LabOptions;
use fleetwatch_control_plane::testing::Dedicated;
use fleetwatch_load_lab::{self as load, LabError, LoadSettings, LoadSpec, Pattern};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_whose_api_server_dies_says_which_process_died() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let plane = Dedicated::start(LabOptions::new(tmp.path().join("lab")))
        .await
        .expect("a control plane of the test's own");
    let spec = LoadSpec {
        pattern: Pattern::NaiveList,
        agents: 3,
        nodes: 0,
        pods: 0,
        settings: LoadSettings {
            duration: Duration::from_secs(5),
            list_interval: Duration::from_secs(1),
            churn_per_second: 0.0,
            probe_interval: Duration::from_millis(100),
        },
    };
    let pid = plane.pid("kube-apiserver").expect("an API server");
    let killer = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        // SAFETY: signals the lab's own API server, whose pid the lab recorded.
        assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGKILL) }, 0);
    };
    let (ran, ()) = tokio::join!(load::run(&plane, &spec), killer);
    match ran {
        Err(LabError::ProcessDied {
            process,
            pid: died,
            pattern,
            ..
        }) => {
            assert_eq!((process.as_str(), died), ("kube-apiserver", pid));
            assert_eq!(pattern, "naive-list");
        }
        other => panic!("expected the API server's death, got {other:?}"),
    }
}
