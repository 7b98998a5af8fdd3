//! `fleetwatch replay`: the 2024-12-11 incident in the fleet simulator.

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`fleetwatch replay` is not built yet: the fleet simulator issue fills it in")
}
