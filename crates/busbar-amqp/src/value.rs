//! The AMQP 1.0 type system as one enum.

use bytes::Bytes;

/// A symbol: ASCII text used for names on the wire (keys, conditions, descriptors).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Symbol(pub Bytes);

impl Symbol {
    pub const fn from_static(s: &'static str) -> Self {
        Symbol(Bytes::from_static(s.as_bytes()))
    }
    /// The symbol as text; symbols that are not UTF-8 read as empty.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl From<&str> for Symbol {
    fn from(s: &str) -> Self {
        Symbol(Bytes::copy_from_slice(s.as_bytes()))
    }
}

/// Milliseconds since the Unix epoch (AMQP `timestamp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

/// Descriptor of a described type: numeric (`0x00 0x53 code` / `0x80 ulong`) or symbolic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Descriptor {
    Code(u64),
    Symbol(Symbol),
}

/// Any AMQP 1.0 value. Strings are kept as `String`; binaries as `Bytes` sliced from the
/// input buffer (no copy).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Ubyte(u8),
    Ushort(u16),
    Uint(u32),
    Ulong(u64),
    Byte(i8),
    Short(i16),
    Int(i32),
    Long(i64),
    Float(f32),
    Double(f64),
    Decimal32([u8; 4]),
    Decimal64([u8; 8]),
    Decimal128([u8; 16]),
    Char(char),
    Timestamp(Timestamp),
    Uuid([u8; 16]),
    Binary(Bytes),
    String(String),
    Symbol(Symbol),
    List(Vec<Value>),
    /// Key/value pairs in wire order (AMQP maps are ordered and keys may be any type).
    Map(Vec<(Value, Value)>),
    /// Homogeneous array; the element constructor is derived from the first element
    /// when encoding (an empty array encodes with element type null... see codec).
    Array(Vec<Value>),
    Described(Box<Descriptor>, Box<Value>),
}

impl Value {
    /// Any integer width as i64 (clients send counts as int, uint, long, ubyte...).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Ubyte(v) => Some(v.into()),
            Value::Ushort(v) => Some(v.into()),
            Value::Uint(v) => Some(v.into()),
            Value::Ulong(v) => i64::try_from(v).ok(),
            Value::Byte(v) => Some(v.into()),
            Value::Short(v) => Some(v.into()),
            Value::Int(v) => Some(v.into()),
            Value::Long(v) => Some(v),
            Value::Timestamp(Timestamp(v)) => Some(v),
            _ => None,
        }
    }

    /// Text of a string or symbol.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Symbol(s) => std::str::from_utf8(&s.0).ok(),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Looks up a key in a map whose keys are strings or symbols.
    pub fn map_get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(pairs) => pairs
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn sym(s: &str) -> Value {
        Value::Symbol(Symbol::from(s))
    }
}

/// Conversions from Rust values to the AMQP type that carries them unchanged.
macro_rules! value_from {
    ($($rust:ty => $variant:ident),* $(,)?) => {
        $(impl From<$rust> for Value {
            fn from(v: $rust) -> Self {
                Value::$variant(v)
            }
        })*
    };
}

value_from! {
    bool => Bool, u8 => Ubyte, u16 => Ushort, u32 => Uint, u64 => Ulong, i8 => Byte,
    i16 => Short, i32 => Int, i64 => Long, f32 => Float, f64 => Double, char => Char,
    Timestamp => Timestamp, String => String, Symbol => Symbol, Bytes => Binary,
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}

impl From<Vec<u8>> for Value {
    fn from(v: Vec<u8>) -> Self {
        Value::Binary(Bytes::from(v))
    }
}

impl From<&[u8]> for Value {
    fn from(v: &[u8]) -> Self {
        Value::Binary(Bytes::copy_from_slice(v))
    }
}
