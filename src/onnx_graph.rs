//! # ONNX graph outputs
//!
//! In: the bytes of an ONNX model file. Out: the width of the vectors its graph declares it
//! outputs: the last dimension of the output fastembed reads (the only output, else
//! `text_embeds`, `last_hidden_state` or `sentence_embedding`).
//!
//! An ONNX file is a protobuf `ModelProto`. Only the path to the outputs is decoded:
//! `ModelProto.graph` (field 7) → `GraphProto.output` (12) → `ValueInfoProto` `name` (1) and
//! `type` (2) → `TypeProto.tensor_type` (1) → `shape` (2) → `dim` (1) → `dim_value` (1); every
//! other field, the weights included, is skipped by its length.

use anyhow::{bail, Context, Result};

/// The outputs fastembed picks from, in its order, after a sole output.
const OUTPUT_PRECEDENCE: [&str; 3] = ["text_embeds", "last_hidden_state", "sentence_embedding"];

/// The width of the vectors the model outputs, from its graph's declared output shape.
pub fn output_width(model: &[u8]) -> Result<usize> {
    let mut outputs: Vec<(String, Vec<Option<u64>>)> = Vec::new();
    for field in Fields::new(model) {
        let (number, value) = field?;
        if let (7, Value::Bytes(graph)) = (number, value) {
            for field in Fields::new(graph) {
                if let (12, Value::Bytes(output)) = field? {
                    outputs.push(value_info(output)?);
                }
            }
        }
    }
    let chosen = match outputs.as_slice() {
        [only] => Some(only),
        _ => OUTPUT_PRECEDENCE.iter().find_map(|name| outputs.iter().find(|(n, _)| n == name)),
    };
    let Some((name, dims)) = chosen else {
        let names: Vec<&str> = outputs.iter().map(|(n, _)| n.as_str()).collect();
        bail!("no output to read vectors from among {names:?}");
    };
    match dims.last() {
        Some(Some(width)) if *width > 0 => Ok(*width as usize),
        _ => bail!("the output {name:?} does not declare its width ({dims:?})"),
    }
}

/// A `ValueInfoProto`'s name and its tensor's dimensions (`None` where symbolic).
fn value_info(bytes: &[u8]) -> Result<(String, Vec<Option<u64>>)> {
    let (mut name, mut dims) = (String::new(), Vec::new());
    for field in Fields::new(bytes) {
        match field? {
            (1, Value::Bytes(text)) => name = String::from_utf8_lossy(text).into_owned(),
            (2, Value::Bytes(kind)) => {
                for tensor in sub_messages(kind, 1) {
                    for shape in sub_messages(tensor?, 2) {
                        for dim in sub_messages(shape?, 1) {
                            let value = Fields::new(dim?).find_map(|field| match field {
                                Ok((1, Value::Varint(value))) => Some(value),
                                _ => None,
                            });
                            dims.push(value);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    Ok((name, dims))
}

/// The length-delimited fields numbered `number` of a message.
fn sub_messages(message: &[u8], number: u64) -> impl Iterator<Item = Result<&[u8]>> {
    Fields::new(message).filter_map(move |field| match field {
        Ok((n, Value::Bytes(bytes))) if n == number => Some(Ok(bytes)),
        Ok(_) => None,
        Err(error) => Some(Err(error)),
    })
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of one protobuf message, in order.
struct Fields<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(message: &'a [u8]) -> Self {
        Self { rest: message, failed: false }
    }

    fn varint(&mut self) -> Result<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.rest.split_first().context("a varint runs past the end")?;
            self.rest = rest;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        bail!("a varint is longer than ten bytes")
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8]> {
        anyhow::ensure!(len <= self.rest.len(), "a field runs past the end of its message");
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn field(&mut self) -> Result<(u64, Value<'a>)> {
        let key = self.varint()?;
        let value = match key & 7 {
            0 => Value::Varint(self.varint()?),
            1 => self.take(8).map(|_| Value::Fixed)?,
            2 => {
                let len = usize::try_from(self.varint()?).context("a field's length")?;
                Value::Bytes(self.take(len)?)
            }
            5 => self.take(4).map(|_| Value::Fixed)?,
            wire => bail!("wire type {wire} is not one an ONNX file uses"),
        };
        Ok((key >> 3, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() || self.failed {
            return None;
        }
        let field = self.field().context("not an ONNX model file");
        self.failed = field.is_err();
        Some(field)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn varint(mut value: u64, out: &mut Vec<u8>) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    fn bytes_field(number: u64, bytes: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | 2, out);
        varint(bytes.len() as u64, out);
        out.extend_from_slice(bytes);
    }

    fn output(name: &str, dims: &[Option<u64>]) -> Vec<u8> {
        let mut shape = Vec::new();
        for dim in dims {
            let mut d = Vec::new();
            match dim {
                Some(value) => {
                    varint(1 << 3, &mut d);
                    varint(*value, &mut d);
                }
                None => bytes_field(2, b"batch", &mut d),
            }
            bytes_field(1, &d, &mut shape);
        }
        let mut tensor = Vec::new();
        varint(1 << 3, &mut tensor); // elem_type: float
        varint(1, &mut tensor);
        bytes_field(2, &shape, &mut tensor);
        let mut kind = Vec::new();
        bytes_field(1, &tensor, &mut kind);
        let mut info = Vec::new();
        bytes_field(1, name.as_bytes(), &mut info);
        bytes_field(2, &kind, &mut info);
        info
    }

    /// A model file whose graph has weights, an input and the outputs given.
    fn model(outputs: &[(&str, &[Option<u64>])]) -> Vec<u8> {
        let mut graph = Vec::new();
        bytes_field(5, &[7u8; 1000], &mut graph); // an initializer, skipped
        bytes_field(11, &output("input_ids", &[None, None]), &mut graph);
        for (name, dims) in outputs {
            bytes_field(12, &output(name, dims), &mut graph);
        }
        let mut model = Vec::new();
        varint(1 << 3, &mut model); // ir_version
        varint(8, &mut model);
        bytes_field(7, &graph, &mut model);
        model
    }

    pub(crate) fn model_with_output(name: &str, dims: &[Option<u64>]) -> Vec<u8> {
        model(&[(name, dims)])
    }

    #[test]
    fn the_width_is_the_last_dimension_of_the_output_read() {
        assert_eq!(output_width(&model_with_output("last_hidden_state", &[None, None, Some(384)])).unwrap(), 384);
        assert_eq!(output_width(&model_with_output("anything", &[None, Some(1024)])).unwrap(), 1024);
        let two = model(&[("token_embeddings", &[None, None, Some(768)]), ("sentence_embedding", &[None, Some(256)])]);
        assert_eq!(output_width(&two).unwrap(), 256);
    }

    #[test]
    fn unreadable_graphs_are_refused() {
        assert!(output_width(&model_with_output("last_hidden_state", &[None, None, None])).is_err());
        assert!(output_width(&model(&[("a", &[Some(3)]), ("b", &[Some(4)])])).is_err());
        assert!(output_width(b"\x0a\xff\xff\xff\xff\x0f").is_err());
        assert!(output_width(b"").is_err());
    }
}
