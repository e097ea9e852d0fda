//! `sdp query`: SQL over the lake that `sdp local` writes, with the table names and columns of the
//! Glue tables on AWS. One-shot (`sdp query "SELECT …"`, or statements piped on stdin) or, on a
//! terminal with no SQL given, a prompt that runs each statement when its line ends with `;`.
//!
//! Exit codes: 2 when the SQL is wrong (syntax, unknown table or column, a write) or the data
//! directory is missing; 1 when a valid query failed while running (an unreadable file).

use std::io::{BufRead, IsTerminal, Read, Write};

use anyhow::anyhow;

use sdp_query::{render, Answer, Lake, QueryError};

use crate::args::{QueryArgs, QueryFormat};
use crate::exit::Failure;

pub fn run(args: &QueryArgs) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::CouldNotRun(anyhow!("cannot start the async runtime: {e}")))?;
    let lake = Lake::open(&args.data_dir).map_err(failure)?;
    match &args.sql {
        Some(sql) => runtime.block_on(execute(&lake, sql, args.format)),
        None if std::io::stdin().is_terminal() => {
            interactive(&runtime, &lake, args.format);
            Ok(())
        }
        None => {
            let mut sql = String::new();
            std::io::stdin()
                .read_to_string(&mut sql)
                .map_err(|e| Failure::CouldNotRun(anyhow!("cannot read SQL from stdin: {e}")))?;
            runtime.block_on(execute(&lake, &sql, args.format))
        }
    }
}

/// Runs the statements and prints each answer: a table each, or a JSON array per line.
async fn execute(lake: &Lake, sql: &str, format: QueryFormat) -> Result<(), Failure> {
    let answers = lake.run(sql).await.map_err(failure)?;
    let mut out = std::io::stdout().lock();
    for answer in &answers {
        let text = rendered(answer, format)?;
        writeln!(out, "{text}").map_err(|e| Failure::Failed(anyhow!("cannot write: {e}")))?;
    }
    Ok(())
}

fn rendered(answer: &Answer, format: QueryFormat) -> Result<String, Failure> {
    match format {
        QueryFormat::Table => render::table(answer),
        QueryFormat::Json => render::json(answer),
    }
    .map_err(|e| Failure::Failed(anyhow!("cannot format the result: {e}")))
}

/// The prompt: statements end with `;`; an error is printed and the prompt goes on; `\q`, `exit`
/// or end of input leaves.
fn interactive(runtime: &tokio::runtime::Runtime, lake: &Lake, format: QueryFormat) {
    eprintln!(
        "SQL over the local lake; statements end with `;`. Tables: {}. \\q leaves.",
        sdp_query::table_names().join(", ")
    );
    let mut statement = String::new();
    let mut lines = std::io::stdin().lock().lines();
    loop {
        eprint!(
            "{}",
            if statement.is_empty() {
                "sdp> "
            } else {
                "...> "
            }
        );
        let _ = std::io::stderr().flush();
        let Some(Ok(line)) = lines.next() else {
            eprintln!();
            return;
        };
        if statement.is_empty() && matches!(line.trim(), "\\q" | "exit" | "quit") {
            return;
        }
        statement.push_str(&line);
        statement.push('\n');
        if !line.trim_end().ends_with(';') {
            continue;
        }
        if let Err(failure) = runtime.block_on(execute(lake, &statement, format)) {
            eprintln!("error: {}", failure.describe());
        }
        statement.clear();
    }
}

fn failure(err: QueryError) -> Failure {
    match err {
        QueryError::Failed { .. } => Failure::Failed(err.into()),
        QueryError::Invalid { .. } | QueryError::Lake(_) => Failure::CouldNotRun(err.into()),
    }
}
