//! Damaged and hostile files: each gives an error that names the file and the problem, never a
//! panic or an allocation sized by a lying header.

mod common;

use common::fixture;
use dapt_gguf::{Gguf, GgufError};

fn quants() -> Vec<u8> {
    std::fs::read(fixture("quants.gguf")).unwrap()
}

fn parse(bytes: Vec<u8>) -> Result<Gguf, GgufError> {
    Gguf::from_bytes("damaged.gguf", bytes)
}

/// Byte offset of the first occurrence of `needle`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| panic!("{:?} not found", String::from_utf8_lossy(needle)))
}

/// Offset of the tensor info of `name` (its length-prefixed name).
fn tensor_info_at(bytes: &[u8], name: &str) -> usize {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    find(bytes, &needle)
}

#[test]
fn truncated_tensor_data_names_the_tensor() {
    let full = Gguf::open(fixture("quants.gguf")).unwrap();
    let q6_k = full.tensor_info("q6_k").unwrap();
    let cut = full.data_offset() + q6_k.offset + 100;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.gguf");
    std::fs::write(&path, &quants()[..cut as usize]).unwrap();

    let gguf = Gguf::open(&path).unwrap();
    assert!(
        gguf.tensor_f32("q5_k").is_ok(),
        "tensors before the cut still read"
    );
    let err = gguf.tensor_f32("q6_k").unwrap_err();
    assert!(
        matches!(err, GgufError::TensorDataTruncated { .. }),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(
        message.contains("`q6_k`") && message.contains("truncated"),
        "{message}"
    );
    assert!(message.contains("cut.gguf"), "{message}");
}

#[test]
fn every_truncation_of_the_header_is_an_error() {
    let bytes = quants();
    let data_offset = Gguf::open(fixture("quants.gguf")).unwrap().data_offset() as usize;
    let mut first_ok = None;
    for cut in 0..data_offset {
        match parse(bytes[..cut].to_vec()) {
            Err(err) => {
                assert!(
                    first_ok.is_none(),
                    "cut at {cut} fails after a shorter cut parsed"
                );
                let message = err.to_string();
                assert!(message.contains("damaged.gguf"), "{message}");
                assert!(
                    message.contains("truncated") || message.contains("bad magic"),
                    "cut at {cut}: {message}"
                );
            }
            Ok(gguf) => {
                first_ok.get_or_insert(cut);
                // Only the alignment padding was cut: the header is whole, the data is not.
                let err = gguf.tensor_f32("f32_3d").unwrap_err();
                assert!(
                    matches!(err, GgufError::TensorDataTruncated { .. }),
                    "{err:?}"
                );
            }
        }
    }
    let first_ok = first_ok.expect("the header without its padding parses");
    assert!(
        data_offset - first_ok < 64,
        "only padding follows the tensor infos"
    );
}

#[test]
fn bad_magic_names_the_file_and_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-a-model.bin");
    let mut bytes = quants();
    bytes[..4].copy_from_slice(b"GGML");
    std::fs::write(&path, &bytes).unwrap();
    let err = Gguf::open(&path).unwrap_err();
    assert!(matches!(err, GgufError::BadMagic { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("bad magic") && message.contains("not-a-model.bin"),
        "{message}"
    );
    assert!(
        message.contains("47 47 4d 4c") && message.contains("GGML"),
        "{message}"
    );

    let message = parse(Vec::new()).unwrap_err().to_string();
    assert!(
        message.contains("bad magic") && message.contains("empty"),
        "{message}"
    );
    let message = parse(b"PK\x03".to_vec()).unwrap_err().to_string();
    assert!(message.contains("50 4b 03"), "{message}");
}

#[test]
fn unsupported_versions() {
    for (version, hint) in [
        (1u32, "version 1"),
        (4, ""),
        (3u32.swap_bytes(), "big-endian"),
    ] {
        let mut bytes = quants();
        bytes[4..8].copy_from_slice(&version.to_le_bytes());
        let err = parse(bytes).unwrap_err();
        assert!(
            matches!(err, GgufError::UnsupportedVersion { .. }),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&format!("version {version}")) && message.contains(hint),
            "{message}"
        );
    }
}

#[test]
fn absurd_counts_and_lengths_are_errors_not_allocations() {
    // Tensor count, metadata count.
    for (at, what) in [(8, "tensor count"), (16, "metadata count")] {
        for count in [u64::MAX, 1 << 40, 100_000] {
            let mut bytes = quants();
            bytes[at..at + 8].copy_from_slice(&count.to_le_bytes());
            let message = parse(bytes).unwrap_err().to_string();
            assert!(
                message.contains(what) && message.contains(&count.to_string()),
                "{message}"
            );
        }
    }
    // The first key's length.
    let mut bytes = quants();
    bytes[24..32].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
    let message = parse(bytes).unwrap_err().to_string();
    assert!(message.contains("truncated metadata key #0"), "{message}");

    // An array's length: key, value type 9 (array), element type 8 (string), then the count.
    let mut bytes = quants();
    let key = b"test.array_str";
    let count_at = find(&bytes, key) + key.len() + 8;
    assert_eq!(bytes[count_at..count_at + 8], 3u64.to_le_bytes());
    bytes[count_at..count_at + 8].copy_from_slice(&(1u64 << 60).to_le_bytes());
    let message = parse(bytes).unwrap_err().to_string();
    assert!(
        message.contains("test.array_str") && message.contains("claims"),
        "{message}"
    );

    // A string inside that array, one byte too long for the file.
    let mut bytes = quants();
    let first_len_at = count_at + 8;
    let left = (bytes.len() - first_len_at - 8) as u64;
    bytes[first_len_at..first_len_at + 8].copy_from_slice(&(left + 1).to_le_bytes());
    let message = parse(bytes).unwrap_err().to_string();
    assert!(
        message.contains("truncated value of metadata `test.array_str`"),
        "{message}"
    );
}

#[test]
fn malformed_values_and_tensor_infos() {
    let check = |bytes: Vec<u8>, expected: &str| {
        let err = parse(bytes).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(expected),
            "expected {expected:?} in: {message}"
        );
    };
    // Unknown value type of the first key (its length prefix, the key, then the type).
    let mut bytes = quants();
    let key_len = u64::from_le_bytes(bytes[24..32].try_into().unwrap()) as usize;
    bytes[32 + key_len..36 + key_len].copy_from_slice(&99u32.to_le_bytes());
    check(bytes, "unknown value type 99");

    // A bool that is neither 0 nor 1.
    let mut bytes = quants();
    let at = find(&bytes, b"test.bool") + b"test.bool".len() + 4;
    bytes[at] = 7;
    check(bytes, "bool byte is 7");

    // Five dimensions.
    let mut bytes = quants();
    let at = tensor_info_at(&bytes, "f32_3d") + 8 + "f32_3d".len();
    bytes[at..at + 4].copy_from_slice(&5u32.to_le_bytes());
    check(bytes, "`f32_3d` has 5 dimensions");

    // A block type whose rows are not whole blocks: q8_0's ne[0] = 64 -> 48.
    let mut bytes = quants();
    let at = tensor_info_at(&bytes, "q8_0") + 8 + "q8_0".len() + 4;
    bytes[at..at + 8].copy_from_slice(&48u64.to_le_bytes());
    check(bytes, "not a multiple of its block size 32");

    // Dimensions whose product overflows.
    let mut bytes = quants();
    let at = tensor_info_at(&bytes, "f32_3d") + 8 + "f32_3d".len() + 4;
    bytes[at + 8..at + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    check(bytes, "impossible dimensions");

    // An offset off the alignment (64): f32_3d has 3 dims, then type (4), then the offset.
    let mut bytes = quants();
    let at = tensor_info_at(&bytes, "f32_3d") + 8 + "f32_3d".len() + 4 + 3 * 8 + 4;
    bytes[at..at + 8].copy_from_slice(&8u64.to_le_bytes());
    check(bytes, "not a multiple of the alignment 64");

    // A tensor offset far past the end: the header parses, the read names the tensor.
    let mut bytes = quants();
    bytes[at..at + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let gguf = parse(bytes).unwrap();
    let message = gguf.tensor_f32("f32_3d").unwrap_err().to_string();
    assert!(message.contains("`f32_3d` is truncated"), "{message}");

    // Alignment that is not a power of two.
    let mut bytes = quants();
    let at = find(&bytes, b"general.alignment") + b"general.alignment".len() + 4;
    bytes[at..at + 4].copy_from_slice(&48u32.to_le_bytes());
    check(bytes, "general.alignment is u32 48, not a power of two");

    // Deeply nested arrays are refused, not recursed into.
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    bytes.extend(1u64.to_le_bytes());
    bytes.extend(1u64.to_le_bytes());
    bytes.push(b'k');
    bytes.extend(9u32.to_le_bytes());
    for _ in 0..100 {
        bytes.extend(9u32.to_le_bytes());
        bytes.extend(1u64.to_le_bytes());
    }
    bytes.extend(vec![0u8; 64]);
    check(bytes, "nested more than 8 deep");
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let message = Gguf::open("/nonexistent/dir/model.gguf")
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("/nonexistent/dir/model.gguf") && message.contains("opening"),
        "{message}"
    );
}

/// Random corruption of the header region: whatever happens, no panic.
#[test]
fn random_header_corruption_never_panics() {
    let original = quants();
    let header_len = Gguf::open(fixture("quants.gguf")).unwrap().data_offset() as usize;
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut parsed, mut failed) = (0, 0);
    for _ in 0..3000 {
        let mut bytes = original.clone();
        for _ in 0..1 + next() % 4 {
            let at = 4 + (next() as usize) % (header_len - 4);
            bytes[at] = next() as u8;
        }
        match parse(bytes) {
            Ok(gguf) => {
                parsed += 1;
                for info in gguf.tensors() {
                    let _ = gguf.tensor_f32(&info.name);
                }
            }
            Err(_) => failed += 1,
        }
    }
    assert!(parsed > 0 && failed > 0, "parsed {parsed}, failed {failed}");
}
