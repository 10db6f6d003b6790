//! Output helpers shared by every command: human text or one JSON document.

use serde::Serialize;

/// Print `value` as pretty JSON when `json` is set, otherwise call `human`.
pub fn emit<T: Serialize>(json: bool, value: &T, human: impl FnOnce(&T)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        human(value);
    }
    Ok(())
}

/// One line on stderr naming the problem: `error: <context>: <cause>`.
pub fn error(e: &anyhow::Error) {
    eprintln!("error: {e:#}");
}
