//! Value encoding and decoding for the AMQP 1.0 type system.
//!
//! Decoding takes a `Bytes` cursor and advances it; binaries and symbols are zero-copy
//! slices of the input. Input is untrusted: nesting depth is bounded, every size is checked
//! against the bytes actually present before anything is allocated, and element counts are
//! never used to preallocate more than the input could hold.
//!
//! Encoding always picks the most compact constructor that fits (list0, small ints,
//! 8-bit sizes), writing compound sizes by back-patching rather than measuring twice.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::CodecError;
use crate::value::{Descriptor, Symbol, Timestamp, Value};

mod map_reader;
pub use map_reader::{MapKey, MapReader};

/// Deepest nesting of compound or described values accepted from the wire.
pub const MAX_DEPTH: usize = 64;

/// Arrays of zero-width elements (nulls, `true`, `uint0`...) consume no input per element,
/// so their count cannot be checked against the input; cap it instead. The cap is on all
/// such elements of one decoded value, not on each array: an array (or list) of 9-byte
/// arrays of 4096 nulls each would otherwise build 450 values per byte of input.
const MAX_ZERO_WIDTH_ARRAY: usize = 4096;

/// Zero-width array elements one decode may still build (see [`MAX_ZERO_WIDTH_ARRAY`]).
#[derive(Debug)]
struct ZeroWidthBudget(usize);

impl Default for ZeroWidthBudget {
    fn default() -> Self {
        ZeroWidthBudget(MAX_ZERO_WIDTH_ARRAY)
    }
}

impl ZeroWidthBudget {
    fn spend(&mut self, count: usize) -> Result<(), CodecError> {
        match self.0.checked_sub(count) {
            Some(left) => {
                self.0 = left;
                Ok(())
            }
            None => Err(CodecError::Other("array count exceeds its size")),
        }
    }
}

/// Format codes.
pub mod fc {
    pub const DESCRIBED: u8 = 0x00;
    pub const NULL: u8 = 0x40;
    pub const TRUE: u8 = 0x41;
    pub const FALSE: u8 = 0x42;
    pub const UINT0: u8 = 0x43;
    pub const ULONG0: u8 = 0x44;
    pub const LIST0: u8 = 0x45;
    pub const UBYTE: u8 = 0x50;
    pub const BYTE: u8 = 0x51;
    pub const SMALLUINT: u8 = 0x52;
    pub const SMALLULONG: u8 = 0x53;
    pub const SMALLINT: u8 = 0x54;
    pub const SMALLLONG: u8 = 0x55;
    pub const BOOL: u8 = 0x56;
    pub const USHORT: u8 = 0x60;
    pub const SHORT: u8 = 0x61;
    pub const UINT: u8 = 0x70;
    pub const INT: u8 = 0x71;
    pub const FLOAT: u8 = 0x72;
    pub const CHAR: u8 = 0x73;
    pub const DECIMAL32: u8 = 0x74;
    pub const ULONG: u8 = 0x80;
    pub const LONG: u8 = 0x81;
    pub const DOUBLE: u8 = 0x82;
    pub const TIMESTAMP: u8 = 0x83;
    pub const DECIMAL64: u8 = 0x84;
    pub const DECIMAL128: u8 = 0x94;
    pub const UUID: u8 = 0x98;
    pub const VBIN8: u8 = 0xa0;
    pub const STR8: u8 = 0xa1;
    pub const SYM8: u8 = 0xa3;
    pub const VBIN32: u8 = 0xb0;
    pub const STR32: u8 = 0xb1;
    pub const SYM32: u8 = 0xb3;
    pub const LIST8: u8 = 0xc0;
    pub const MAP8: u8 = 0xc1;
    pub const LIST32: u8 = 0xd0;
    pub const MAP32: u8 = 0xd1;
    pub const ARRAY8: u8 = 0xe0;
    pub const ARRAY32: u8 = 0xf0;
}

// ---------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------

#[inline]
fn need(buf: &Bytes, n: usize) -> Result<(), CodecError> {
    if buf.len() < n {
        Err(CodecError::Incomplete {
            needed: n - buf.len(),
        })
    } else {
        Ok(())
    }
}

#[inline]
pub(crate) fn take_u8(buf: &mut Bytes) -> Result<u8, CodecError> {
    need(buf, 1)?;
    Ok(buf.get_u8())
}

#[inline]
fn take_u32(buf: &mut Bytes) -> Result<u32, CodecError> {
    need(buf, 4)?;
    Ok(buf.get_u32())
}

#[inline]
fn take_array<const N: usize>(buf: &mut Bytes) -> Result<[u8; N], CodecError> {
    need(buf, N)?;
    let mut out = [0u8; N];
    // A fixed-size copy out of the slice: `Buf::copy_to_slice` loops over chunks.
    out.copy_from_slice(&buf[..N]);
    buf.advance(N);
    Ok(out)
}

#[inline]
fn take_bytes(buf: &mut Bytes, n: usize) -> Result<Bytes, CodecError> {
    need(buf, n)?;
    Ok(buf.split_to(n))
}

/// Reads a binary value (`vbin8` or `vbin32`) as a slice of the input; `None`, with nothing
/// read, when the next value is of another type.
pub(crate) fn take_binary(buf: &mut Bytes) -> Result<Option<Bytes>, CodecError> {
    match buf.first() {
        Some(&code @ (fc::VBIN8 | fc::VBIN32)) => {
            buf.advance(1);
            let n = take_size(code, buf)?;
            take_bytes(buf, n).map(Some)
        }
        Some(_) => Ok(None),
        None => Err(CodecError::Incomplete { needed: 1 }),
    }
}

/// Size prefix of a variable-width or compound value: one byte for the `0xa_`, `0xc_`,
/// `0xe_` families, four bytes for `0xb_`, `0xd_`, `0xf_`.
#[inline]
fn take_size(code: u8, buf: &mut Bytes) -> Result<usize, CodecError> {
    if code & 0x10 == 0 {
        Ok(take_u8(buf)? as usize)
    } else {
        Ok(take_u32(buf)? as usize)
    }
}

/// Decodes one value and advances `buf` past it.
pub fn decode_value(buf: &mut Bytes) -> Result<Value, CodecError> {
    decode_at_depth(buf, 0, &mut ZeroWidthBudget::default())
}

#[inline]
fn decode_at_depth(
    buf: &mut Bytes,
    depth: usize,
    budget: &mut ZeroWidthBudget,
) -> Result<Value, CodecError> {
    if depth > MAX_DEPTH {
        return Err(CodecError::TooDeep);
    }
    let code = take_u8(buf)?;
    decode_after_code(code, buf, depth, budget)
}

/// Decodes the value (described or not) whose constructor `code` has already been read.
#[inline]
fn decode_after_code(
    code: u8,
    buf: &mut Bytes,
    depth: usize,
    budget: &mut ZeroWidthBudget,
) -> Result<Value, CodecError> {
    if code == fc::DESCRIBED {
        let descriptor = decode_descriptor(buf, depth + 1, budget)?;
        let value = decode_at_depth(buf, depth + 1, budget)?;
        return Ok(Value::Described(Box::new(descriptor), Box::new(value)));
    }
    decode_with_code(code, buf, depth, budget)
}

