//! The analytics service (to come).

use clap::Args;

use crate::common::config::ServiceArgs;

#[derive(Debug, Clone, Args)]
pub struct AnalyticsArgs {
    #[command(flatten)]
    pub service: ServiceArgs,
}

pub async fn run(_args: AnalyticsArgs) -> anyhow::Result<()> {
    anyhow::bail!("analytics: not yet built")
}
