//! One module per subcommand: its clap `Args` and an async `run`.

pub mod lab;
pub mod lab_load;
pub mod replay;
pub mod sim;
