//! One module per subcommand: its clap `Args` and a `run`.

pub mod collector;
pub mod lab;
pub mod lab_calibrate;
pub mod lab_load;
pub mod lab_sweep;
pub mod replay;
pub mod sim;
pub mod top;
