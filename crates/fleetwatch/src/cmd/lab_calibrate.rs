//! `fleetwatch lab calibrate`: fit the simulator's cost model to a sweep's measurements.

#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {}

pub fn run(_args: CalibrateArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet implemented")
}
