use std::path::{Path, PathBuf};

use dapt_tokenize::{
    MixtureSampler, PackedTokens, SequenceLoader, TokenBatchSource, TokenRow, write_token_shard,
};

const SEQ_LEN: usize = 64;
const END_OF_TEXT: u32 = 0;

/// Synthetic documents whose tokens encode (domain, document, position), so every
/// sequence is recognisable; each document ends with the separator like real shards.
fn rows(domain: &str, split: &str, documents: usize, tokens_per_document: usize) -> Vec<TokenRow> {
    let domain_base = if domain == "financial" {
        1_000_000
    } else {
        2_000_000
    };
    (0..documents)
        .map(|d| {
            let mut tokens: Vec<u32> = (1..tokens_per_document as u32)
                .map(|t| domain_base + (d as u32) * 1000 + t)
                .collect();
            tokens.push(END_OF_TEXT);
            TokenRow {
                id: format!("{domain}/{d}"),
                domain: domain.into(),
                split: split.into(),
                tokens,
                n_bytes: 0,
                n_words: 0,
            }
        })
        .collect()
}

/// Two shards mixing domains and splits, like the tokenize stage's output.
fn shards(folder: &Path, financial_documents: usize, general_documents: usize) -> Vec<PathBuf> {
    let mut all = rows("financial", "train", financial_documents, 500);
    all.extend(rows("general", "train", general_documents, 500));
    all.extend(rows("financial", "val", 20, 500));
    let (first, second) = all.split_at(all.len() / 2);
    [first, second]
        .iter()
        .enumerate()
        .map(|(i, part)| {
            let path = folder.join(format!("tokens-{i}.parquet"));
            write_token_shard(&path, part.to_vec()).unwrap();
            path
        })
        .collect()
}

fn batches(source: &mut impl TokenBatchSource, count: usize) -> Vec<Vec<u32>> {
    (0..count)
        .map(|_| source.next_batch(8, SEQ_LEN).unwrap())
        .collect()
}

#[test]
fn loader_reads_only_its_split_and_domain_in_shard_order() {
    let folder = tempfile::tempdir().unwrap();
    let shards = shards(folder.path(), 30, 30);
    let packed = PackedTokens::from_shards(&shards, "val", "financial", SEQ_LEN).unwrap();
    assert_eq!(packed.num_tokens(), 20 * 500);
    let first = packed.validation_sequences().next().unwrap();
    assert_eq!(first.len(), SEQ_LEN + 1);
    assert_eq!(first[0], 1_000_001);
    let stream: Vec<u32> = packed
        .validation_sequences()
        .flat_map(|s| s[..SEQ_LEN].to_vec())
        .collect();
    assert!(
        stream
            .iter()
            .all(|t| *t == END_OF_TEXT || (1_000_000..2_000_000).contains(t))
    );
    assert_eq!(
        stream.iter().filter(|t| **t == END_OF_TEXT).count(),
        20 - 1,
        "last tail is dropped"
    );
}

#[test]
fn a_cursor_saved_mid_epoch_restores_the_same_next_batches() {
    let folder = tempfile::tempdir().unwrap();
    let shards = shards(folder.path(), 30, 30);
    let mut loader =
        SequenceLoader::from_shards(&shards, "train", "financial", SEQ_LEN, 42).unwrap();
    let per_epoch = loader.num_sequences();
    assert_eq!(per_epoch, (30 * 500 - 1) / SEQ_LEN);

    batches(&mut loader, 10);
    let state = loader.state();
    assert_eq!(state["cursor"]["epoch"], 0);
    assert_eq!(state["cursor"]["position"], 80);
    // Far enough to cross into the next epochs.
    let expected = batches(&mut loader, 60);

    let mut resumed =
        SequenceLoader::from_shards(&shards, "train", "financial", SEQ_LEN, 42).unwrap();
    resumed
        .restore(&serde_json::from_str(&state.to_string()).unwrap())
        .unwrap();
    assert_eq!(batches(&mut resumed, 60), expected);
    assert_eq!(resumed.cursor(), loader.cursor());
    assert!(loader.cursor().epoch >= 2);
}

