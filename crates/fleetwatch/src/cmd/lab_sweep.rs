//! `fleetwatch lab sweep`: every pattern at every cluster size, as a CSV and a plot.

#[derive(Debug, clap::Args)]
pub struct SweepArgs {}

pub async fn run(_args: SweepArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet implemented")
}
