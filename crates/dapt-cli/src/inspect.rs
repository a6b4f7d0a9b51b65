//! `dapt inspect PATH`: schema, row count, a per-column summary and the first rows of
//! any parquet shard (or every shard in a directory), computed lazily by polars so
//! large shards are never loaded whole.

use std::path::{Path, PathBuf};

use anyhow::bail;
use polars::prelude::*;

pub fn inspect(path: &Path, rows: usize) -> anyhow::Result<String> {
    let files = parquet_files(path)?;
    let sources: Vec<PlRefPath> = files
        .iter()
        .map(|f| PlRefPath::from(f.to_string_lossy().as_ref()))
        .collect();
    let scan = LazyFrame::scan_parquet_files(sources.into(), ScanArgsParquet::default());
    let mut frame = anyhow::Context::with_context(scan, || {
        format!("cannot read {} as parquet", path.display())
    })?;
    let schema = anyhow::Context::with_context(frame.collect_schema(), || {
        format!("cannot read the schema of {}", path.display())
    })?;

    let count = frame.clone().select([len().alias("rows")]).collect()?;
    let total = count.column("rows")?.u32()?.get(0).unwrap_or(0);

    let mut out = format!(
        "{}: {} file(s), {} rows\n\nschema:\n",
        path.display(),
        files.len(),
        total
    );
    for (name, dtype) in schema.iter() {
        out.push_str(&format!("  {name}: {dtype}\n"));
    }
    out.push_str("\ncolumns:\n");
    for (name, dtype) in schema.iter() {
        let summary = frame
            .clone()
            .select(column_summary(name, dtype))
            .collect()?;
        let cells: Vec<String> = summary
            .columns()
            .iter()
            .map(|c| {
                format!(
                    "{}={}",
                    c.name(),
                    c.get(0).map(|v| v.to_string()).unwrap_or_default()
                )
            })
            .collect();
        out.push_str(&format!("  {name}: {}\n", cells.join(" ")));
    }
    let head = frame.limit(rows as IdxSize).collect()?;
    out.push_str(&format!("\nfirst {} row(s):\n{head}\n", head.height()));
    Ok(out)
}

/// Aggregations that describe one column, by type.
fn column_summary(name: &str, dtype: &DataType) -> Vec<Expr> {
    let c = || col(name);
    let mut exprs = vec![c().null_count().alias("nulls")];
    match dtype {
        DataType::String => {
            exprs.push(c().n_unique().alias("distinct"));
            let chars = || c().str().len_chars();
            exprs.extend([
                chars().min().alias("min_chars"),
                chars().mean().alias("mean_chars"),
                chars().max().alias("max_chars"),
                chars().sum().alias("total_chars"),
            ]);
        }
        DataType::List(_) => {
            let lens = || c().list().len();
            exprs.extend([
                lens().min().alias("min_len"),
                lens().mean().alias("mean_len"),
                lens().max().alias("max_len"),
                lens().sum().alias("total_len"),
            ]);
        }
        d if d.is_primitive_numeric() => {
            exprs.extend([
                c().min().alias("min"),
                c().mean().alias("mean"),
                c().max().alias("max"),
            ]);
        }
        _ => exprs.push(c().n_unique().alias("distinct")),
    }
    exprs
}

fn parquet_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        bail!("{} does not exist", path.display());
    }
    let mut files: Vec<PathBuf> = dapt_dag::fsutil::files_under(path)?
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    if files.is_empty() {
        bail!("no .parquet files under {}", path.display());
    }
    Ok(files)
}
