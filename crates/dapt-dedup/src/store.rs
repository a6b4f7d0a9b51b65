//! A compact file of per-document signatures, written by the first (sharded,
//! resumable) pass of the dedup stage and read by the clustering pass: for each
//! document its id, corpus, whether it is protected, its exact key and MinHash
//! signature — little-endian, length-prefixed, about `4 * permutations + 40` bytes
//! plus the id per document.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::external::at;
use crate::minhash::Signature;

#[derive(Debug, Clone, PartialEq)]
pub struct DocSignature {
    pub id: String,
    pub source: String,
    pub protected: bool,
    pub exact: u128,
    pub signature: Signature,
}

impl DocSignature {
    /// The document as clustering sees it.
    pub fn member(&self) -> crate::clusters::Member<'_> {
        crate::clusters::Member {
            id: &self.id,
            exact: self.exact,
            signature: &self.signature,
            protected: self.protected,
        }
    }
}

const MAGIC: &[u8; 8] = b"DAPTSIG1";

pub fn write_all(out: &mut impl Write, docs: &[DocSignature]) -> io::Result<()> {
    out.write_all(MAGIC)?;
    out.write_all(&(docs.len() as u64).to_le_bytes())?;
    for d in docs {
        write_str(out, &d.id)?;
        write_str(out, &d.source)?;
        out.write_all(&[u8::from(d.protected)])?;
        out.write_all(&d.exact.to_le_bytes())?;
        out.write_all(&(d.signature.len() as u32).to_le_bytes())?;
        for v in &d.signature {
            out.write_all(&v.to_le_bytes())?;
        }
    }
    Ok(())
}

pub fn read_all(input: &mut impl Read) -> io::Result<Vec<DocSignature>> {
    let mut magic = [0u8; 8];
    input.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a dapt signature file",
        ));
    }
    let n = u64::from_le_bytes(read_array(input)?) as usize;
    let mut docs = Vec::with_capacity(n.min(1 << 24));
    for _ in 0..n {
        let id = read_str(input)?;
        let source = read_str(input)?;
        let protected = read_array::<1>(input)?[0] != 0;
        let exact = u128::from_le_bytes(read_array(input)?);
        let len = u32::from_le_bytes(read_array(input)?) as usize;
        let mut signature = Vec::with_capacity(len);
        for _ in 0..len {
            signature.push(u32::from_le_bytes(read_array(input)?));
        }
        docs.push(DocSignature {
            id,
            source,
            protected,
            exact,
            signature,
        });
    }
    Ok(docs)
}

fn write_str(out: &mut impl Write, s: &str) -> io::Result<()> {
    out.write_all(&(s.len() as u32).to_le_bytes())?;
    out.write_all(s.as_bytes())
}

fn read_str(input: &mut impl Read) -> io::Result<String> {
    let len = u32::from_le_bytes(read_array(input)?) as usize;
    let mut bytes = vec![0u8; len];
    input.read_exact(&mut bytes)?;
    String::from_utf8(bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn read_array<const N: usize>(input: &mut impl Read) -> io::Result<[u8; N]> {
    let mut buf = [0u8; N];
    input.read_exact(&mut buf)?;
    Ok(buf)
}

/// Reads one signature file whole (one shard's documents).
pub fn read_file(path: &Path) -> io::Result<Vec<DocSignature>> {
    let file = File::open(path).map_err(|e| at(path, e))?;
    read_all(&mut io::BufReader::new(file)).map_err(|e| at(path, e))
}

/// Signature files read as one sequence of documents, `copies` times over (a benchmark
/// repeats its corpus), one file in memory at a time, for
/// [`crate::external::cluster_roots`]; single signatures come from a fixed-width table
/// written beside them on opening.
pub struct SignatureFiles {
    files: Vec<PathBuf>,
    copies: usize,
    len: usize,
    width: usize,
    table: File,
}

impl SignatureFiles {
    /// `files` in order; the table goes to `scratch/signatures.bin`.
    pub fn open(files: Vec<PathBuf>, copies: usize, scratch: &Path) -> io::Result<Self> {
        let table_path = scratch.join("signatures.bin");
        let mut table = BufWriter::new(File::create(&table_path).map_err(|e| at(&table_path, e))?);
        let (mut len, mut width) = (0, None);
        for path in &files {
            for d in read_file(path)? {
                match width {
                    None => width = Some(d.signature.len()),
                    Some(w) if w != d.signature.len() => {
                        return Err(at(
                            path,
                            io::Error::new(
                                io::ErrorKind::InvalidData,
                                format!(
                                    "signature of {} has {} minima, others {w}",
                                    d.id,
                                    d.signature.len()
                                ),
                            ),
                        ));
                    }
                    Some(_) => {}
                }
                len += 1;
                for v in &d.signature {
                    table.write_all(&v.to_le_bytes())?;
                }
            }
        }
        table.flush().map_err(|e| at(&table_path, e))?;
        Ok(SignatureFiles {
            files,
            copies,
            len,
            width: width.unwrap_or(0),
            table: File::open(&table_path).map_err(|e| at(&table_path, e))?,
        })
    }
}

impl crate::external::SignatureSource for SignatureFiles {
    fn len(&self) -> usize {
        self.len * self.copies
    }

    fn for_each(
        &self,
        visit: &mut dyn FnMut(u32, u128, &Signature) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut i = 0u32;
        for _ in 0..self.copies {
            for path in &self.files {
                for d in read_file(path)? {
                    visit(i, d.exact, &d.signature)?;
                    i += 1;
                }
            }
        }
        Ok(())
    }

    fn signature(&self, index: u32) -> io::Result<Signature> {
        let row = index as usize % self.len.max(1);
        let mut bytes = vec![0u8; self.width * 4];
        self.table
            .read_exact_at(&mut bytes, (row * self.width * 4) as u64)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_truncation() {
        let docs = vec![
            DocSignature {
                id: "reuters/a/1".into(),
                source: "reuters".into(),
                protected: true,
                exact: u128::MAX - 7,
                signature: vec![1, 2, u32::MAX],
            },
            DocSignature {
                id: "ü".into(),
                source: "x".into(),
                protected: false,
                exact: 0,
                signature: vec![],
            },
        ];
        let mut bytes = Vec::new();
        write_all(&mut bytes, &docs).unwrap();
        assert_eq!(read_all(&mut bytes.as_slice()).unwrap(), docs);
        assert!(read_all(&mut &bytes[..bytes.len() - 1]).is_err());
    }
}
