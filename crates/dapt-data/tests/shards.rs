//! Shard round trips and the atomic-rename contract.

use dapt_data::shards::ShardWriter;
use dapt_data::{
    DocShardReader, DocShardWriter, Document, Rejected, RejectedShardReader, RejectedShardWriter,
};

fn doc(i: usize) -> Document {
    let mut d = Document::new(format!("c/f/{i}"), "financial", "c", format!("text {i} é"));
    d.split = i.is_multiple_of(2).then(|| "train".to_owned());
    d.label = i.is_multiple_of(3).then(|| "x".to_owned());
    d.meta = Some(format!("{{\"n\":{i}}}"));
    d
}

#[test]
fn documents_round_trip_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/docs-00000.parquet");
    let mut writer = DocShardWriter::create(&path).unwrap();
    let docs: Vec<Document> = (0..2500).map(doc).collect();
    for d in docs.clone() {
        writer.write(d).unwrap();
    }
    assert!(!path.exists(), "nothing at the final path before finish");
    assert!(dir.path().join("out/docs-00000.parquet.tmp").exists());
    assert_eq!(writer.finish().unwrap(), 2500);
    assert!(!dir.path().join("out/docs-00000.parquet.tmp").exists());
    let reader = DocShardReader::open(&path).unwrap();
    assert_eq!(reader.total_rows(), 2500);
    let back: Vec<Document> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(back, docs);
}

#[test]
fn unfinished_writer_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.parquet");
    let mut writer = RejectedShardWriter::create(&path).unwrap();
    writer
        .write(Rejected {
            id: "a".into(),
            source: "s".into(),
            reason: "r".into(),
            detail: "d".into(),
            text: None,
        })
        .unwrap();
    drop(writer);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn rejected_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.parquet");
    let rows: Vec<Rejected> = (0..3)
        .map(|i| Rejected {
            id: format!("c/f/{i}"),
            source: "c".into(),
            reason: "filter:word_count".into(),
            detail: format!("f:{i}: word_count = 3"),
            text: (i != 1).then(|| "t".into()),
        })
        .collect();
    let mut writer: ShardWriter<Rejected> = RejectedShardWriter::create(&path).unwrap();
    rows.iter()
        .cloned()
        .try_for_each(|r| writer.write(r))
        .unwrap();
    writer.finish().unwrap();
    let back: Vec<Rejected> = RejectedShardReader::open(&path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(back, rows);
    // A document reader refuses a rejected shard instead of inventing fields.
    let message = DocShardReader::open(&path).err().unwrap().to_string();
    assert!(message.contains("`domain`"), "{message}");
}

#[test]
fn parquet_reader_reads_a_shard_back_as_a_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = DocShardWriter::create(dir.path().join("d.parquet")).unwrap();
    (0..10).map(doc).try_for_each(|d| writer.write(d)).unwrap();
    writer.finish().unwrap();
    let cfg: dapt_data::CorpusConfig = toml::from_str(
        "domain='g'\nreader='parquet'\nlabel_field='label'\nid_field='id'\npaths=['*.parquet']",
    )
    .unwrap();
    let mut docs = Vec::new();
    dapt_data::read_corpus("p", &cfg, dir.path(), &mut |r| match r {
        dapt_data::Record::Doc(d) => docs.push(d),
        dapt_data::Record::Rejected(r) => panic!("{r:?}"),
    })
    .unwrap();
    assert_eq!(docs.len(), 10);
    assert_eq!(
        (
            docs[3].id.as_str(),
            docs[3].label.as_deref(),
            docs[3].text.as_str()
        ),
        ("p/c/f/3", Some("x"), "text 3 é")
    );
}
