//! The orders service (to come in the next commit).

use crate::common::config::ServiceArgs;

pub async fn run(_args: ServiceArgs) -> anyhow::Result<()> {
    anyhow::bail!("orders: not yet built")
}
