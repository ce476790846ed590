//! Reading a map entry by entry, for annotation maps whose few known keys are all a reader
//! wants: keys are compared as slices of the input and values are decoded only when asked,
//! so no `Value::Map` (and no key) is built per message.

use bytes::{Buf, Bytes};

use super::{
    decode_after_code, decode_at_depth, fc, need, take_array, take_compound, take_size, take_u8,
};
use crate::error::CodecError;
use crate::value::Value;

/// A map's entries, read one at a time. Every entry is checked as thoroughly as decoding the
/// map as a [`Value`] would check it: a value the caller does not ask for is still decoded
/// (and dropped), and the map's count and size must agree. The default has no entries.
#[derive(Debug, Default)]
pub struct MapReader {
    /// From the current entry's key text (if it has one) on.
    body: Bytes,
    /// Entries not yet reached.
    remaining: usize,
    /// Set while the current entry's value is unread: how many bytes of key text precede it
    /// at the front of `body` (kept there so that the key can be lent without a copy).
    unread_value_after: Option<usize>,
}

/// The key of a map entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKey<'a> {
    /// A symbol's bytes or a string's (UTF-8 checked) text.
    Name(&'a [u8]),
    /// A key of any other type (checked, not kept).
    Other,
}

/// Nesting depth of a map's keys and values, as [`super::decode_value`] counts it.
const ENTRY_DEPTH: usize = 1;

impl MapReader {
    /// Reads the map header of the value at the start of `buf` and advances `buf` past the
    /// whole map. A null reads as an empty map.
    pub fn open(buf: &mut Bytes) -> Result<Self, CodecError> {
        let code = take_u8(buf)?;
        let (body, count) = match code {
            fc::NULL => (Bytes::new(), 0),
            fc::MAP8 | fc::MAP32 => take_compound(code, buf)?,
            _ => return Err(CodecError::Other("expected a map")),
        };
        if count % 2 != 0 {
            return Err(CodecError::Other("map with an odd number of elements"));
        }
        // Every element takes at least one byte, so the body bounds the count.
        if count > body.len() {
            return Err(CodecError::Other("compound count exceeds its size"));
        }
        Ok(MapReader {
            body,
            remaining: count / 2,
            unread_value_after: None,
        })
    }

    /// The next entry's key, `None` after the last entry. The value of the previous entry,
    /// if it was not read, is decoded and dropped first.
    pub fn next_key(&mut self) -> Result<Option<MapKey<'_>>, CodecError> {
        if self.unread_value_after.is_some() {
            self.value()?;
        }
        if self.remaining == 0 {
            if !self.body.is_empty() {
                return Err(CodecError::Other("trailing bytes inside compound value"));
            }
            return Ok(None);
        }
        self.remaining -= 1;
        let code = take_u8(&mut self.body)?;
        if !matches!(code, fc::SYM8 | fc::SYM32 | fc::STR8 | fc::STR32) {
            decode_after_code(code, &mut self.body, ENTRY_DEPTH)?;
            self.unread_value_after = Some(0);
            return Ok(Some(MapKey::Other));
        }
        let n = take_size(code, &mut self.body)?;
        need(&self.body, n)?;
        let name = &self.body[..n];
        if matches!(code, fc::STR8 | fc::STR32) && std::str::from_utf8(name).is_err() {
            return Err(CodecError::InvalidUtf8);
        }
        self.unread_value_after = Some(n);
        Ok(Some(MapKey::Name(name)))
    }

    /// The current entry's value.
    pub fn value(&mut self) -> Result<Value, CodecError> {
        self.start_value()?;
        decode_at_depth(&mut self.body, ENTRY_DEPTH)
    }

    /// The current entry's value as [`Value::as_i64`] reads it: a whole number (of any
    /// integer type, or a timestamp) that fits, else `None`. The usual encodings of a long,
    /// an int and a timestamp are read without building a [`Value`]; any other value is
    /// decoded, so it is checked all the same.
    pub fn integer_value(&mut self) -> Result<Option<i64>, CodecError> {
        self.start_value()?;
        let body = &mut self.body;
        let code = match body.first() {
            Some(&code @ (fc::LONG | fc::TIMESTAMP | fc::INT | fc::SMALLLONG | fc::SMALLINT)) => {
                code
            }
            _ => return Ok(decode_at_depth(body, ENTRY_DEPTH)?.as_i64()),
        };
        body.advance(1);
        let whole = match code {
            fc::LONG | fc::TIMESTAMP => i64::from_be_bytes(take_array(body)?),
            fc::INT => i32::from_be_bytes(take_array(body)?).into(),
            _ => i8::from_be_bytes(take_array(body)?).into(),
        };
        Ok(Some(whole))
    }

    /// Moves past the current entry's key text, to its value.
    #[inline]
    fn start_value(&mut self) -> Result<(), CodecError> {
        let Some(key_len) = self.unread_value_after.take() else {
            return Err(CodecError::Other("map value read before its key"));
        };
        self.body.advance(key_len);
        Ok(())
    }
}
