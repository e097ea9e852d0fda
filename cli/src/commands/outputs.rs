//! `sdp outputs`: the stack's outputs as a table, JSON or `KEY=value` lines, on stdout. `sdp local`
//! prints its URLs the same way.

use std::collections::BTreeMap;

use crate::args::OutputFormat;

#[cfg(feature = "aws")]
pub async fn run(args: &crate::args::OutputsArgs) -> Result<(), crate::exit::Failure> {
    let (_, stack) = super::existing_stack(&args.stack).await?;
    print(&stack.outputs, args.format);
    Ok(())
}

/// Prints outputs in `format` on stdout.
pub fn print(outputs: &[(String, String)], format: OutputFormat) {
    let sorted: BTreeMap<&str, &str> = outputs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    match format {
        OutputFormat::Table => {
            let width = sorted.keys().map(|k| k.len()).max().unwrap_or(0);
            for (key, value) in sorted {
                println!("{key:<width$}  {value}");
            }
        }
        OutputFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&sorted).unwrap_or_else(|_| "{}".into())
            );
        }
        OutputFormat::Env => {
            for (key, value) in sorted {
                println!("{key}={value}");
            }
        }
    }
}

/// Writes outputs as JSON into `path`, merged over what the file holds, replaced atomically
/// (written beside it, then renamed) so a reader never sees half a file.
#[cfg(feature = "aws")]
pub fn write_file(path: &std::path::Path, outputs: &[(String, String)]) -> anyhow::Result<()> {
    use anyhow::Context;

    let mut merged: serde_json::Map<String, serde_json::Value> = match std::fs::read_to_string(path)
    {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("`{}` does not hold a JSON object", path.display()))?,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => serde_json::Map::new(),
        Err(err) => return Err(err).with_context(|| format!("cannot read `{}`", path.display())),
    };
    for (key, value) in outputs {
        merged.insert(key.clone(), serde_json::Value::String(value.clone()));
    }
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, serde_json::to_string_pretty(&merged)? + "\n")
        .with_context(|| format!("cannot write `{}`", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot replace `{}`", path.display()))?;
    Ok(())
}