/// Decodes a descriptor (the value following a `0x00` constructor).
pub fn decode_descriptor_value(buf: &mut Bytes) -> Result<Descriptor, CodecError> {
    decode_descriptor(buf, 0, &mut ZeroWidthBudget::default())
}

fn decode_descriptor(
    buf: &mut Bytes,
    depth: usize,
    budget: &mut ZeroWidthBudget,
) -> Result<Descriptor, CodecError> {
    match decode_at_depth(buf, depth, budget)? {
        Value::Symbol(s) => Ok(Descriptor::Symbol(s)),
        Value::Ulong(v) => Ok(Descriptor::Code(v)),
        other => match other.as_i64() {
            Some(v) if v >= 0 => Ok(Descriptor::Code(v as u64)),
            _ => Err(CodecError::UnexpectedDescriptor(format!("{other:?}"))),
        },
    }
}

/// Reads a string of `n` bytes, copied straight out of the input (no intermediate slice).
fn take_str(buf: &mut Bytes, n: usize) -> Result<String, CodecError> {
    need(buf, n)?;
    let text = match std::str::from_utf8(&buf[..n]) {
        Ok(s) => s.to_owned(),
        Err(_) => return Err(CodecError::InvalidUtf8),
    };
    buf.advance(n);
    Ok(text)
}

fn decode_char(v: u32) -> Result<char, CodecError> {
    char::from_u32(v).ok_or(CodecError::Other("invalid char code point"))
}

/// Decodes the value whose constructor `code` has already been read.
fn decode_with_code(
    code: u8,
    buf: &mut Bytes,
    depth: usize,
    budget: &mut ZeroWidthBudget,
) -> Result<Value, CodecError> {
    Ok(match code {
        fc::NULL => Value::Null,
        fc::TRUE => Value::Bool(true),
        fc::FALSE => Value::Bool(false),
        fc::UINT0 => Value::Uint(0),
        fc::ULONG0 => Value::Ulong(0),
        fc::LIST0 => Value::List(Vec::new()),
        fc::UBYTE => Value::Ubyte(take_u8(buf)?),
        fc::BYTE => Value::Byte(take_u8(buf)? as i8),
        fc::SMALLUINT => Value::Uint(take_u8(buf)?.into()),
        fc::SMALLULONG => Value::Ulong(take_u8(buf)?.into()),
        fc::SMALLINT => Value::Int((take_u8(buf)? as i8).into()),
        fc::SMALLLONG => Value::Long((take_u8(buf)? as i8).into()),
        fc::BOOL => Value::Bool(take_u8(buf)? != 0),
        fc::USHORT => Value::Ushort(u16::from_be_bytes(take_array(buf)?)),
        fc::SHORT => Value::Short(i16::from_be_bytes(take_array(buf)?)),
        fc::UINT => Value::Uint(u32::from_be_bytes(take_array(buf)?)),
        fc::INT => Value::Int(i32::from_be_bytes(take_array(buf)?)),
        fc::FLOAT => Value::Float(f32::from_be_bytes(take_array(buf)?)),
        fc::CHAR => Value::Char(decode_char(u32::from_be_bytes(take_array(buf)?))?),
        fc::DECIMAL32 => Value::Decimal32(take_array(buf)?),
        fc::ULONG => Value::Ulong(u64::from_be_bytes(take_array(buf)?)),
        fc::LONG => Value::Long(i64::from_be_bytes(take_array(buf)?)),
        fc::DOUBLE => Value::Double(f64::from_be_bytes(take_array(buf)?)),
        fc::TIMESTAMP => Value::Timestamp(Timestamp(i64::from_be_bytes(take_array(buf)?))),
        fc::DECIMAL64 => Value::Decimal64(take_array(buf)?),
        fc::DECIMAL128 => Value::Decimal128(take_array(buf)?),
        fc::UUID => Value::Uuid(take_array(buf)?),
        fc::VBIN8 | fc::VBIN32 => {
            let n = take_size(code, buf)?;
            Value::Binary(take_bytes(buf, n)?)
        }
        fc::STR8 | fc::STR32 => {
            let n = take_size(code, buf)?;
            Value::String(take_str(buf, n)?)
        }
        fc::SYM8 | fc::SYM32 => {
            let n = take_size(code, buf)?;
            Value::Symbol(Symbol(take_bytes(buf, n)?))
        }
        fc::LIST8 | fc::LIST32 | fc::MAP8 | fc::MAP32 => {
            let (mut body, count) = take_compound(code, buf)?;
            let is_map = code == fc::MAP8 || code == fc::MAP32;
            if is_map && count % 2 != 0 {
                return Err(CodecError::Other("map with an odd number of elements"));
            }
            // Every element takes at least one byte, so the body bounds the count.
            if count > body.len() {
                return Err(CodecError::Other("compound count exceeds its size"));
            }
            let v = if is_map {
                let mut pairs = Vec::with_capacity(count / 2);
                for _ in 0..count / 2 {
                    let k = decode_at_depth(&mut body, depth + 1, budget)?;
                    let v = decode_at_depth(&mut body, depth + 1, budget)?;
                    pairs.push((k, v));
                }
                Value::Map(pairs)
            } else {
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(decode_at_depth(&mut body, depth + 1, budget)?);
                }
                Value::List(items)
            };
            if !body.is_empty() {
                return Err(CodecError::Other("trailing bytes inside compound value"));
            }
            v
        }
        fc::ARRAY8 | fc::ARRAY32 => {
            let (mut body, count) = take_compound(code, buf)?;
            let v = decode_array_body(&mut body, count, depth + 1, budget)?;
            if !body.is_empty() {
                return Err(CodecError::Other("trailing bytes inside array"));
            }
            v
        }
        other => return Err(CodecError::InvalidFormatCode(other)),
    })
}

/// Reads size and count of a list, map or array and returns its body (after the count).
pub(crate) fn take_compound(code: u8, buf: &mut Bytes) -> Result<(Bytes, usize), CodecError> {
    let size = take_size(code, buf)?;
    let mut body = take_bytes(buf, size)?;
    let count = take_size(code, &mut body)?;
    Ok((body, count))
}

fn decode_array_body(
    body: &mut Bytes,
    count: usize,
    depth: usize,
    budget: &mut ZeroWidthBudget,
) -> Result<Value, CodecError> {
    if depth > MAX_DEPTH {
        return Err(CodecError::TooDeep);
    }
    let mut code = take_u8(body)?;
    let mut descriptor = None;
    if code == fc::DESCRIBED {
        descriptor = Some(decode_descriptor(body, depth + 1, budget)?);
        code = take_u8(body)?;
        if code == fc::DESCRIBED {
            return Err(CodecError::Other("array element descriptor nested too far"));
        }
    }
    if matches!(code, 0x40..=0x45) {
        budget.spend(count)?;
    } else if count > body.len() {
        return Err(CodecError::Other("array count exceeds its size"));
    }
    let mut items = Vec::with_capacity(count);
    for _ in 0..count {
        let item = decode_with_code(code, body, depth, budget)?;
        items.push(match &descriptor {
            Some(d) => Value::Described(Box::new(d.clone()), Box::new(item)),
            None => item,
        });
    }
    Ok(Value::Array(items))
}

