//! Parquet files as an independent reader sees them: DuckDB, from the project venv.

use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use crate::venv_tool;

/// A Parquet file as DuckDB reads it: columns as (name, DuckDB type), and rows in file order.
pub type FileAsRead = (Vec<(String, String)>, Vec<Value>);

/// Each file's columns (name, DuckDB type) and rows in file order.
pub fn read(paths: &[&Path]) -> Result<Vec<FileAsRead>> {
    let script = r#"
import duckdb, json, sys
con = duckdb.connect()
out = []
for path in sys.argv[1:]:
    columns = [[d[0], d[1]] for d in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [path]).fetchall()]
    rows = [list(r) for r in con.execute("SELECT * FROM read_parquet(?)", [path]).fetchall()]
    out.append({"columns": columns, "rows": rows})
print(json.dumps(out))
"#;
    let output = Command::new(venv_tool("python")?)
        .arg("-c")
        .arg(script)
        .args(paths)
        .output()?;
    ensure!(
        output.status.success(),
        "DuckDB could not read {paths:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let parsed: Value = serde_json::from_slice(&output.stdout)?;
    let text = |v: &Value| v.as_str().map(str::to_owned).context("not a string");
    parsed
        .as_array()
        .context("not a list of files")?
        .iter()
        .map(|file| {
            let columns = file["columns"]
                .as_array()
                .context("no columns")?
                .iter()
                .map(|c| Ok((text(&c[0])?, text(&c[1])?)))
                .collect::<Result<_>>()?;
            let rows = file["rows"].as_array().context("no rows")?.clone();
            Ok((columns, rows))
        })
        .collect()
}