#[test]
fn shuffling_is_deterministic_per_seed_and_differs_across_seeds() {
    let folder = tempfile::tempdir().unwrap();
    let shards = shards(folder.path(), 30, 30);
    let first_epoch = |seed| {
        let mut loader =
            SequenceLoader::from_shards(&shards, "train", "general", SEQ_LEN, seed).unwrap();
        let count = loader.num_sequences();
        (0..count)
            .map(|_| loader.next_sequence().to_vec())
            .collect::<Vec<_>>()
    };
    let a = first_epoch(1);
    assert_eq!(a, first_epoch(1));
    assert_ne!(a, first_epoch(2));

    // Shuffled, yet every sequence exactly once per epoch.
    let packed = PackedTokens::from_shards(&shards, "train", "general", SEQ_LEN).unwrap();
    let in_order: Vec<Vec<u32>> = packed.validation_sequences().map(<[u32]>::to_vec).collect();
    assert_ne!(a, in_order);
    let mut sorted = a.clone();
    sorted.sort();
    let mut in_order_sorted = in_order.clone();
    in_order_sorted.sort();
    assert_eq!(sorted, in_order_sorted);
}

fn mixture(shards: &[PathBuf], financial_weight: f64) -> MixtureSampler {
    let loader =
        |domain, seed| SequenceLoader::from_shards(shards, "train", domain, SEQ_LEN, seed).unwrap();
    MixtureSampler::new(vec![
        (loader("financial", 1), financial_weight),
        (loader("general", 2), 1.0 - financial_weight),
    ])
    .unwrap()
}

/// Draws 1M training tokens and checks each domain's realised token share, counted from the
/// token ids themselves rather than from the sampler's own report.
fn assert_mixture_tracks_weights(sampler: &mut MixtureSampler, financial_weight: f64) {
    let mut financial = 0u64;
    let mut general = 0u64;
    while financial + general < 1_000_000 {
        let batch = sampler.next_batch(16, SEQ_LEN).unwrap();
        for sequence in batch.chunks(SEQ_LEN + 1) {
            let domain_token = sequence.iter().find(|t| **t != END_OF_TEXT).unwrap();
            if *domain_token < 2_000_000 {
                financial += SEQ_LEN as u64;
            } else {
                general += SEQ_LEN as u64;
            }
        }
    }
    let share = financial as f64 / (financial + general) as f64;
    assert!(
        (share - financial_weight).abs() < 0.01,
        "financial share {share}, target {financial_weight}"
    );
    let report = sampler.report();
    assert_eq!(report["financial"].tokens, financial);
    assert_eq!(report["general"].tokens, general);
}

#[test]
fn mixture_tracks_its_weights_over_a_million_tokens() {
    let folder = tempfile::tempdir().unwrap();
    let shards = shards(folder.path(), 300, 300);
    for weight in [0.5, 0.7, 0.1] {
        assert_mixture_tracks_weights(&mut mixture(&shards, weight), weight);
    }
}

#[test]
fn mixture_repeats_a_much_smaller_domain_and_still_tracks_its_weights() {
    let folder = tempfile::tempdir().unwrap();
    // financial: 15k tokens, general: 1.5M tokens.
    let shards = shards(folder.path(), 30, 3000);
    let mut sampler = mixture(&shards, 0.5);
    assert_mixture_tracks_weights(&mut sampler, 0.5);
    let report = sampler.report();
    assert!(report["financial"].epochs > 30.0, "{report:?}");
    assert!(report["general"].epochs < 1.0, "{report:?}");
}

#[test]
fn mixture_state_restores_exactly() {
    let folder = tempfile::tempdir().unwrap();
    let shards = shards(folder.path(), 30, 300);
    let mut sampler = mixture(&shards, 0.3);
    batches(&mut sampler, 37);
    let state = sampler.state();
    let expected = batches(&mut sampler, 100);

    let mut resumed = mixture(&shards, 0.3);
    resumed
        .restore(&serde_json::from_str(&state.to_string()).unwrap())
        .unwrap();
    assert_eq!(batches(&mut resumed, 100), expected);
    assert_eq!(resumed.report(), sampler.report());

    let mut other_weights = mixture(&shards, 0.5);
    let error = other_weights.restore(&state).unwrap_err();
    assert!(error.to_string().contains("weights"), "{error}");
}