/// Skips one encoded value without decoding it (compound values are skipped by their size
/// prefix). Returns the number of bytes skipped; on error `buf` is left as it was.
pub fn skip_value(buf: &mut Bytes) -> Result<usize, CodecError> {
    let n = value_len(buf)?;
    buf.advance(n);
    Ok(n)
}

/// The length of the encoded value at the start of `buf`, as [`skip_value`] measures it,
/// for a reader that walks a slice instead of a `Bytes` cursor.
#[inline]
pub fn value_len(buf: &[u8]) -> Result<usize, CodecError> {
    value_len_at(buf, 0)
}

/// The length of the encoded value at the start of `buf`, read from its constructors and
/// size prefixes only. Works on the slice: this runs for every section of every message.
fn value_len_at(buf: &[u8], depth: usize) -> Result<usize, CodecError> {
    if depth > MAX_DEPTH {
        return Err(CodecError::TooDeep);
    }
    let Some((&code, rest)) = buf.split_first() else {
        return Err(CodecError::Incomplete { needed: 1 });
    };
    if code == fc::DESCRIBED {
        let descriptor = value_len_at(rest, depth + 1)?;
        let value = value_len_at(&rest[descriptor..], depth + 1)?;
        return Ok(1 + descriptor + value);
    }
    let (prefix, width) = match code >> 4 {
        0x4 => (0, 0),
        0x5 => (0, 1),
        0x6 => (0, 2),
        0x7 => (0, 4),
        0x8 => (0, 8),
        0x9 => (0, 16),
        0xa | 0xc | 0xe => match rest.first() {
            Some(&n) => (1, usize::from(n)),
            None => return Err(CodecError::Incomplete { needed: 1 }),
        },
        0xb | 0xd | 0xf => match rest.first_chunk::<4>() {
            Some(&n) => (4, u32::from_be_bytes(n) as usize),
            None => {
                return Err(CodecError::Incomplete {
                    needed: 4 - rest.len(),
                });
            }
        },
        _ => return Err(CodecError::InvalidFormatCode(code)),
    };
    let available = rest.len() - prefix;
    if available < width {
        return Err(CodecError::Incomplete {
            needed: width - available,
        });
    }
    Ok(1 + prefix + width)
}

// ---------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------

/// Encodes `v` with the most compact constructor that fits.
pub fn encode_value(v: &Value, out: &mut BytesMut) {
    match v {
        Value::Null => out.put_u8(fc::NULL),
        Value::Bool(b) => out.put_u8(if *b { fc::TRUE } else { fc::FALSE }),
        Value::Ubyte(x) => {
            out.put_u8(fc::UBYTE);
            out.put_u8(*x);
        }
        Value::Ushort(x) => {
            out.put_u8(fc::USHORT);
            out.put_u16(*x);
        }
        Value::Uint(x) => encode_uint(*x, out),
        Value::Ulong(x) => encode_ulong(*x, out),
        Value::Byte(x) => {
            out.put_u8(fc::BYTE);
            out.put_i8(*x);
        }
        Value::Short(x) => {
            out.put_u8(fc::SHORT);
            out.put_i16(*x);
        }
        Value::Int(x) => match i8::try_from(*x) {
            Ok(small) => {
                out.put_u8(fc::SMALLINT);
                out.put_i8(small);
            }
            Err(_) => {
                out.put_u8(fc::INT);
                out.put_i32(*x);
            }
        },
        Value::Long(x) => match i8::try_from(*x) {
            Ok(small) => {
                out.put_u8(fc::SMALLLONG);
                out.put_i8(small);
            }
            Err(_) => {
                out.put_u8(fc::LONG);
                out.put_i64(*x);
            }
        },
        Value::Binary(b) => encode_variable(fc::VBIN8, b, out),
        Value::String(s) => encode_variable(fc::STR8, s.as_bytes(), out),
        Value::Symbol(s) => encode_variable(fc::SYM8, &s.0, out),
        Value::List(items) => {
            let w = CompoundWriter::begin(out, fc::LIST8);
            for item in items {
                encode_value(item, out);
            }
            w.finish(out, items.len());
        }
        Value::Map(pairs) => {
            let w = CompoundWriter::begin(out, fc::MAP8);
            for (k, v) in pairs {
                encode_value(k, out);
                encode_value(v, out);
            }
            w.finish(out, pairs.len() * 2);
        }
        Value::Array(items) => encode_array(items, out),
        Value::Described(d, inner) => {
            encode_descriptor(d, out);
            encode_value(inner, out);
        }
        // Remaining scalars have one fixed-width constructor, shared with arrays.
        scalar => {
            let kind = ElementKind::of(scalar);
            out.put_u8(kind.code());
            encode_element(kind, scalar, out);
        }
    }
}

/// Encodes a `uint` as `uint0`, `smalluint` or `uint`.
pub fn encode_uint(x: u32, out: &mut BytesMut) {
    match x {
        0 => out.put_u8(fc::UINT0),
        1..=255 => {
            out.put_u8(fc::SMALLUINT);
            out.put_u8(x as u8);
        }
        _ => {
            out.put_u8(fc::UINT);
            out.put_u32(x);
        }
    }
}

/// Encodes a `ulong` as `ulong0`, `smallulong` or `ulong`.
pub fn encode_ulong(x: u64, out: &mut BytesMut) {
    match x {
        0 => out.put_u8(fc::ULONG0),
        1..=255 => {
            out.put_u8(fc::SMALLULONG);
            out.put_u8(x as u8);
        }
        _ => {
            out.put_u8(fc::ULONG);
            out.put_u64(x);
        }
    }
}

/// Writes `0x00` and the descriptor; numeric codes below 256 as `00 53 xx`.
pub fn encode_descriptor(d: &Descriptor, out: &mut BytesMut) {
    out.put_u8(fc::DESCRIBED);
    match d {
        Descriptor::Code(c) if *c < 256 => {
            out.put_u8(fc::SMALLULONG);
            out.put_u8(*c as u8);
        }
        Descriptor::Code(c) => {
            out.put_u8(fc::ULONG);
            out.put_u64(*c);
        }
        Descriptor::Symbol(s) => encode_variable(fc::SYM8, &s.0, out),
    }
}

/// Writes a binary, string or symbol given its 8-bit-size constructor.
#[inline]
pub(crate) fn encode_variable(code8: u8, bytes: &[u8], out: &mut BytesMut) {
    match u8::try_from(bytes.len()) {
        Ok(n) => {
            out.put_u8(code8);
            out.put_u8(n);
        }
        Err(_) => {
            out.put_u8(code8 | 0x10);
            out.put_u32(len_u32(bytes.len()));
        }
    }
    out.put_slice(bytes);
}

