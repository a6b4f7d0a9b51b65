//! A compact file of per-document signatures, written by the first (sharded,
//! resumable) pass of the dedup stage and read by the clustering pass: for each
//! document its id, corpus, whether it is protected, its exact key and MinHash
//! signature — little-endian, length-prefixed, about `4 * permutations + 40` bytes
//! plus the id per document.

use std::io::{self, Read, Write};

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
