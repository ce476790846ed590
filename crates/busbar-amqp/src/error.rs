//! Decoding and encoding errors.

/// Why bytes could not be decoded as AMQP (or a value could not be encoded).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// More bytes are needed; not an error for stream decoders, which wait for them.
    #[error("incomplete input: {needed} more bytes needed")]
    Incomplete { needed: usize },
    #[error("invalid format code 0x{0:02x}")]
    InvalidFormatCode(u8),
    #[error("invalid utf-8 in string or symbol")]
    InvalidUtf8,
    #[error("frame size {size} is outside the allowed range (max {max})")]
    FrameSize { size: u32, max: u32 },
    #[error("unexpected descriptor {0}")]
    UnexpectedDescriptor(String),
    #[error("field {field} of {composite}: {reason}")]
    InvalidField {
        composite: &'static str,
        field: &'static str,
        reason: &'static str,
    },
    #[error("nesting too deep")]
    TooDeep,
    #[error("{0}")]
    Other(&'static str),
}