/// Lengths on the wire are 32-bit; a longer value cannot be represented, and encoding is
/// infallible, so it saturates (the receiving side then rejects the value).
#[inline]
fn len_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Writes a list or map: reserves the 32-bit header, then on `finish` back-patches the size
/// and count, shrinking to the 8-bit form (or `list0`) when it fits.
pub(crate) struct CompoundWriter {
    start: usize,
    code8: u8,
}

/// Header of a 32-bit compound: constructor, size, count.
const HEADER32: usize = 9;

impl CompoundWriter {
    /// `code8` is `LIST8`, `MAP8` or `ARRAY8`.
    pub(crate) fn begin(out: &mut BytesMut, code8: u8) -> Self {
        let start = out.len();
        out.put_bytes(0, HEADER32);
        CompoundWriter { start, code8 }
    }

    /// Position where the compound's elements begin.
    pub(crate) fn body_start(&self) -> usize {
        self.start + HEADER32
    }

    pub(crate) fn finish(self, out: &mut BytesMut, count: usize) {
        let body_len = out.len() - self.body_start();
        let start = self.start;
        if count == 0 && self.code8 == fc::LIST8 {
            out.truncate(start);
            out.put_u8(fc::LIST0);
        } else if body_len < 255 && count < 256 {
            out[start] = self.code8;
            out[start + 1] = (body_len + 1) as u8;
            out[start + 2] = count as u8;
            out.copy_within(self.body_start().., start + 3);
            out.truncate(start + 3 + body_len);
        } else {
            out[start] = self.code8 | 0x10;
            out[start + 1..start + 5].copy_from_slice(&len_u32(body_len + 4).to_be_bytes());
            out[start + 5..start + 9].copy_from_slice(&len_u32(count).to_be_bytes());
        }
    }
}

/// The shared constructor of an array's elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ElementKind {
    Null,
    Bool,
    Ubyte,
    Ushort,
    Uint,
    Ulong,
    Byte,
    Short,
    Int,
    Long,
    Float,
    Double,
    Decimal32,
    Decimal64,
    Decimal128,
    Char,
    Timestamp,
    Uuid,
    Binary { wide: bool },
    String { wide: bool },
    Symbol { wide: bool },
    List,
    Map,
    Array,
}

impl ElementKind {
    /// The kind of one value (narrow variable-width form; widened by `for_array`).
    fn of(v: &Value) -> ElementKind {
        match v {
            Value::Null | Value::Described(..) => ElementKind::Null,
            Value::Bool(_) => ElementKind::Bool,
            Value::Ubyte(_) => ElementKind::Ubyte,
            Value::Ushort(_) => ElementKind::Ushort,
            Value::Uint(_) => ElementKind::Uint,
            Value::Ulong(_) => ElementKind::Ulong,
            Value::Byte(_) => ElementKind::Byte,
            Value::Short(_) => ElementKind::Short,
            Value::Int(_) => ElementKind::Int,
            Value::Long(_) => ElementKind::Long,
            Value::Float(_) => ElementKind::Float,
            Value::Double(_) => ElementKind::Double,
            Value::Decimal32(_) => ElementKind::Decimal32,
            Value::Decimal64(_) => ElementKind::Decimal64,
            Value::Decimal128(_) => ElementKind::Decimal128,
            Value::Char(_) => ElementKind::Char,
            Value::Timestamp(_) => ElementKind::Timestamp,
            Value::Uuid(_) => ElementKind::Uuid,
            Value::Binary(b) => ElementKind::Binary {
                wide: b.len() > 255,
            },
            Value::String(s) => ElementKind::String {
                wide: s.len() > 255,
            },
            Value::Symbol(s) => ElementKind::Symbol {
                wide: s.0.len() > 255,
            },
            Value::List(_) => ElementKind::List,
            Value::Map(_) => ElementKind::Map,
            Value::Array(_) => ElementKind::Array,
        }
    }

    /// The kind shared by all `items`: that of the first, widened to the longest
    /// variable-width element.
    fn for_array<'a>(mut items: impl Iterator<Item = &'a Value>) -> ElementKind {
        let Some(first) = items.next() else {
            return ElementKind::Null;
        };
        let mut kind = ElementKind::of(first);
        for item in items {
            let other = ElementKind::of(item);
            kind = match (kind, other) {
                (ElementKind::Binary { .. }, ElementKind::Binary { wide: true }) => other,
                (ElementKind::String { .. }, ElementKind::String { wide: true }) => other,
                (ElementKind::Symbol { .. }, ElementKind::Symbol { wide: true }) => other,
                _ => kind,
            };
        }
        kind
    }

    fn code(self) -> u8 {
        match self {
            ElementKind::Null => fc::NULL,
            ElementKind::Bool => fc::BOOL,
            ElementKind::Ubyte => fc::UBYTE,
            ElementKind::Ushort => fc::USHORT,
            ElementKind::Uint => fc::UINT,
            ElementKind::Ulong => fc::ULONG,
            ElementKind::Byte => fc::BYTE,
            ElementKind::Short => fc::SHORT,
            ElementKind::Int => fc::INT,
            ElementKind::Long => fc::LONG,
            ElementKind::Float => fc::FLOAT,
            ElementKind::Double => fc::DOUBLE,
            ElementKind::Decimal32 => fc::DECIMAL32,
            ElementKind::Decimal64 => fc::DECIMAL64,
            ElementKind::Decimal128 => fc::DECIMAL128,
            ElementKind::Char => fc::CHAR,
            ElementKind::Timestamp => fc::TIMESTAMP,
            ElementKind::Uuid => fc::UUID,
            ElementKind::Binary { wide } => fc::VBIN8 | wide_bit(wide),
            ElementKind::String { wide } => fc::STR8 | wide_bit(wide),
            ElementKind::Symbol { wide } => fc::SYM8 | wide_bit(wide),
            ElementKind::List => fc::LIST32,
            ElementKind::Map => fc::MAP32,
            ElementKind::Array => fc::ARRAY32,
        }
    }
}

fn wide_bit(wide: bool) -> u8 {
    if wide { 0x10 } else { 0 }
}

