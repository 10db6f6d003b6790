//! `tl keygen`. Owned by the policy work (signing keys); x25519 keys come from `tl_seal`.

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_a: Args) -> anyhow::Result<()> {
    anyhow::bail!("tl keygen is not built yet")
}
