//! `tl policy init|sign|verify|show`.

#[derive(Debug, clap::Subcommand)]
pub enum Cmd {}

pub fn run(c: Cmd) -> anyhow::Result<()> {
    match c {}
}