/// Writes the payload of `v` (no constructor) in the form `kind` implies. A value of a
/// different kind than the array's first element is a caller bug; it is written as the
/// kind's zero value so the array stays well-formed.
fn encode_element(kind: ElementKind, v: &Value, out: &mut BytesMut) {
    debug_assert!(
        matches!(kind, ElementKind::Null) || same_kind(kind, ElementKind::of(v)),
        "heterogeneous AMQP array"
    );
    match (kind, v) {
        (ElementKind::Null, _) => {}
        (ElementKind::Bool, Value::Bool(b)) => out.put_u8(u8::from(*b)),
        (ElementKind::Ubyte, Value::Ubyte(x)) => out.put_u8(*x),
        (ElementKind::Ushort, Value::Ushort(x)) => out.put_u16(*x),
        (ElementKind::Uint, Value::Uint(x)) => out.put_u32(*x),
        (ElementKind::Ulong, Value::Ulong(x)) => out.put_u64(*x),
        (ElementKind::Byte, Value::Byte(x)) => out.put_i8(*x),
        (ElementKind::Short, Value::Short(x)) => out.put_i16(*x),
        (ElementKind::Int, Value::Int(x)) => out.put_i32(*x),
        (ElementKind::Long, Value::Long(x)) => out.put_i64(*x),
        (ElementKind::Float, Value::Float(x)) => out.put_f32(*x),
        (ElementKind::Double, Value::Double(x)) => out.put_f64(*x),
        (ElementKind::Decimal32, Value::Decimal32(x)) => out.put_slice(x),
        (ElementKind::Decimal64, Value::Decimal64(x)) => out.put_slice(x),
        (ElementKind::Decimal128, Value::Decimal128(x)) => out.put_slice(x),
        (ElementKind::Char, Value::Char(c)) => out.put_u32(u32::from(*c)),
        (ElementKind::Timestamp, Value::Timestamp(t)) => out.put_i64(t.0),
        (ElementKind::Uuid, Value::Uuid(u)) => out.put_slice(u),
        (ElementKind::Binary { wide }, Value::Binary(b)) => put_sized(wide, b, out),
        (ElementKind::String { wide }, Value::String(s)) => put_sized(wide, s.as_bytes(), out),
        (ElementKind::Symbol { wide }, Value::Symbol(s)) => put_sized(wide, &s.0, out),
        (ElementKind::List, Value::List(items)) => {
            let start = out.len();
            out.put_bytes(0, 8);
            for item in items {
                encode_value(item, out);
            }
            patch_size32(out, start, items.len());
        }
        (ElementKind::Map, Value::Map(pairs)) => {
            let start = out.len();
            out.put_bytes(0, 8);
            for (k, v) in pairs {
                encode_value(k, out);
                encode_value(v, out);
            }
            patch_size32(out, start, pairs.len() * 2);
        }
        (ElementKind::Array, Value::Array(items)) => {
            let start = out.len();
            out.put_bytes(0, 8);
            encode_array_constructor_and_elements(items, out);
            patch_size32(out, start, items.len());
        }
        (kind, _) => encode_zero_element(kind, out),
    }
}

fn same_kind(a: ElementKind, b: ElementKind) -> bool {
    std::mem::discriminant(&a) == std::mem::discriminant(&b)
}

fn encode_zero_element(kind: ElementKind, out: &mut BytesMut) {
    let width = match kind {
        ElementKind::Null => 0,
        ElementKind::Bool | ElementKind::Ubyte | ElementKind::Byte => 1,
        ElementKind::Ushort | ElementKind::Short => 2,
        ElementKind::Uint | ElementKind::Int | ElementKind::Float => 4,
        ElementKind::Decimal32 | ElementKind::Char => 4,
        ElementKind::Ulong | ElementKind::Long | ElementKind::Double => 8,
        ElementKind::Decimal64 | ElementKind::Timestamp => 8,
        ElementKind::Decimal128 | ElementKind::Uuid => 16,
        ElementKind::Binary { wide } | ElementKind::String { wide } => {
            if wide {
                4
            } else {
                1
            }
        }
        ElementKind::Symbol { wide } => {
            if wide {
                4
            } else {
                1
            }
        }
        // size 4 (just the count), count 0
        ElementKind::List | ElementKind::Map => {
            out.put_u32(4);
            out.put_u32(0);
            return;
        }
        // size 5, count 0, element constructor null
        ElementKind::Array => {
            out.put_u32(5);
            out.put_u32(0);
            out.put_u8(fc::NULL);
            return;
        }
    };
    out.put_bytes(0, width);
}

fn put_sized(wide: bool, bytes: &[u8], out: &mut BytesMut) {
    if wide {
        out.put_u32(len_u32(bytes.len()));
    } else {
        out.put_u8(bytes.len() as u8);
    }
    out.put_slice(bytes);
}

/// Back-patches a 32-bit size and count written as 8 placeholder bytes at `start`.
fn patch_size32(out: &mut BytesMut, start: usize, count: usize) {
    let size = out.len() - start - 4;
    out[start..start + 4].copy_from_slice(&len_u32(size).to_be_bytes());
    out[start + 4..start + 8].copy_from_slice(&len_u32(count).to_be_bytes());
}

fn encode_array(items: &[Value], out: &mut BytesMut) {
    let w = CompoundWriter::begin(out, fc::ARRAY8);
    encode_array_constructor_and_elements(items, out);
    w.finish(out, items.len());
}

/// Writes the element constructor (with the descriptor, for arrays of described values)
/// followed by every element's payload.
fn encode_array_constructor_and_elements(items: &[Value], out: &mut BytesMut) {
    if let Some(Value::Described(descriptor, _)) = items.first() {
        encode_descriptor(descriptor, out);
        let inner = |v: &'_ Value| -> Value {
            match v {
                Value::Described(_, inner) => (**inner).clone(),
                _ => Value::Null,
            }
        };
        // Described arrays are rare (filters, rules); cloning the inner values keeps
        // this path simple.
        let inners: Vec<Value> = items.iter().map(inner).collect();
        if let Some(Value::Described(..)) = inners.first() {
            // A described descriptor-in-array cannot be expressed; fall back to nulls.
            out.put_u8(fc::NULL);
            return;
        }
        let kind = ElementKind::for_array(inners.iter());
        out.put_u8(kind.code());
        for v in &inners {
            encode_element(kind, v, out);
        }
        return;
    }
    let kind = ElementKind::for_array(items.iter());
    out.put_u8(kind.code());
    for v in items {
        encode_element(kind, v, out);
    }
}

/// Number of bytes `encode_value` writes for `v`.
pub fn encoded_len(v: &Value) -> usize {
    let mut scratch = BytesMut::new();
    encode_value(v, &mut scratch);
    scratch.len()
}

// ---------------------------------------------------------------------------------------
// Described lists (composite types): field-by-field reading and writing
// ---------------------------------------------------------------------------------------

/// Reads the fields of a composite's list one at a time, without collecting them.
/// Missing trailing fields and explicit nulls both read as `None`.
pub(crate) struct FieldReader {
    body: Bytes,
    remaining: usize,
    composite: &'static str,
}

pub(crate) fn invalid(
    composite: &'static str,
    field: &'static str,
    reason: &'static str,
) -> CodecError {
    CodecError::InvalidField {
        composite,
        field,
        reason,
    }
}

/// Reads a `0x00` descriptor constructor and the descriptor, mapping symbolic descriptors
/// of the standard types to their numeric codes.
pub(crate) fn read_descriptor(buf: &mut Bytes) -> Result<Descriptor, CodecError> {
    // Every standard type is described by a small code, `00 53 xx`.
    if let [fc::DESCRIBED, fc::SMALLULONG, code, ..] = buf[..] {
        buf.advance(3);
        return Ok(Descriptor::Code(code.into()));
    }
    let code = take_u8(buf)?;
    if code != fc::DESCRIBED {
        return Err(CodecError::UnexpectedDescriptor(format!(
            "expected a described type, found format code 0x{code:02x}"
        )));
    }
    decode_descriptor(buf, 0, &mut ZeroWidthBudget::default())
}

/// The numeric code of a descriptor, translating the standard symbolic names.
pub fn descriptor_code(d: &Descriptor) -> Option<u64> {
    match d {
        Descriptor::Code(c) => Some(*c),
        Descriptor::Symbol(s) => symbolic_code(&s.0),
    }
}

