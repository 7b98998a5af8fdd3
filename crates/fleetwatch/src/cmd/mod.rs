//! One module per subcommand: its clap `Args` and a `run`; and [`terminated`], how the services
//! (collector, agent) learn to stop.

pub mod agent;
pub mod collector;
pub mod lab;
pub mod lab_calibrate;
pub mod lab_load;
pub mod lab_sweep;
pub mod replay;
pub mod sim;
pub mod top;

/// Completes on SIGTERM (how Kubernetes stops a pod) or Ctrl-C.
pub async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let sigterm = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = sigterm => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
