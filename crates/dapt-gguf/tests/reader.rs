//! The reader and the dequantisers against `quants.gguf`, written by gguf-py, and its
//! `gguf.quants.dequantize` reference.

mod common;

use common::{assert_bits_eq, fixture, read_safetensors};
use dapt_gguf::{Array, GgmlType, Gguf, GgufError, Value};

#[test]
fn every_tensor_dequantises_bit_for_bit_like_gguf_py() {
    let gguf = Gguf::open(fixture("quants.gguf")).unwrap();
    let reference = read_safetensors(&fixture("quants_reference.safetensors"));
    let mut types = Vec::new();
    for (name, want) in &reference {
        let (shape, values) = gguf.tensor_f32(name).unwrap();
        assert_eq!(shape, want.shape, "{name}: shape");
        assert_bits_eq(name, &values, &want.values);
        types.push(gguf.tensor_info(name).unwrap().ggml_type);
    }
    types.sort();
    let mut supported = dapt_gguf::dequant::SUPPORTED.to_vec();
    supported.sort();
    assert_eq!(types, supported, "the fixture covers every supported type");
}

#[test]
fn header_and_tensor_infos() {
    let gguf = Gguf::open(fixture("quants.gguf")).unwrap();
    assert_eq!(gguf.version(), 3);
    assert_eq!(gguf.alignment(), 64);
    assert_eq!(gguf.data_offset() % 64, 0);
    assert_eq!(gguf.architecture().unwrap(), "quants-test");
    let f32_3d = gguf.tensor_info("f32_3d").unwrap();
    assert_eq!(f32_3d.ne, [32, 3, 2]);
    assert_eq!(f32_3d.shape(), [2, 3, 32]);
    assert_eq!(f32_3d.ggml_type, GgmlType::F32);
    let q4_k = gguf.tensor_info("q4_k").unwrap();
    assert_eq!(
        (q4_k.shape(), q4_k.ggml_type, q4_k.n_bytes()),
        (vec![2, 512], GgmlType::Q4_K, Some(4 * 144))
    );
    let names: Vec<&str> = gguf.tensors().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names.first(), Some(&"f32_3d"));
    assert_eq!(names.last(), Some(&"q2_k"));
    // F32 passes special values through untouched.
    let (_, values) = gguf.tensor_f32("f32_3d").unwrap();
    assert_eq!(values[0], f32::INFINITY);
    assert_eq!(values[2].to_bits(), (-0.0f32).to_bits());
}

#[test]
fn metadata_of_every_type_reads_back() {
    let gguf = Gguf::open(fixture("quants.gguf")).unwrap();
    let m = |key: &str| {
        gguf.metadata(key)
            .unwrap_or_else(|| panic!("{key} missing"))
            .clone()
    };
    assert_eq!(m("test.u8"), Value::U8(200));
    assert_eq!(m("test.i8"), Value::I8(-100));
    assert_eq!(m("test.u16"), Value::U16(60000));
    assert_eq!(m("test.i16"), Value::I16(-30000));
    assert_eq!(m("test.u32"), Value::U32(4_000_000_000));
    assert_eq!(m("test.i32"), Value::I32(-2_000_000_000));
    assert_eq!(m("test.f32"), Value::F32(3.25));
    assert_eq!(m("test.bool"), Value::Bool(true));
    assert_eq!(
        m("test.string"),
        Value::String("h\u{e9}llo w\u{f6}rld".into())
    );
    assert_eq!(m("test.u64"), Value::U64((1 << 63) + 5));
    assert_eq!(m("test.i64"), Value::I64(-(1 << 62)));
    assert_eq!(m("test.f64"), Value::F64(std::f64::consts::E));
    assert_eq!(
        m("test.array_i32"),
        Value::Array(Array::I32(vec![1, -2, 3]))
    );
    assert_eq!(
        m("test.array_f32"),
        Value::Array(Array::F32(vec![0.5, -1.5]))
    );
    assert_eq!(
        m("test.array_bool"),
        Value::Array(Array::Bool(vec![true, false, true]))
    );
    assert_eq!(
        m("test.array_str"),
        Value::Array(Array::String(vec!["a".into(), "bc".into(), String::new()]))
    );
    assert_eq!(
        m("test.array_nested"),
        Value::Array(Array::Array(vec![
            Array::I32(vec![1, 2]),
            Array::I32(vec![3])
        ]))
    );
    assert_eq!(
        m("test.array_u64"),
        Value::Array(Array::U64(vec![7, 1 << 40]))
    );
    assert_eq!(m("general.alignment"), Value::U32(64));

    // Typed helpers.
    assert_eq!(gguf.get_u32("test.u32").unwrap(), Some(4_000_000_000));
    assert_eq!(gguf.get_u32("test.u8").unwrap(), Some(200));
    assert_eq!(gguf.get_u64("test.u64").unwrap(), Some((1 << 63) + 5));
    assert_eq!(gguf.get_i64("test.i8").unwrap(), Some(-100));
    assert_eq!(gguf.get_f32("test.f32").unwrap(), Some(3.25));
    assert_eq!(gguf.get_f32("test.f64").unwrap(), Some(std::f32::consts::E));
    assert_eq!(gguf.get_bool("test.bool").unwrap(), Some(true));
    assert_eq!(
        gguf.get_str("general.name").unwrap(),
        Some("dapt-gguf quantisation fixture")
    );
    assert_eq!(
        gguf.get_str_array("test.array_str")
            .unwrap()
            .map(<[String]>::len),
        Some(3)
    );
    assert_eq!(
        gguf.get_i64_array("test.array_i32").unwrap(),
        Some(vec![1, -2, 3])
    );
    assert_eq!(gguf.get_u32("no.such.key").unwrap(), None);

    // The wrong type is an error naming the key and both types.
    let err = gguf.get_u32("test.i32").unwrap_err().to_string();
    assert!(
        err.contains("test.i32") && err.contains("u32") && err.contains("i32"),
        "{err}"
    );
    let err = gguf.get_str("test.array_str").unwrap_err().to_string();
    assert!(err.contains("array of 3 string"), "{err}");
}

#[test]
fn unsupported_types_are_named_errors() {
    let gguf = Gguf::open(fixture("quants.gguf")).unwrap();
    for (name, ty) in [("q2_k", "Q2_K"), ("i32_tensor", "I32")] {
        let err = gguf.tensor_f32(name).unwrap_err();
        assert!(matches!(err, GgufError::UnsupportedType { .. }), "{err:?}");
        let message = err.to_string();
        assert!(message.contains(name) && message.contains(ty), "{message}");
        assert!(message.contains("quants.gguf"), "{message}");
    }
    // Raw bytes of a known type are still available.
    let info = gguf.tensor_info("i32_tensor").unwrap();
    let raw = gguf.tensor_data(info).unwrap();
    assert_eq!(raw.len(), 24);
    assert_eq!(i32::from_le_bytes(raw[20..24].try_into().unwrap()), 5);

    let err = gguf.tensor_f32("no_such_tensor").unwrap_err().to_string();
    assert!(err.contains("no tensor named `no_such_tensor`"), "{err}");
}

#[test]
fn version_2_reads_like_version_3() {
    let mut bytes = std::fs::read(fixture("quants.gguf")).unwrap();
    bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
    let gguf = Gguf::from_bytes("v2.gguf", bytes).unwrap();
    assert_eq!(gguf.version(), 2);
    let reference = read_safetensors(&fixture("quants_reference.safetensors"));
    let (_, values) = gguf.tensor_f32("q6_k").unwrap();
    assert_bits_eq("q6_k", &values, &reference["q6_k"].values);
}