fn symbolic_code(name: &[u8]) -> Option<u64> {
    const NAMES: &[(&str, u64)] = &[
        ("amqp:open:list", 0x10),
        ("amqp:begin:list", 0x11),
        ("amqp:attach:list", 0x12),
        ("amqp:flow:list", 0x13),
        ("amqp:transfer:list", 0x14),
        ("amqp:disposition:list", 0x15),
        ("amqp:detach:list", 0x16),
        ("amqp:end:list", 0x17),
        ("amqp:close:list", 0x18),
        ("amqp:error:list", 0x1d),
        ("amqp:received:list", 0x23),
        ("amqp:accepted:list", 0x24),
        ("amqp:rejected:list", 0x25),
        ("amqp:released:list", 0x26),
        ("amqp:modified:list", 0x27),
        ("amqp:source:list", 0x28),
        ("amqp:target:list", 0x29),
        ("amqp:delete-on-close:list", 0x2b),
        ("amqp:delete-on-no-links:list", 0x2c),
        ("amqp:delete-on-no-messages:list", 0x2d),
        ("amqp:delete-on-no-links-or-messages:list", 0x2e),
        ("amqp:coordinator:list", 0x30),
        ("amqp:sasl-mechanisms:list", 0x40),
        ("amqp:sasl-init:list", 0x41),
        ("amqp:sasl-challenge:list", 0x42),
        ("amqp:sasl-response:list", 0x43),
        ("amqp:sasl-outcome:list", 0x44),
        ("amqp:header:list", 0x70),
        ("amqp:delivery-annotations:map", 0x71),
        ("amqp:message-annotations:map", 0x72),
        ("amqp:properties:list", 0x73),
        ("amqp:application-properties:map", 0x74),
        ("amqp:data:binary", 0x75),
        ("amqp:amqp-sequence:list", 0x76),
        ("amqp:amqp-value:*", 0x77),
        ("amqp:footer:map", 0x78),
    ];
    NAMES
        .iter()
        .find(|(n, _)| n.as_bytes() == name)
        .map(|(_, c)| *c)
}

impl FieldReader {
    /// Reads the list that follows a composite's descriptor.
    pub(crate) fn open(buf: &mut Bytes, composite: &'static str) -> Result<Self, CodecError> {
        let code = take_u8(buf)?;
        let (body, count) = match code {
            fc::LIST0 => (Bytes::new(), 0),
            fc::LIST8 | fc::LIST32 => take_compound(code, buf)?,
            _ => {
                return Err(invalid(
                    composite,
                    "(list)",
                    "composite is not encoded as a list",
                ));
            }
        };
        if count > body.len() {
            return Err(invalid(
                composite,
                "(list)",
                "field count exceeds list size",
            ));
        }
        Ok(FieldReader {
            body,
            remaining: count,
            composite,
        })
    }

    pub(crate) fn invalid(&self, field: &'static str, reason: &'static str) -> CodecError {
        invalid(self.composite, field, reason)
    }

