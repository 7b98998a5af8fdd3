//! `fleetwatch sim`: the fleet simulator on a user's own fleet and change.

#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("`fleetwatch sim` is not built yet: the fleet simulator issue fills it in")
}
