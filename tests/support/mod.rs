//! Helpers for tests that drive the real `dapt` binary on temporary pipelines.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new(pipeline: &str) -> Sandbox {
        let sandbox = Sandbox {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        sandbox.write_pipeline(pipeline);
        sandbox
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write_pipeline(&self, pipeline: &str) {
        std::fs::write(self.path("pipeline.toml"), pipeline).expect("write pipeline");
    }

    pub fn edit_pipeline(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.path("pipeline.toml")).unwrap();
        assert!(text.contains(from), "pipeline has no `{from}`");
        self.write_pipeline(&text.replacen(from, to, 1));
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dapt"));
        cmd.args(args)
            .arg("-c")
            .arg(self.path("pipeline.toml"))
            .current_dir(self.dir.path());
        cmd
    }

    pub fn dapt(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run dapt")
    }

    /// Runs dapt and asserts it exits with `code`.
    pub fn dapt_expect(&self, args: &[&str], code: i32) -> Output {
        let out = self.dapt(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "dapt {args:?} exited {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            stdout(&out),
            stderr(&out)
        );
        out
    }

    /// Stage names appended to `runs.log` by the test commands, in order.
    pub fn runs(&self) -> Vec<String> {
        std::fs::read_to_string(self.path("runs.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn clear_runs(&self) {
        let _ = std::fs::remove_file(self.path("runs.log"));
    }

    /// `dapt status --json` as (stage, state, reason).
    pub fn status(&self) -> Vec<(String, String, String)> {
        let out = self.dapt_expect(&["status", "--json"], 0);
        let rows: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).expect("status json");
        rows.iter()
            .map(|r| {
                (
                    r["stage"].as_str().unwrap().to_string(),
                    r["state"].as_str().unwrap().to_string(),
                    r["reason"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    pub fn state_of(&self, stage: &str) -> (String, String) {
        let (_, state, reason) = self
            .status()
            .into_iter()
            .find(|(s, _, _)| s == stage)
            .expect("stage in status");
        (state, reason)
    }
}

/// Finished shards of a stage's interrupted attempt in `phase` (marker files only,
/// not the temporary file of a marker being written).
pub fn finished_shards(sb: &Sandbox, stage: &str, phase: &str) -> Vec<String> {
    let dir = sb.path(&format!(".dapt/stages/{stage}/partial/shards/{phase}"));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.retain(|n| n.ends_with(".json"));
    names.sort();
    names
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A `command` stage that logs its run and writes `out/NAME.txt` from its inputs.
pub fn stage(name: &str, inputs: &[&str], extra: &str) -> String {
    let inputs_toml: Vec<String> = inputs.iter().map(|i| format!("\"{i}\"")).collect();
    let deps: Vec<String> = inputs.iter().map(|i| format!("\"out/{i}.txt\"")).collect();
    let cat: String = inputs.iter().map(|i| format!(" out/{i}.txt")).collect();
    let content = if inputs.is_empty() {
        format!("echo {name}")
    } else {
        format!("cat{cat}")
    };
    format!(
        "[stages.{name}]\nkind = \"command\"\ninputs = [{}]\ndeps = [{}]\nouts = [\"out/{name}.txt\"]\n\
         cmd = \"echo {name} >> runs.log && mkdir -p out && ({content}; echo {name}) > out/{name}.txt\"\n{extra}\n",
        inputs_toml.join(", "),
        deps.join(", ")
    )
}

pub fn header(name: &str, jobs: usize) -> String {
    format!("[pipeline]\nname = \"{name}\"\njobs = {jobs}\n\n")
}

pub fn files_in(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// BBC business (financial) and tech (general) news, split, tokenized with a small
/// vocabulary, then a 1-layer GPT pre-trained on general text and continued on financial.
pub fn training_pipeline(data_root: &Path) -> String {
    format!(
        "[pipeline]\nname = \"train\"\njobs = 2\nseed = 7\ndata_root = \"{}\"\n\n\
         [corpora.business]\ndomain = \"financial\"\nreader = \"folder-labels\"\nencoding = \"utf-8-or-latin-1\"\npaths = [\"general/bbc_news/business/*.txt\"]\n\n\
         [corpora.tech]\ndomain = \"general\"\nreader = \"folder-labels\"\nencoding = \"utf-8-or-latin-1\"\npaths = [\"general/bbc_news/tech/*.txt\"]\n\n\
         [stages.ingest]\nkind = \"ingest\"\ncorpora = [\"business\", \"tech\"]\n\n\
         [stages.split]\nkind = \"split\"\ninputs = [\"ingest\"]\nratios = {{ train = 0.8, validation = 0.1, test = 0.1 }}\n\n\
         [stages.tokenizer]\nkind = \"tokenizer\"\ninputs = [\"split\"]\nvocab_size = 1000\nsample_mb = 2\n\n\
         [stages.tokenize]\nkind = \"tokenize\"\ninputs = [\"split\", \"tokenizer\"]\ntokenizer = \"tokenizer\"\n\n\
         [stages.base]\nkind = \"pretrain\"\ninputs = [\"tokenize\", \"tokenizer\"]\n\
         model = {{ n_layer = 1, n_head = 2, d_model = 32, context = 32 }}\n\
         mixture = {{ general = 1.0 }}\ntoken_budget = 16_384\nbatch_size = 8\npeak_lr = 3e-3\n\
         eval_every = 16\ncheckpoint_every = 16\neval_batches = 8\n\n\
         [stages.financial]\nkind = \"continue\"\ninputs = [\"tokenize\", \"tokenizer\", \"base\"]\nfrom = \"base\"\n\
         mixture = {{ financial = 1.0 }}\ntoken_budget = 16_384\nbatch_size = 8\npeak_lr = 3e-3\n\
         eval_every = 16\ncheckpoint_every = 16\neval_batches = 8\n",
        data_root.display()
    )
}

/// [`training_pipeline`] plus the Financial PhraseBank, an `evaluate` of both models and
/// the report: the whole test pipeline, from raw files to the report.
pub fn evaluated_pipeline(data_root: &Path) -> String {
    training_pipeline(data_root)
        + "\n[corpora.phrasebank]\ndomain = \"sentiment\"\nreader = \"phrasebank\"\n\
           paths = [\"financial/financial_phrasebank_v1.0/Sentences_AllAgree.txt\"]\n\n\
           [stages.ingest_sentiment]\nkind = \"ingest\"\ncorpora = [\"phrasebank\"]\n\n\
           [stages.evaluate]\nkind = \"evaluate\"\n\
           inputs = [\"tokenize\", \"tokenizer\", \"ingest_sentiment\", \"base\", \"financial\"]\n\
           tokens = \"tokenize\"\ntokenizer = \"tokenizer\"\nsentiment = \"ingest_sentiment\"\n\
           models = [\"base\", \"financial\"]\nmax_tokens_per_domain = 4000\n\
           max_train_examples = 200\nmax_test_examples = 100\n\n\
           [stages.evaluate.datasets.phrasebank]\nsources = [\"phrasebank\"]\n\
           labels = { negative = \"negative\", neutral = \"neutral\", positive = \"positive\" }\n\n\
           [stages.report]\nkind = \"report\"\n\
           inputs = [\"ingest\", \"split\", \"tokenize\", \"base\", \"financial\", \"evaluate\"]\n\
           evaluate = \"evaluate\"\nbaseline = \"base\"\nadapted = \"financial\"\n"
}

/// The `counts` of a stage's manifest.
pub fn counts(sb: &Sandbox, stage: &str) -> serde_json::Value {
    let path = sb.path(&format!(".dapt/stages/{stage}/manifest.json"));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    manifest["counts"].clone()
}