    /// Fields not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.remaining
    }

    /// The next field, `None` when null or absent.
    #[inline]
    pub(crate) fn value(&mut self) -> Result<Option<Value>, CodecError> {
        if self.skip_empty() {
            return Ok(None);
        }
        match self.next_code()? {
            None => Ok(None),
            Some(code) => self.decode_rest(code).map(Some),
        }
    }

    /// The constructor of the next field, `None` when it is null or absent. The typed
    /// readers below decode the common constructors of their type straight from the list
    /// body and hand any other to [`Self::decode_rest`], so that they accept exactly what
    /// decoding the field as a [`Value`] and converting it would.
    #[inline]
    fn next_code(&mut self) -> Result<Option<u8>, CodecError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        match take_u8(&mut self.body)? {
            fc::NULL => Ok(None),
            code => Ok(Some(code)),
        }
    }

    /// The bytes of the variable-width field whose constructor `next_code` returned, as a
    /// slice of the input.
    fn variable_bytes(&mut self, code: u8) -> Result<Bytes, CodecError> {
        let n = take_size(code, &mut self.body)?;
        take_bytes(&mut self.body, n)
    }

    /// The field whose constructor `next_code` returned, decoded as a [`Value`].
    fn decode_rest(&mut self, code: u8) -> Result<Value, CodecError> {
        decode_after_code(code, &mut self.body, 1, &mut ZeroWidthBudget::default())
    }

    /// The next field, decoded by `f` straight from the list body unless it is null or
    /// absent (for nested composites).
    pub(crate) fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Bytes) -> Result<T, CodecError>,
    ) -> Result<Option<T>, CodecError> {
        if self.skip_empty() {
            return Ok(None);
        }
        self.remaining -= 1;
        f(&mut self.body).map(Some)
    }

    /// The next field as raw encoded bytes (not decoded), `None` when null or absent.
    pub(crate) fn raw(&mut self) -> Result<Option<Bytes>, CodecError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        let n = value_len_at(&self.body, 0)?;
        let raw = self.body.split_to(n);
        Ok(if raw[..] == [fc::NULL] {
            None
        } else {
            Some(raw)
        })
    }

    /// Consumes the next field if it is absent or null, saying whether it was. The typed
    /// readers check this inline: most fields of a properties section are absent or null,
    /// and a call each cost more than the rest of their reading.
    #[inline(always)]
    fn skip_empty(&mut self) -> bool {
        if self.remaining == 0 {
            return true;
        }
        if self.body.first() == Some(&fc::NULL) {
            self.remaining -= 1;
            self.body.advance(1);
            return true;
        }
        false
    }

    #[inline(always)]
    pub(crate) fn uint(&mut self, field: &'static str) -> Result<Option<u32>, CodecError> {
        if self.skip_empty() {
            return Ok(None);
        }
        self.present_uint(field)
    }

    fn present_uint(&mut self, field: &'static str) -> Result<Option<u32>, CodecError> {
        let value = match self.next_code()? {
            None => return Ok(None),
            Some(fc::UINT0) => return Ok(Some(0)),
            Some(fc::SMALLUINT | fc::UBYTE) => return Ok(Some(take_u8(&mut self.body)?.into())),
            Some(fc::UINT) => return Ok(Some(u32::from_be_bytes(take_array(&mut self.body)?))),
            Some(code) => self.decode_rest(code)?,
        };
        value
            .as_i64()
            .and_then(|x| u32::try_from(x).ok())
            .map(Some)
            .ok_or_else(|| self.invalid(field, "expected an unsigned 32-bit integer"))
    }

    pub(crate) fn req_uint(&mut self, field: &'static str) -> Result<u32, CodecError> {
        self.uint(field)?
            .ok_or_else(|| self.invalid(field, "mandatory field missing"))
    }

    pub(crate) fn ushort(&mut self, field: &'static str) -> Result<Option<u16>, CodecError> {
        match self.uint(field)? {
            None => Ok(None),
            Some(x) => u16::try_from(x)
                .map(Some)
                .map_err(|_| self.invalid(field, "expected an unsigned 16-bit integer")),
        }
    }

    pub(crate) fn ubyte(&mut self, field: &'static str) -> Result<Option<u8>, CodecError> {
        match self.uint(field)? {
            None => Ok(None),
            Some(x) => u8::try_from(x)
                .map(Some)
                .map_err(|_| self.invalid(field, "expected an unsigned 8-bit integer")),
        }
    }

    pub(crate) fn ulong(&mut self, field: &'static str) -> Result<Option<u64>, CodecError> {
        match self.value()? {
            None => Ok(None),
            Some(Value::Ulong(x)) => Ok(Some(x)),
            Some(v) => v
                .as_i64()
                .and_then(|x| u64::try_from(x).ok())
                .map(Some)
                .ok_or_else(|| self.invalid(field, "expected an unsigned 64-bit integer")),
        }
    }

    #[inline(always)]
    pub(crate) fn boolean(&mut self, field: &'static str) -> Result<Option<bool>, CodecError> {
        if self.skip_empty() {
            return Ok(None);
        }
        self.present_boolean(field)
    }

    fn present_boolean(&mut self, field: &'static str) -> Result<Option<bool>, CodecError> {
        match self.next_code()? {
            None => Ok(None),
            Some(fc::TRUE) => Ok(Some(true)),
            Some(fc::FALSE) => Ok(Some(false)),
            Some(fc::BOOL) => Ok(Some(take_u8(&mut self.body)? != 0)),
            Some(code) => match self.decode_rest(code)? {
                Value::Bool(b) => Ok(Some(b)),
                _ => Err(self.invalid(field, "expected a boolean")),
            },
        }
    }

    #[inline(always)]
    pub(crate) fn string(&mut self, field: &'static str) -> Result<Option<String>, CodecError> {
        if self.skip_empty() {
            return Ok(None);
        }
        self.present_string(field)
    }

    fn present_string(&mut self, field: &'static str) -> Result<Option<String>, CodecError> {
        let value = match self.next_code()? {
            None => return Ok(None),
            Some(code @ (fc::STR8 | fc::STR32)) => {
                let n = take_size(code, &mut self.body)?;
                return take_str(&mut self.body, n).map(Some);
            }
            Some(code) => self.decode_rest(code)?,
        };
        match value {
            Value::String(s) => Ok(Some(s)),
            Value::Symbol(s) => std::str::from_utf8(&s.0)
                .map(|s| Some(s.to_owned()))
                .map_err(|_| CodecError::InvalidUtf8),
            _ => Err(self.invalid(field, "expected a string")),
        }
    }

    #[inline(always)]
    pub(crate) fn symbol(&mut self, field: &'static str) -> Result<Option<Symbol>, CodecError> {
        if self.skip_empty() {
            return Ok(None);
        }
        self.present_symbol(field)
    }

    fn present_symbol(&mut self, field: &'static str) -> Result<Option<Symbol>, CodecError> {
        let value = match self.next_code()? {
            None => return Ok(None),
            Some(code @ (fc::SYM8 | fc::SYM32)) => {
                return self.variable_bytes(code).map(|b| Some(Symbol(b)));
            }
            Some(code) => self.decode_rest(code)?,
        };
        match value {
            Value::Symbol(s) => Ok(Some(s)),
            Value::String(s) => Ok(Some(Symbol(Bytes::from(s.into_bytes())))),
            _ => Err(self.invalid(field, "expected a symbol")),
        }
    }

    #[inline(always)]
    pub(crate) fn binary(&mut self, field: &'static str) -> Result<Option<Bytes>, CodecError> {
        if self.skip_empty() {
            return Ok(None);
        }
        self.present_binary(field)
    }

    fn present_binary(&mut self, field: &'static str) -> Result<Option<Bytes>, CodecError> {
        let value = match self.next_code()? {
            None => return Ok(None),
            Some(code @ (fc::VBIN8 | fc::VBIN32)) => return self.variable_bytes(code).map(Some),
            Some(code) => self.decode_rest(code)?,
        };
        match value {
            Value::Binary(b) => Ok(Some(b)),
            _ => Err(self.invalid(field, "expected a binary")),
        }
    }

    #[inline(always)]
    pub(crate) fn timestamp(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Timestamp>, CodecError> {
        if self.skip_empty() {
            return Ok(None);
        }
        self.present_timestamp(field)
    }

    fn present_timestamp(&mut self, field: &'static str) -> Result<Option<Timestamp>, CodecError> {
        let value = match self.next_code()? {
            None => return Ok(None),
            Some(fc::TIMESTAMP) => {
                return Ok(Some(Timestamp(i64::from_be_bytes(take_array(
                    &mut self.body,
                )?))));
            }
            Some(code) => self.decode_rest(code)?,
        };
        value
            .as_i64()
            .map(|x| Some(Timestamp(x)))
            .ok_or_else(|| self.invalid(field, "expected a timestamp"))
    }
}

/// Writes a composite: descriptor `00 53 code`, then a list whose trailing nulls are
/// trimmed on `finish`.
pub(crate) struct FieldWriter<'a> {
    out: &'a mut BytesMut,
    list: CompoundWriter,
    count: usize,
    kept_len: usize,
    kept_count: usize,
}

impl<'a> FieldWriter<'a> {
    pub(crate) fn begin(out: &'a mut BytesMut, code: u64) -> Self {
        encode_descriptor(&Descriptor::Code(code), out);
        let list = CompoundWriter::begin(out, fc::LIST8);
        let kept_len = list.body_start();
        FieldWriter {
            out,
            list,
            count: 0,
            kept_len,
            kept_count: 0,
        }
    }

    #[inline]
    fn kept(&mut self) {
        self.count += 1;
        self.kept_len = self.out.len();
        self.kept_count = self.count;
    }

    #[inline]
    pub(crate) fn null(&mut self) {
        self.out.put_u8(fc::NULL);
        self.count += 1;
    }

    pub(crate) fn uint(&mut self, v: u32) {
        encode_uint(v, self.out);
        self.kept();
    }

    pub(crate) fn opt_uint(&mut self, v: Option<u32>) {
        match v {
            Some(v) => self.uint(v),
            None => self.null(),
        }
    }

    pub(crate) fn opt_ushort(&mut self, v: Option<u16>) {
        match v {
            Some(v) => {
                self.out.put_u8(fc::USHORT);
                self.out.put_u16(v);
                self.kept();
            }
            None => self.null(),
        }
    }

    pub(crate) fn ubyte(&mut self, v: u8) {
        self.out.put_u8(fc::UBYTE);
        self.out.put_u8(v);
        self.kept();
    }

    pub(crate) fn opt_ulong(&mut self, v: Option<u64>) {
        match v {
            Some(v) => {
                encode_ulong(v, self.out);
                self.kept();
            }
            None => self.null(),
        }
    }

    pub(crate) fn boolean(&mut self, b: bool) {
        self.out.put_u8(if b { fc::TRUE } else { fc::FALSE });
        self.kept();
    }

    pub(crate) fn opt_bool(&mut self, v: Option<bool>) {
        match v {
            Some(b) => self.boolean(b),
            None => self.null(),
        }
    }

