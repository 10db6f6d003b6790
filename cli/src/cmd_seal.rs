//! `tl seal`, `tl grant`, `tl open`.

#[derive(Debug, clap::Args)]
pub struct SealArgs {}
#[derive(Debug, clap::Args)]
pub struct GrantArgs {}
#[derive(Debug, clap::Args)]
pub struct OpenArgs {}

pub fn seal(_a: SealArgs) -> anyhow::Result<()> {
    anyhow::bail!("tl seal is not built yet")
}
pub fn grant(_a: GrantArgs) -> anyhow::Result<()> {
    anyhow::bail!("tl grant is not built yet")
}
pub fn open(_a: OpenArgs) -> anyhow::Result<()> {
    anyhow::bail!("tl open is not built yet")
}
