//! Convert a Llama GGUF into a Hugging Face model folder.
//!
//! ```text
//! cargo run --release -p dapt-gguf --example gguf_to_hf -- MODEL.gguf OUT_DIR
//! ```
//!
//! Prints the conversion summary as JSON.

use anyhow::{Context, bail};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [gguf, out_dir] = args.as_slice() else {
        bail!("usage: gguf_to_hf GGUF OUT_DIR");
    };
    let started = std::time::Instant::now();
    let summary = dapt_gguf::write_hf_folder(gguf, out_dir)
        .with_context(|| format!("converting {gguf} into {out_dir}"))?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    eprintln!("converted in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