    /// A boolean whose default is `false`: false is sent as null (equivalent, smaller).
    pub(crate) fn flag(&mut self, b: bool) {
        if b { self.boolean(true) } else { self.null() }
    }

    pub(crate) fn string(&mut self, s: &str) {
        encode_variable(fc::STR8, s.as_bytes(), self.out);
        self.kept();
    }

    pub(crate) fn opt_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.null(),
        }
    }

    pub(crate) fn symbol(&mut self, s: &Symbol) {
        encode_variable(fc::SYM8, &s.0, self.out);
        self.kept();
    }

    pub(crate) fn opt_symbol(&mut self, s: Option<&Symbol>) {
        match s {
            Some(s) => self.symbol(s),
            None => self.null(),
        }
    }

    pub(crate) fn binary(&mut self, b: &[u8]) {
        encode_variable(fc::VBIN8, b, self.out);
        self.kept();
    }

    pub(crate) fn opt_binary(&mut self, b: Option<&[u8]>) {
        match b {
            Some(b) => self.binary(b),
            None => self.null(),
        }
    }

    pub(crate) fn opt_timestamp(&mut self, t: Option<Timestamp>) {
        match t {
            Some(t) => {
                self.out.put_u8(fc::TIMESTAMP);
                self.out.put_i64(t.0);
                self.kept();
            }
            None => self.null(),
        }
    }

    /// Any value; `Value::Null` counts as null for trimming.
    pub(crate) fn value(&mut self, v: &Value) {
        if v.is_null() {
            self.null();
        } else {
            encode_value(v, self.out);
            self.kept();
        }
    }

    pub(crate) fn opt_value(&mut self, v: Option<&Value>) {
        match v {
            Some(v) => self.value(v),
            None => self.null(),
        }
    }

    /// Raw, already encoded bytes of one field.
    pub(crate) fn raw(&mut self, encoded: &[u8]) {
        if encoded == [fc::NULL] {
            self.null();
        } else {
            self.out.put_slice(encoded);
            self.kept();
        }
    }

    /// A nested value written by `f` (e.g. a composite); `None` writes null.
    pub(crate) fn opt_with<T>(&mut self, v: Option<&T>, f: impl FnOnce(&T, &mut BytesMut)) {
        match v {
            Some(v) => {
                f(v, self.out);
                self.kept();
            }
            None => self.null(),
        }
    }

    /// Ends the list, dropping trailing nulls.
    pub(crate) fn finish(self) {
        self.out.truncate(self.kept_len);
        self.list.finish(self.out, self.kept_count);
    }

    /// Ends the list keeping every field written, nulls included.
    pub(crate) fn finish_untrimmed(self) {
        self.list.finish(self.out, self.count);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_value(v, &mut out);
        out.to_vec()
    }

    fn dec(bytes: &[u8]) -> Result<Value, CodecError> {
        let mut b = Bytes::copy_from_slice(bytes);
        let v = decode_value(&mut b)?;
        assert!(b.is_empty(), "left over: {b:?}");
        Ok(v)
    }

    #[test]
    fn compact_forms() {
        assert_eq!(enc(&Value::Uint(0)), [0x43]);
        assert_eq!(enc(&Value::Uint(7)), [0x52, 7]);
        assert_eq!(enc(&Value::Uint(256)), [0x70, 0, 0, 1, 0]);
        assert_eq!(enc(&Value::Ulong(0)), [0x44]);
        assert_eq!(enc(&Value::Int(-1)), [0x54, 0xff]);
        assert_eq!(
            enc(&Value::Long(-129)),
            [0x81, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]
        );
        assert_eq!(enc(&Value::List(vec![])), [0x45]);
        assert_eq!(enc(&Value::List(vec![Value::Null])), [0xc0, 2, 1, 0x40]);
        assert_eq!(enc(&Value::Map(vec![])), [0xc1, 1, 0]);
        assert_eq!(enc(&Value::sym("ab")), [0xa3, 2, b'a', b'b']);
        let described = Value::Described(
            Box::new(Descriptor::Code(0x24)),
            Box::new(Value::List(vec![])),
        );
        assert_eq!(enc(&described), [0x00, 0x53, 0x24, 0x45]);
    }

    #[test]
    fn wide_forms_used_when_needed() {
        let long = "x".repeat(300);
        let e = enc(&Value::String(long.clone()));
        assert_eq!(&e[..5], &[0xb1, 0, 0, 1, 0x2c]);
        let list = Value::List(vec![Value::String(long)]);
        let e = enc(&list);
        assert_eq!(e[0], 0xd0);
        assert_eq!(dec(&e).unwrap(), list);
    }

    #[test]
    fn arrays_of_service_bus_types() {
        let uuids = Value::Array(vec![Value::Uuid([1; 16]), Value::Uuid([2; 16])]);
        let e = enc(&uuids);
        assert_eq!(&e[..4], &[0xe0, 34, 2, 0x98]);
        assert_eq!(dec(&e).unwrap(), uuids);
        let longs = Value::Array(vec![Value::Long(5)]);
        assert_eq!(enc(&longs), [0xe0, 10, 1, 0x81, 0, 0, 0, 0, 0, 0, 0, 5]);
        let stamps = Value::Array(vec![
            Value::Timestamp(Timestamp(1)),
            Value::Timestamp(Timestamp(2)),
        ]);
        assert_eq!(dec(&enc(&stamps)).unwrap(), stamps);
        let strs = Value::Array(vec![
            Value::String("a".into()),
            Value::String("x".repeat(256)),
        ]);
        let e = enc(&strs);
        assert_eq!(e[0], 0xf0);
        assert_eq!(e[9], 0xb1);
        assert_eq!(dec(&e).unwrap(), strs);
    }

    #[test]
    fn hostile_sizes_rejected_without_allocating() {
        // list32 claiming 4 GiB
        assert!(dec(&[0xd0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]).is_err());
        // list8 whose count exceeds its body
        assert!(dec(&[0xc0, 1, 200]).is_err());
        // array32 of a billion nulls
        assert!(dec(&[0xf0, 0, 0, 0, 5, 0x40, 0, 0, 0, 0x40]).is_err());
        // deep nesting of described values
        let deep = vec![0u8; 1000];
        assert_eq!(dec(&deep), Err(CodecError::TooDeep));
        let mut nested = vec![0x40u8];
        for _ in 0..100 {
            let mut outer = vec![0xd0u8];
            outer.extend_from_slice(&(nested.len() as u32 + 4).to_be_bytes());
            outer.extend_from_slice(&1u32.to_be_bytes());
            outer.extend_from_slice(&nested);
            nested = outer;
        }
        assert_eq!(dec(&nested), Err(CodecError::TooDeep));
    }

    #[test]
    fn skip_matches_decode() {
        let v = Value::Map(vec![(
            Value::sym("k"),
            Value::Array(vec![Value::Long(1), Value::Long(2)]),
        )]);
        let mut bytes = enc(&v);
        let len = bytes.len();
        bytes.push(0x40);
        let mut b = Bytes::from(bytes);
        assert_eq!(skip_value(&mut b).unwrap(), len);
        assert_eq!(&b[..], &[0x40]);
    }
}
